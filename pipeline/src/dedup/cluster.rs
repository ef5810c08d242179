//! Step 2 of dedup, whichever engine runs it: the job both engines share — checking the
//! committed signatures, adopting earlier indexes, the fingerprint, a per-process spill
//! folder ([`prepare_cluster`]) — and its atomic commit of the summary, curve, recurring
//! lines and run stats ([`ClusterJob::commit`]). The local engine is [`run_cluster`]
//! (`local.rs`); the distributed one is the `loam-distributed` crate.
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::index::LINES_MAGIC;
pub use super::index::{
    committed_fingerprint, read_decisions, read_recurring_lines, read_summary, ClusterRunStats, ClusterSummary,
    CurvePoint, Decision, DecisionsWriter, DumpCounts, Status,
};
pub use super::local::run_cluster;
use super::previous::{adopt_previous, index_settings, previous_tables};
use super::{DedupConfig, IndexPaths};
use crate::error::{PipelineError, Result};
use crate::stage::{fingerprint, write_atomic, ShardId, DONE_DIR, STATS_DIR};

/// A signature table of a [`ClusterJob`].
#[derive(Debug, Clone)]
pub struct ClusterTable {
    pub path: PathBuf,
    /// `Some(shard)` for this run's own shards, which get a decisions file; `None` for an
    /// earlier index's table.
    pub shard: Option<ShardId>,
}

/// Whether the cluster step ran or was already committed.
#[derive(Debug)]
pub enum ClusterOutcome {
    Done(ClusterSummary),
    AlreadyDone(ClusterSummary),
}

impl ClusterOutcome {
    pub fn summary(&self) -> &ClusterSummary {
        match self {
            Self::Done(s) | Self::AlreadyDone(s) => s,
        }
    }
}

/// The cluster step set up and not yet run, whichever engine runs it: the tables in the
/// order ties break in, the fingerprint, a spill folder of this process's own. An engine
/// writes every own table's decisions file, then [`ClusterJob::commit`] writes the rest.
#[derive(Debug)]
pub struct ClusterJob {
    pub paths: IndexPaths,
    pub fingerprint: String,
    /// Earlier indexes' tables first, then this run's shards in shard order: after dump and
    /// id, documents rank by (table, row) in this order.
    pub tables: Vec<ClusterTable>,
    pub tmp: PathBuf,
    started: Instant,
    marker: PathBuf,
}

/// What [`prepare_cluster`] found.
#[derive(Debug)]
pub enum Prepared {
    AlreadyDone(ClusterSummary),
    Job(ClusterJob),
}

/// Checks the configuration and the committed signatures of the `of` shards (fingerprint
/// `signatures_fp`), adopts the earlier indexes, and clears the step's marker; or finds
/// the step already committed with this fingerprint.
pub fn prepare_cluster(
    stage_dir: &Path,
    cfg: &DedupConfig,
    signatures_fp: &str,
    of: usize,
    force: bool,
) -> Result<Prepared> {
    let started = Instant::now();
    cfg.validate()?;
    let paths = IndexPaths::new(stage_dir);
    let own = own_tables(&paths, signatures_fp, of)?;
    let fp = cluster_fingerprint(cfg, signatures_fp, of)?;
    if !force && committed_fingerprint(&paths.cluster).as_deref() == Some(fp.as_str()) {
        return Ok(Prepared::AlreadyDone(read_summary(&paths.cluster)?));
    }
    let marker = paths.cluster.join(DONE_DIR).join("cluster");
    if marker.exists() {
        fs::remove_file(&marker).map_err(|e| PipelineError::io(&marker, e))?;
    }
    let tmp = fresh_tmp_dir(&paths.cluster)?;
    let mut tables: Vec<ClusterTable> = adopt_previous(cfg, &paths)?
        .into_iter()
        .map(|path| ClusterTable { path, shard: None })
        .collect();
    tables.extend(own.into_iter().map(|(path, shard)| ClusterTable {
        path,
        shard: Some(shard),
    }));
    Ok(Prepared::Job(ClusterJob {
        paths,
        fingerprint: fp,
        tables,
        tmp,
        started,
        marker,
    }))
}

