//! The cluster step's outputs on disk and their readers: the per-shard decisions `apply`
//! reads, the recurring-line list, the summary with the curve, and the completion marker.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::sort::le_u64;
use crate::stage::{sync_dir, tmp_path, ShardId, DONE_DIR};

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Keep = 0,
    /// An identical (normalised) text ranks before it.
    Exact = 1,
    /// Its cluster's survivor is a near duplicate.
    Near = 2,
}

impl Status {
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::Keep => None,
            Self::Exact => Some("exact_duplicate"),
            Self::Near => Some("near_duplicate"),
        }
    }
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Keep),
            1 => Some(Self::Exact),
            2 => Some(Self::Near),
            _ => None,
        }
    }
}

/// One point of the dedup-rate-vs-dumps curve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// Number of dumps deduplicated together (the first k, chronologically).
    pub dumps: usize,
    pub last_dump: String,
    pub documents: u64,
    pub removed: u64,
    pub removed_share: f64,
}

impl CurvePoint {
    /// The point after the first `dumps` dumps (the last one `last_dump`).
    pub fn new(dumps: usize, last_dump: &str, documents: u64, removed: u64) -> Self {
        Self {
            dumps,
            last_dump: last_dump.to_owned(),
            documents,
            removed,
            removed_share: if documents == 0 {
                0.0
            } else {
                removed as f64 / documents as f64
            },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DumpCounts {
    pub documents: u64,
    pub kept: u64,
    pub exact_duplicate: u64,
    pub near_duplicate: u64,
    /// Documents from an earlier run's index (not written by this run).
    pub from_previous_index: bool,
}

/// `dedup/_index/cluster/summary.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterSummary {
    pub fingerprint: String,
    pub documents: u64,
    pub documents_from_previous_index: u64,
    pub kept: u64,
    pub exact_duplicate: u64,
    pub near_duplicate: u64,
    /// Dumps in chronological (name) order; decisions refer to them by index.
    pub dumps: Vec<String>,
    pub per_dump: BTreeMap<String, DumpCounts>,
    pub curve: Vec<CurvePoint>,
    /// Cluster size → number of clusters (singletons included).
    pub cluster_sizes: BTreeMap<u64, u64>,
    /// Edges written from exact groups and band buckets (a chain per group).
    pub candidate_edges: u64,
    /// Survivors of an earlier run that this run's clustering would drop, because a new
    /// document joins their cluster to one with an earlier survivor. Published output
    /// cannot be retracted, so they stay; a full rerun would remove them.
    pub bridged_previous_survivors: u64,
    pub distinct_lines: u64,
    pub recurring_lines: u64,
    /// Band-bucket candidates dropped by `verify_jaccard` (0 when off).
    pub candidates_rejected_by_jaccard: u64,
}

/// `dedup/_index/cluster/_stats/cluster.json`: how the step ran (not what it decided), kept
/// apart so the index itself is byte-identical whatever the budget or machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterRunStats {
    /// `local` or `distributed`.
    #[serde(default)]
    pub engine: String,
    pub seconds: f64,
    pub documents: u64,
    /// Bytes of sort runs written to disk (0 when every sort fit in memory).
    pub spilled_bytes: u64,
    pub sort_budget_bytes: u64,
    pub per_document_array_bytes: u64,
    /// Distributed engine: workers in the cluster, label-propagation rounds until no label
    /// changed, and Arrow bytes sent between stages over the network boundaries.
    #[serde(default)]
    pub workers: usize,
    #[serde(default)]
    pub iterations: u32,
    #[serde(default)]
    pub shuffled_bytes: u64,
}

impl ClusterSummary {
    /// Counts `n` documents of `dump` with `status` (either engine, document by document
    /// or by group).
    pub fn count(&mut self, dump: &str, from_previous_index: bool, status: Status, n: u64) {
        let c = self.per_dump.entry(dump.to_owned()).or_default();
        c.documents += n;
        c.from_previous_index = from_previous_index;
        match status {
            Status::Keep => c.kept += n,
            Status::Exact => c.exact_duplicate += n,
            Status::Near => c.near_duplicate += n,
        }
    }

    /// The run's totals from the per-dump counts.
    pub fn add_totals(&mut self) {
        for c in self.per_dump.values() {
            self.documents += c.documents;
            self.kept += c.kept;
            self.exact_duplicate += c.exact_duplicate;
            self.near_duplicate += c.near_duplicate;
            if c.from_previous_index {
                self.documents_from_previous_index += c.documents;
            }
        }
    }

    /// The curve as a small table for the terminal.
    pub fn curve_table(&self) -> String {
        let mut t = String::from(
            "dedup rate vs dumps deduplicated together\n  dumps  last dump              documents    removed\n",
        );
        for p in &self.curve {
            t.push_str(&format!(
                "  {:>5}  {:<20} {:>11} {:>9.1}%\n",
                p.dumps,
                p.last_dump,
                p.documents,
                100.0 * p.removed_share
            ));
        }
        t
    }
}

const DECISIONS_MAGIC: &[u8; 8] = b"LOAMDEC1";
pub(super) const LINES_MAGIC: &[u8; 8] = b"LOAMLIN1";

/// The decision for one document, as `apply` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub status: Status,
    /// xxh3-64 of the survivor's id: the same for every member of a cluster.
    pub cluster: u64,
    /// Index into [`ClusterSummary::dumps`] of the survivor's dump.
    pub survivor_dump: u16,
}

