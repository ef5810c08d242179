//! The global dedup cluster step on an existing distributed engine: DataFusion 55 plans
//! run by datafusion-distributed over `loam worker` processes (Arrow Flight between them),
//! for corpora whose per-document state outgrows one machine. It reads the same signature
//! tables and writes the same files as the local engine (`loam_pipeline::dedup::cluster`),
//! byte for byte:
//!
//! 1. band keys and exact hashes become star-shaped candidate edges (each group's members
//!    to its earliest-dump member); duplicates dropped;
//! 2. connected components by min-label propagation with pointer jumping, one query per
//!    round until no label changes (rounds logged and recorded);
//! 3. per component the survivor is the member first in survivor order (earliest dump —
//!    or latest, by `keep` — then smallest id, then table and row, as the local engine);
//!    exact twins likewise per exact-hash group;
//! 4. the workers write each shard's `.decisions` file; per-dump counts, cluster sizes, the
//!    dedup-rate-vs-dumps curve (a per-component Kruskal in dump order over the same
//!    edges) and the recurring lines come back to the coordinator, which commits.
//!
//! Every intermediate relation is written by the worker that computed it (Parquet under
//! the step's spill folder), so the coordinator holds only counts. Workers must see the
//! run folder at the same path (one machine, or shared storage).
mod codec;
mod engine;
mod merges;
mod plan;
mod scan;
mod session;
mod sink;

use std::path::{Path, PathBuf};

use datafusion::common::DataFusionError;
use loam_pipeline::dedup::cluster::{prepare_cluster, ClusterOutcome, Prepared};
use loam_pipeline::dedup::DedupConfig;
use loam_pipeline::PipelineError;

pub use session::serve;

/// Errors of the distributed engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{0}")]
    Config(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A query failed; the message names the step and what to do.
    #[error("distributed dedup, {step}: {cause}\n  {hint}")]
    Engine {
        step: String,
        // Not a `source`: the message already holds it, and error chains would repeat it.
        cause: Box<DataFusionError>,
        hint: &'static str,
    },
}

impl Error {
    pub(crate) fn engine(step: &str, source: DataFusionError) -> Self {
        let text = source.to_string();
        let hint = if text.contains("Resources exhausted") || text.contains("ResourcesExhausted") {
            "fix: a process ran out of its memory pool and could not spill: raise \
             `loam worker --memory-limit-mb` on the workers (in-process workers and the coordinator \
             use dedup.memory_limit_mb), or add workers"
        } else if [
            "connect",
            "Unavailable",
            "transport",
            "h2 protocol",
            "broken pipe",
            "Broken pipe",
            "reset",
        ]
        .iter()
        .any(|s| text.contains(s))
        {
            "fix: a worker went away or cannot be reached: check the `loam worker` processes at \
             dedup.workers, then rerun `loam dedup --phase cluster` (the step restarts from the \
             signature tables; nothing was committed)"
        } else if text.contains("No such file") {
            // The OS's own words for a missing path (object_store's "… not found" carries
            // them too); a bare "not found" also names missing tables and columns.
            "fix: every worker must see the run folder at the coordinator's path (one machine, or \
             shared storage mounted at the same place); then rerun `loam dedup --phase cluster`"
        } else {
            "fix: rerun `loam dedup --phase cluster --force`; if it fails again, report it with the \
             run's dedup/_index/cluster/_stats"
        };
        Self::Engine {
            step: step.to_owned(),
            cause: Box::new(source),
            hint,
        }
    }
}

/// Runs the cluster step of `stage_dir` (the run's `dedup/` folder) on the cluster that
/// `cfg` names, as `loam_pipeline::dedup::cluster::run_cluster` does locally.
pub fn run_cluster(
    stage_dir: &Path,
    cfg: &DedupConfig,
    signatures_fp: &str,
    of: usize,
    force: bool,
) -> Result<ClusterOutcome, Error> {
    let job = match prepare_cluster(stage_dir, cfg, signatures_fp, of, force)? {
        Prepared::AlreadyDone(s) => return Ok(ClusterOutcome::AlreadyDone(s)),
        Prepared::Job(job) => job,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("starting the coordinator runtime".into(), e))?;
    let spill: PathBuf = job.tmp.join("spill");
    std::fs::create_dir_all(&spill).map_err(|e| Error::Io(format!("creating {}", spill.display()), e))?;
    let (outcome, plans) = rt.block_on(async {
        let runtime = session::runtime(cfg.memory_limit_mb, Some(spill))?;
        let (ctx, workers) = session::coordinator(&cfg.workers, cfg.in_process_workers, runtime)?;
        let mut engine = engine::Engine::new(ctx, &job.tmp);
        let outcome = plan::cluster(&mut engine, &job, cfg, workers).await;
        Ok::<_, Error>((outcome, engine.plans))
    })?;
    // The plans are kept even when a query failed: they show where the step was.
    let stats_dir = job.paths.cluster.join(loam_pipeline::stage::STATS_DIR);
    std::fs::create_dir_all(&stats_dir).map_err(|e| Error::Io(format!("creating {}", stats_dir.display()), e))?;
    loam_pipeline::stage::write_atomic(&stats_dir.join("distributed-plans.txt"), plans.as_bytes())?;
    let outcome = outcome?;
    let summary = job.commit(cfg, outcome.summary, &outcome.recurring, outcome.stats)?;
    Ok(ClusterOutcome::Done(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(msg: &str) -> &'static str {
        match Error::engine("query `q`", DataFusionError::Execution(msg.into())) {
            Error::Engine { hint, .. } => hint,
            _ => unreachable!("Error::engine builds Engine"),
        }
    }

    #[test]
    fn a_missing_run_folder_names_shared_storage_and_nothing_else_does() {
        let missing =
            "Object at location /runs/a/dedup/_tmp-1/edges/x.parquet not found: No such file or directory (os error 2)";
        assert!(hint(missing).contains("shared storage"));
        assert!(!hint("Error during planning: table 'datafusion.public.edges' not found").contains("shared storage"));
        assert!(hint("Resources exhausted: Failed to allocate").contains("--memory-limit-mb"));
        assert!(hint("transport error: connection refused").contains("worker went away"));
    }
}
