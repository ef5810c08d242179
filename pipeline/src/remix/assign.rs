//! `remix_assign` (per shard): the mixture key of every upstream document, in the shard's
//! row order, with what the plan and the apply step need — its size, its draw u and its
//! quality score — and, in the file's header, the shard's per-key totals (what the plan's
//! rates are made from, so no document is read twice for them).
//!
//! ```text
//! assign file: "LOAMRA01", u64 LE header bytes, header JSON, u64 LE rows,
//!              rows × (u16 LE key, u8 source, u64 LE draw, u64 LE text bytes, f32 LE quality or NaN,
//!                     f32 LE classifier probability or NaN)
//! ```
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::Array;
use serde::{Deserialize, Serialize};

use super::domains::Assigner;
use super::{draw, DomainSource, MixKey, RemixConfig, RemixPaths};
use crate::error::{PipelineError, Result};
use crate::schema::scan_columns;
use crate::stage::{assign_by_size, committed_outputs, file_sizes, fingerprint, IndexShard, ShardId};

pub const ASSIGN_MAGIC: &[u8; 8] = b"LOAMRA01";
const ROW_BYTES: usize = 27;

/// One mixture key of a shard and its totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCount {
    /// `domain`, or `domain/language` with the joint key.
    pub key: String,
    pub domain: String,
    pub docs: u64,
    pub bytes: u64,
}

/// The header of an assign file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignHeader {
    pub schema: String,
    pub keys: Vec<KeyCount>,
    /// Documents per assignment source (`table`, `blocklist`, `default`).
    pub sources: BTreeMap<String, u64>,
}

/// One document's assignment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssignRow {
    /// Index into the header's keys.
    pub key: u16,
    pub source: DomainSource,
    pub draw: u64,
    pub bytes: u64,
    pub quality: Option<f32>,
    /// The topic classifier's probability, when it assigned the domain.
    pub domain_score: Option<f32>,
}

fn source_code(s: DomainSource) -> u8 {
    match s {
        DomainSource::Table => 0,
        DomainSource::Blocklist => 1,
        DomainSource::Default => 2,
        DomainSource::Classifier => 3,
    }
}

/// Reads a committed assign file.
pub fn read_assign(path: &Path) -> Result<(AssignHeader, Vec<AssignRow>)> {
    let b = fs::read(path).map_err(|e| PipelineError::io(path, e))?;
    let bad = |what: &str| PipelineError::BadFile {
        path: path.to_owned(),
        offset: 0,
        what: what.to_owned(),
        fix: "rerun `loam remix --phase assign --force` for its shard".into(),
    };
    let u64_at = |at: usize| -> Option<u64> {
        let mut x = [0u8; 8];
        x.copy_from_slice(b.get(at..at + 8)?);
        Some(u64::from_le_bytes(x))
    };
    if b.len() < 24 || &b[..8] != ASSIGN_MAGIC {
        return Err(bad("not a loam remix assign file"));
    }
    let hlen = u64_at(8).ok_or_else(|| bad("truncated"))? as usize;
    let header: AssignHeader = b
        .get(16..16 + hlen)
        .and_then(|h| serde_json::from_slice(h).ok())
        .ok_or_else(|| bad("unreadable header"))?;
    let at = 16 + hlen;
    let n = u64_at(at).ok_or_else(|| bad("truncated"))? as usize;
    let body = &b[at + 8..];
    if body.len() != n * ROW_BYTES {
        return Err(bad("truncated assign file"));
    }
    let mut rows = Vec::with_capacity(n);
    for c in body.chunks_exact(ROW_BYTES) {
        let key = u16::from_le_bytes([c[0], c[1]]);
        if usize::from(key) >= header.keys.len() {
            return Err(bad("a row names a key the header does not list"));
        }
        let source = match c[2] {
            0 => DomainSource::Table,
            1 => DomainSource::Blocklist,
            3 => DomainSource::Classifier,
            _ => DomainSource::Default,
        };
        let mut d = [0u8; 8];
        d.copy_from_slice(&c[3..11]);
        let mut s = [0u8; 8];
        s.copy_from_slice(&c[11..19]);
        let q = f32::from_le_bytes([c[19], c[20], c[21], c[22]]);
        let ds = f32::from_le_bytes([c[23], c[24], c[25], c[26]]);
        rows.push(AssignRow {
            key,
            source,
            draw: u64::from_le_bytes(d),
            bytes: u64::from_le_bytes(s),
            quality: (!q.is_nan()).then_some(q),
            domain_score: (!ds.is_nan()).then_some(ds),
        });
    }
    Ok((header, rows))
}