pub(super) fn decisions_path(cluster_dir: &Path, shard: ShardId) -> PathBuf {
    cluster_dir.join(format!("{}.decisions", shard.stem()))
}

/// Writes one shard's decisions file in its row order, whichever engine decided: a temporary
/// file renamed into place by [`DecisionsWriter::finish`] once every row is there.
pub struct DecisionsWriter {
    w: BufWriter<File>,
    tmp: PathBuf,
    dest: PathBuf,
    rows: u64,
    written: u64,
}

impl DecisionsWriter {
    pub fn create(cluster_dir: &Path, shard: ShardId, rows: u64) -> Result<Self> {
        let dest = decisions_path(cluster_dir, shard);
        let tmp = tmp_path(&dest);
        let f = File::create(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(DECISIONS_MAGIC)
            .and_then(|()| w.write_all(&rows.to_le_bytes()))
            .map_err(|e| PipelineError::io(&tmp, e))?;
        Ok(Self {
            w,
            tmp,
            dest,
            rows,
            written: 0,
        })
    }

    /// The decision of the next row.
    pub fn push(&mut self, d: Decision) -> Result<()> {
        let mut rec = [0u8; 11];
        rec[0] = d.status as u8;
        rec[1..9].copy_from_slice(&d.cluster.to_le_bytes());
        rec[9..].copy_from_slice(&d.survivor_dump.to_le_bytes());
        self.w.write_all(&rec).map_err(|e| PipelineError::io(&self.tmp, e))?;
        self.written += 1;
        Ok(())
    }

    /// Checks that every row has a decision, then commits the file.
    pub fn finish(self) -> Result<()> {
        if self.written != self.rows {
            return Err(PipelineError::BadFile {
                path: self.dest,
                offset: 0,
                what: format!("{} decisions for a shard of {} documents", self.written, self.rows),
                fix: "rerun `loam dedup --phase cluster --force`".into(),
            });
        }
        let f = self
            .w
            .into_inner()
            .map_err(|e| PipelineError::io(&self.tmp, e.into_error()))?;
        f.sync_all().map_err(|e| PipelineError::io(&self.tmp, e))?;
        drop(f);
        fs::rename(&self.tmp, &self.dest).map_err(|e| PipelineError::io(&self.dest, e))?;
        sync_dir(&self.dest)
    }
}

/// Reads the decisions of `shard`, in the upstream shard's row order.
pub fn read_decisions(cluster_dir: &Path, shard: ShardId) -> Result<Vec<Decision>> {
    let path = decisions_path(cluster_dir, shard);
    let bytes = fs::read(&path).map_err(|e| PipelineError::io(&path, e))?;
    let bad = |what: &str| PipelineError::BadFile {
        path: path.clone(),
        offset: 0,
        what: what.into(),
        fix: "rerun `loam dedup --phase cluster --force`".into(),
    };
    if bytes.len() < 16 || &bytes[..8] != DECISIONS_MAGIC {
        return Err(bad("not a loam decisions file"));
    }
    let n = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| bad("short header"))?) as usize;
    let body = &bytes[16..];
    if body.len() != n * 11 {
        return Err(bad("truncated decisions file"));
    }
    body.chunks_exact(11)
        .map(|c| {
            let status = Status::from_u8(c[0]).ok_or_else(|| bad("unknown status byte"))?;
            let mut x = [0u8; 8];
            x.copy_from_slice(&c[1..9]);
            Ok(Decision {
                status,
                cluster: u64::from_le_bytes(x),
                survivor_dump: u16::from_le_bytes([c[9], c[10]]),
            })
        })
        .collect()
}

/// Reads the sorted recurring-line hashes.
pub fn read_recurring_lines(cluster_dir: &Path) -> Result<Vec<u64>> {
    let path = cluster_dir.join("recurring_lines.bin");
    let bytes = fs::read(&path).map_err(|e| PipelineError::io(&path, e))?;
    if bytes.len() < 8 || &bytes[..8] != LINES_MAGIC || (bytes.len() - 8) % 8 != 0 {
        return Err(PipelineError::BadFile {
            path,
            offset: 0,
            what: "not a loam recurring-lines file".into(),
            fix: "rerun `loam dedup --phase cluster --force`".into(),
        });
    }
    Ok(bytes[8..].chunks_exact(8).map(le_u64).collect())
}

pub fn read_summary(cluster_dir: &Path) -> Result<ClusterSummary> {
    let path = cluster_dir.join("summary.json");
    let bytes = fs::read(&path).map_err(|e| PipelineError::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| PipelineError::BadStats {
        path,
        detail: e.to_string(),
    })
}

/// The cluster step's fingerprint, if it has committed.
pub fn committed_fingerprint(cluster_dir: &Path) -> Option<String> {
    fs::read_to_string(cluster_dir.join(DONE_DIR).join("cluster"))
        .ok()
        .map(|s| s.trim().to_owned())
}