impl ClusterJob {
    /// Commits the step after the engine wrote every decisions file: the recurring lines
    /// (sorted), the summary, the run stats (their `seconds` filled in here), the index
    /// settings, then the marker.
    pub fn commit(
        self,
        cfg: &DedupConfig,
        summary: ClusterSummary,
        recurring: &[u64],
        mut run_stats: ClusterRunStats,
    ) -> Result<ClusterSummary> {
        let paths = &self.paths;
        let mut bytes = Vec::with_capacity(8 + recurring.len() * 8);
        bytes.extend_from_slice(LINES_MAGIC);
        for h in recurring {
            bytes.extend_from_slice(&h.to_le_bytes());
        }
        write_atomic(&paths.cluster.join("recurring_lines.bin"), &bytes)?;
        let _ = fs::remove_dir_all(&self.tmp);
        run_stats.seconds = self.started.elapsed().as_secs_f64();
        let stats_dir = paths.cluster.join(STATS_DIR);
        fs::create_dir_all(&stats_dir).map_err(|e| PipelineError::io(&stats_dir, e))?;
        let json = serde_json::to_vec_pretty(&run_stats).unwrap_or_default();
        write_atomic(&stats_dir.join("cluster.json"), &json)?;
        let json = serde_json::to_vec_pretty(&summary).map_err(|e| PipelineError::BadStats {
            path: paths.cluster.join("summary.json"),
            detail: e.to_string(),
        })?;
        write_atomic(&paths.cluster.join("summary.json"), &json)?;
        let settings = serde_json::to_vec_pretty(&index_settings(cfg)).unwrap_or_default();
        write_atomic(&paths.root.join("settings.json"), &settings)?;
        crate::stage::failpoint("before_cluster_marker", ShardId::new(0, 1)?);
        write_atomic(&self.marker, self.fingerprint.as_bytes())?;
        Ok(summary)
    }
}

/// The run's dumps in chronological (name) order, from those of the earlier indexes and of
/// this run; an error when a dump of this run does not come after every earlier one.
pub fn merge_dumps(prev_dumps: &BTreeSet<String>, own_dumps: &BTreeSet<String>) -> Result<Vec<String>> {
    if let (Some(last_prev), Some(first_new)) = (prev_dumps.last(), own_dumps.first()) {
        if first_new <= last_prev {
            return Err(PipelineError::Config(format!(
                "incremental dedup: dump {first_new} of this run does not come after {last_prev} of \
                 dedup.previous_index; add dumps in chronological order, or run without previous_index"
            )));
        }
    }
    let dumps: Vec<String> = prev_dumps.union(own_dumps).cloned().collect();
    if dumps.len() > usize::from(u16::MAX) {
        return Err(PipelineError::Config(format!(
            "{} dumps: at most 65535 per run",
            dumps.len()
        )));
    }
    Ok(dumps)
}

/// This run's committed signature tables, one per shard of the `of`-way split.
fn own_tables(paths: &IndexPaths, signatures_fp: &str, of: usize) -> Result<Vec<(PathBuf, ShardId)>> {
    let mut own = Vec::new();
    for i in 0..of {
        let shard = ShardId::new(i, of)?;
        let marker = paths.signatures.join(DONE_DIR).join(shard.stem());
        let found = fs::read_to_string(&marker).unwrap_or_default();
        if found.trim() != signatures_fp {
            return Err(PipelineError::Config(format!(
                "{}: signatures of shard {i} of {of} are not committed for this configuration; run \
                 `loam dedup --phase signatures` for every shard first",
                paths.signatures.display()
            )));
        }
        own.push((paths.signatures.join(format!("{}.parquet", shard.stem())), shard));
    }
    Ok(own)
}

/// The step's fingerprint: what decides its output (not the memory limit, which changes
/// spills only, and the earlier indexes by their tables' names and sizes).
fn cluster_fingerprint(cfg: &DedupConfig, signatures_fp: &str, of: usize) -> Result<String> {
    let mut prev_key = Vec::new();
    for index in &cfg.previous_index {
        for p in previous_tables(index)? {
            let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            prev_key.push(serde_json::json!([
                p.file_name().map(|n| n.to_string_lossy().into_owned()),
                size
            ]));
        }
    }
    let mut key_cfg = cfg.clone();
    // Neither the memory limit nor the engine changes the decisions: both engines give the
    // same bytes, so switching engine keeps a committed step.
    key_cfg.memory_limit_mb = 0;
    key_cfg.previous_index.clear();
    key_cfg.engine = super::Engine::Local;
    key_cfg.workers.clear();
    key_cfg.in_process_workers = 0;
    Ok(fingerprint(&serde_json::json!({
        "stage": "dedup-cluster/1", "config": key_cfg, "signatures": signatures_fp, "of": of, "previous": prev_key,
    })))
}

/// A per-process spill folder (a retried task may overlap a slow one); folders of
/// processes that no longer exist are leftovers of a killed run and are removed.
fn fresh_tmp_dir(cluster_dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(cluster_dir).map_err(|e| PipelineError::io(cluster_dir, e))?;
    for e in fs::read_dir(cluster_dir)
        .map_err(|e| PipelineError::io(cluster_dir, e))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("_tmp-") {
            if !Path::new("/proc").join(pid).exists() {
                fs::remove_dir_all(e.path()).map_err(|err| PipelineError::io(e.path(), err))?;
            }
        }
    }
    let tmp = cluster_dir.join(format!("_tmp-{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    fs::create_dir_all(cluster_dir.join(DONE_DIR)).map_err(|e| PipelineError::io(cluster_dir, e))?;
    Ok(tmp)
}