/// The assign step over the upstream stage's committed shards.
pub struct AssignStep {
    inputs: Vec<PathBuf>,
    sizes: Vec<u64>,
    assigner: Assigner,
    cfg: RemixConfig,
    seed: u64,
    fingerprint: String,
    dir: PathBuf,
}

/// xxh3-128 of a file's bytes, hex (for fingerprints of tables and blocklists).
fn file_hash(p: &Path) -> Result<String> {
    let b = fs::read(p).map_err(|e| PipelineError::io(p, e))?;
    Ok(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&b)))
}

impl AssignStep {
    /// Needs the upstream stage committed.
    pub fn new(run_dir: &Path, cfg: &RemixConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let (inputs, upstream_fp) = committed_outputs(&run_dir.join(&cfg.upstream), "remix")?;
        let sizes = file_sizes(inputs.iter().map(PathBuf::as_path))?;
        let paths = RemixPaths::new(run_dir);
        let topic = match &cfg.classifier {
            Some(c) if cfg.uses_classifier() => {
                let fp = super::topic::train_fingerprint(c, seed);
                if super::topic::committed_card(&paths, &fp).is_none() {
                    return Err(PipelineError::Config(format!(
                        "remix.assign uses the topic classifier, but {} holds no model trained with this config; run `loam remix --phase train` first (loam run does it in order)",
                        paths.stage.join("_model").display()
                    )));
                }
                Some(fp)
            }
            _ => None,
        };
        let model = super::topic::model_path(&paths);
        let assigner = Assigner::new(cfg, topic.as_ref().map(|_| model.as_path()))?;
        let tables = cfg.tables.iter().map(|p| file_hash(p)).collect::<Result<Vec<_>>>()?;
        let blocklist = match &cfg.blocklist {
            Some(p) if cfg.assign.iter().any(|a| a == "blocklist") => Some(file_hash(p)?),
            _ => None,
        };
        let fingerprint = fingerprint(&serde_json::json!({
            "stage": "remix-assign/1", "upstream": cfg.upstream, "upstream_fp": upstream_fp,
            "assign": cfg.assign, "tables": tables, "blocklist": blocklist, "key": cfg.key, "seed": seed, "topic": topic,
            "classifier_min_score": cfg.classifier.as_ref().map(|c| c.min_score),
            "builtin": cfg.builtin_table.then(|| format!("{:032x}", xxhash_rust::xxh3::xxh3_128(super::domains::BUILTIN_TABLE.as_bytes()))),
        }));
        Ok(Self {
            inputs,
            sizes,
            assigner,
            cfg: cfg.clone(),
            seed,
            fingerprint,
            dir: RemixPaths::new(run_dir).assign,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every domain the assignment can give.
    pub fn domains(&self) -> Vec<String> {
        self.assigner.domains()
    }

    /// Upstream files of `shard`, in the order both `assign` and `apply` read them.
    pub fn shard_inputs(&self, shard: ShardId) -> Vec<&Path> {
        assign_by_size(&self.sizes, shard)
            .into_iter()
            .map(|i| self.inputs[i].as_path())
            .collect()
    }

    pub fn assign_path(&self, shard: ShardId) -> PathBuf {
        self.dir.join(format!("{}.assign", shard.stem()))
    }

    /// Assigns and commits `shard`; `false` when it was already committed.
    pub fn run(&self, shard: ShardId, force: bool) -> Result<bool> {
        let Some(commit) = IndexShard::begin(&self.dir, shard, "assign", &self.fingerprint, force)? else {
            return Ok(false);
        };
        let mut keys: Vec<KeyCount> = Vec::new();
        let mut key_index: BTreeMap<String, u16> = BTreeMap::new();
        let mut sources: BTreeMap<String, u64> = BTreeMap::new();
        let mut rows: Vec<u8> = Vec::new();
        let mut n = 0u64;
        let mut scratch = String::new();
        let fix = "rerun the upstream stage with --force";
        for input in self.shard_inputs(shard) {
            let mut cols = vec!["id", "text", "url", "language"];
            let has_quality = scan_has_column(input, "quality_score")?;
            if has_quality {
                cols.push("quality_score");
            }
            scan_columns(input, &cols, fix, |b| {
                let col = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>());
                let (ids, texts) = crate::schema::id_and_text(b, input, "remix.upstream")?;
                let urls = col("url");
                let langs = col("language");
                let quality = b
                    .column_by_name("quality_score")
                    .and_then(|c| c.as_primitive_opt::<Float32Type>());
                for i in 0..b.num_rows() {
                    let url = urls.filter(|u| u.is_valid(i)).map(|u| u.value(i));
                    let (domain, source, score) = self.assigner.assign(url, texts.value(i), &mut scratch);
                    let key = match self.cfg.key {
                        MixKey::Domain => domain.clone(),
                        MixKey::DomainLanguage => {
                            let lang = langs.filter(|l| l.is_valid(i)).map_or("unknown", |l| l.value(i));
                            format!("{domain}/{lang}")
                        }
                    };
                    let k = match key_index.get(&key) {
                        Some(&k) => k,
                        None => {
                            let k = u16::try_from(keys.len()).map_err(|_| {
                                PipelineError::Config("remix: more than 65,535 mixture keys in one shard".into())
                            })?;
                            keys.push(KeyCount {
                                key: key.clone(),
                                domain: domain.clone(),
                                docs: 0,
                                bytes: 0,
                            });
                            key_index.insert(key, k);
                            k
                        }
                    };
                    let bytes = texts.value(i).len() as u64;
                    let kc = &mut keys[usize::from(k)];
                    kc.docs += 1;
                    kc.bytes += bytes;
                    *sources.entry(source.as_str().to_owned()).or_default() += 1;
                    let q = quality.filter(|q| q.is_valid(i)).map_or(f32::NAN, |q| q.value(i));
                    rows.extend_from_slice(&k.to_le_bytes());
                    rows.push(source_code(source));
                    rows.extend_from_slice(&draw(ids.value(i), self.seed).to_le_bytes());
                    rows.extend_from_slice(&bytes.to_le_bytes());
                    rows.extend_from_slice(&q.to_le_bytes());
                    rows.extend_from_slice(&score.unwrap_or(f32::NAN).to_le_bytes());
                    n += 1;
                }
                Ok(())
            })?;
        }
        let header = AssignHeader {
            schema: "loam.remix.assign/1".into(),
            keys,
            sources,
        };
        let h = serde_json::to_vec(&header).map_err(|e| PipelineError::Config(e.to_string()))?;
        let mut out = Vec::with_capacity(32 + h.len() + rows.len());
        out.extend_from_slice(ASSIGN_MAGIC);
        out.extend_from_slice(&(h.len() as u64).to_le_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&rows);
        commit.commit(&out, "after_remix_assign")?;
        Ok(true)
    }
}

/// Whether a Parquet file has a top-level column `name`.
fn scan_has_column(path: &Path, name: &str) -> Result<bool> {
    let file = fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        PipelineError::Parquet {
            path: path.to_owned(),
            source: e,
        }
    })?;
    Ok(b.schema().field_with_name(name).is_ok())
}
