//! The `filter` stage: language id, URL blocklist and the Gopher/C4/FineWeb rules
//! (`loam-quality`) over the documents `ingest` kept. Kept documents carry `language`,
//! `language_score`, `c4_lines_removed` and `edited`; dropped ones go to the side output
//! with the rule's reason and the original text.
use std::path::{Path, PathBuf};

use loam_quality::{DocumentFilter, FilterConfig};

use crate::error::{PipelineError, Result};
use crate::schema::{Columns, DocumentReader, Signals};
use std::collections::BTreeMap;

use crate::stage::{assign_by_size, committed_outputs, file_sizes, fingerprint, par_map, ShardId, ShardWriter, Stage};

pub struct Filter {
    inputs: Vec<PathBuf>,
    sizes: Vec<u64>,
    filter: DocumentFilter,
    threads: usize,
    fingerprint: String,
}

impl Filter {
    /// Reads the committed output of `upstream` (a stage folder, normally `<run>/ingest`).
    pub fn new(upstream: &Path, cfg: FilterConfig, threads: usize) -> Result<Self> {
        let (inputs, upstream_fp) = committed_outputs(upstream, "filter")?;
        let sizes = file_sizes(inputs.iter().map(PathBuf::as_path))?;
        let hash = |p: &Path| {
            format!(
                "{:032x}",
                xxhash_rust::xxh3::xxh3_128(&std::fs::read(p).unwrap_or_default())
            )
        };
        // The fingerprint names the model and blocklist by content, not path: the same
        // config spelled from another directory (or absolute, as a scheduler passes it) is
        // the same configuration.
        let mut keyed = cfg.clone();
        keyed.lid_model = PathBuf::new();
        keyed.blocklist = None;
        let key = serde_json::json!({
            "stage": "filter/2",
            "config": keyed,
            "upstream": upstream_fp,
            "lid_model": hash(&cfg.lid_model),
            "blocklist": cfg.blocklist.as_deref().map(hash),
        });
        let fingerprint = fingerprint(&key);
        let filter = DocumentFilter::new(cfg).map_err(|e| PipelineError::Config(e.to_string()))?;
        Ok(Self {
            inputs,
            sizes,
            filter,
            threads: threads.max(1),
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl Stage for Filter {
    fn name(&self) -> &'static str {
        "filter"
    }

    fn columns(&self) -> Columns {
        Columns::Filter
    }

    fn upstream(&self) -> Option<&str> {
        Some("ingest")
    }

    fn run_shard(&self, shard: ShardId, out: &mut ShardWriter) -> Result<()> {
        // Per-language kept counts, gathered here and written once per shard.
        let mut kept_by_language: BTreeMap<String, u64> = BTreeMap::new();
        for i in assign_by_size(&self.sizes, shard) {
            for batch in DocumentReader::open(&self.inputs[i])? {
                let docs = batch?;
                let outcomes = par_map(&docs, self.threads, |d| self.filter.apply(&d.text, d.url.as_deref()));
                for (mut doc, o) in docs.into_iter().zip(outcomes) {
                    out.record_in(doc.text.len() as u64);
                    let verdict = match o.result {
                        Ok(text) => {
                            if o.edited {
                                out.count("edited", 1);
                                out.count("c4_lines_removed", u64::from(o.lines_removed));
                            }
                            match kept_by_language.get_mut(&o.language) {
                                Some(n) => *n += 1,
                                None => {
                                    kept_by_language.insert(o.language.clone(), 1);
                                }
                            }
                            doc.text = text;
                            Ok(())
                        }
                        Err(reason) => Err((reason, format!("language {} ({:.3})", o.language, o.language_score))),
                    };
                    doc.signals = Signals {
                        language: Some(o.language),
                        language_score: Some(o.language_score),
                        c4_lines_removed: Some(o.lines_removed),
                        edited: Some(o.edited),
                        ..Signals::default()
                    };
                    match verdict {
                        Ok(()) => out.keep(&doc)?,
                        Err((reason, detail)) => out.drop_doc(&doc, &reason, Some(&detail))?,
                    }
                }
            }
        }
        for (language, n) in kept_by_language {
            out.count(&format!("kept_language_{language}"), n);
        }
        Ok(())
    }
}
