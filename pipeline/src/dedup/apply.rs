//! Step 3 of dedup: per shard, applies the cluster step's decisions to the upstream
//! documents — survivors are kept minus recurring lines, duplicates are dropped with
//! `exact_duplicate` / `near_duplicate`, a survivor left without text by line removal with
//! `emptied_by_line_dedup`. Every document, kept or dropped, carries its `dup_cluster`.
use std::path::{Path, PathBuf};

use super::cluster::{self, read_decisions, read_recurring_lines, Status};
use super::text::segments;
use super::{DedupConfig, IndexPaths, Signatures};
use crate::error::{PipelineError, Result};
use crate::schema::{Columns, DocumentReader};
use crate::stage::{fingerprint, ShardId, ShardWriter, Stage};

pub struct Apply {
    signatures: Signatures,
    cluster_dir: PathBuf,
    dumps: Vec<String>,
    recurring: Vec<u64>,
    cfg: DedupConfig,
    fingerprint: String,
}

impl Apply {
    /// Needs the committed cluster step of `stage_dir`.
    pub fn new(stage_dir: &Path, signatures: Signatures, cfg: DedupConfig) -> Result<Self> {
        let cluster_dir = IndexPaths::new(stage_dir).cluster;
        let Some(cluster_fp) = cluster::committed_fingerprint(&cluster_dir) else {
            return Err(PipelineError::Config(format!(
                "{}: the cluster step has not committed; run `loam dedup --phase cluster` first",
                cluster_dir.display()
            )));
        };
        let summary = cluster::read_summary(&cluster_dir)?;
        let recurring = if cfg.lines.enabled {
            read_recurring_lines(&cluster_dir)?
        } else {
            Vec::new()
        };
        let fingerprint = fingerprint(&serde_json::json!({
            "stage": "dedup/1", "cluster": cluster_fp, "signatures": signatures.fingerprint(),
        }));
        Ok(Self {
            signatures,
            cluster_dir,
            dumps: summary.dumps,
            recurring,
            cfg,
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `text` without its recurring lines (or paragraphs), and how many went.
    fn strip_lines(&self, text: &str, buf: &mut Vec<u8>) -> (String, u32) {
        let mut out = String::with_capacity(text.len());
        let mut removed = 0;
        for (content, full) in segments(text, self.cfg.lines.unit) {
            let recurring = self
                .cfg
                .normalize
                .line_hash(content, buf)
                .is_some_and(|h| self.recurring.binary_search(&h).is_ok());
            if recurring {
                removed += 1;
            } else {
                out.push_str(full);
            }
        }
        (out, removed)
    }
}

impl Stage for Apply {
    fn name(&self) -> &'static str {
        "dedup"
    }

    fn columns(&self) -> Columns {
        Columns::Dedup
    }

    fn upstream(&self) -> Option<&str> {
        Some(&self.cfg.upstream)
    }

    fn run_shard(&self, shard: ShardId, out: &mut ShardWriter) -> Result<()> {
        let decisions = read_decisions(&self.cluster_dir, shard)?;
        let mut next = decisions.iter();
        let mut buf = Vec::new();
        for input in self.signatures.shard_inputs(shard) {
            for batch in DocumentReader::open(input)? {
                for mut doc in batch? {
                    let Some(d) = next.next() else {
                        return Err(mismatch(input, decisions.len()));
                    };
                    out.record_in(doc.text.len() as u64);
                    doc.signals.dup_cluster = Some(d.cluster);
                    doc.signals.dup_lines_removed = Some(0);
                    if let Some(reason) = d.status.reason() {
                        let survivor = self.dumps.get(usize::from(d.survivor_dump)).map_or("?", String::as_str);
                        let what = if d.status == Status::Exact {
                            "identical text"
                        } else {
                            "near duplicate"
                        };
                        let detail = format!("{what} of cluster {:016x}, kept from {survivor}", d.cluster);
                        out.drop_doc(&doc, reason, Some(&detail))?;
                        continue;
                    }
                    if !self.recurring.is_empty() {
                        let (text, removed) = self.strip_lines(&doc.text, &mut buf);
                        if removed > 0 {
                            out.count("dup_lines_removed", u64::from(removed));
                            out.count("docs_with_lines_removed", 1);
                            if text.trim().is_empty() {
                                let detail = format!("all {removed} lines recur in other documents");
                                out.drop_doc(&doc, "emptied_by_line_dedup", Some(&detail))?;
                                continue;
                            }
                            doc.text = text;
                            doc.signals.dup_lines_removed = Some(removed);
                        }
                    }
                    out.keep(&doc)?;
                }
            }
        }
        if next.next().is_some() {
            return Err(mismatch(&self.cluster_dir, decisions.len()));
        }
        Ok(())
    }
}

fn mismatch(path: &Path, n: usize) -> PipelineError {
    PipelineError::BadFile {
        path: path.to_owned(),
        offset: 0,
        what: format!("the upstream shard and its {n} dedup decisions disagree in length"),
        fix: "the upstream stage changed after dedup's signatures; rerun dedup with --force".into(),
    }
}
