//! The `dedup` stage: exact (normalised xxh3-128), fuzzy (MinHash LSH) and string-level
//! (recurring lines) deduplication over every dump of a run at once, in three steps:
//!
//! 1. `signatures` (one task per shard): each document's exact hash, LSH band keys and
//!    line hashes → `dedup/_index/signatures/<shard>.parquet`. Texts are read only here.
//! 2. `cluster` (one task): band buckets → candidate pairs → union-find clusters → one
//!    survivor per cluster; recurring lines; the dedup-rate-vs-dumps curve. Works from the
//!    signature tables through external sorts, within `memory_limit_mb` ([`cluster`]).
//! 3. `apply` (one task per shard): keeps survivors minus recurring lines, drops the rest
//!    with a reason, stamps `dup_cluster` on every document ([`apply`]).
//!
//! The signature tables of earlier runs (`previous_index`) join step 2 without their
//! texts being read again: the incremental path.
pub mod apply;
pub mod cluster;
mod graph;
mod index;
mod local;
pub mod minhash;
mod previous;

pub mod text;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder, UInt64Builder};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::schema::DocumentReader;
use crate::stage::{
    assign_by_size, committed_outputs, file_sizes, fingerprint, par_map, sync_dir, tmp_path, IndexShard, ShardId,
};
use minhash::MinHasher;
use text::Normalize;

/// Which copy of a duplicate cluster is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepRule {
    /// The copy from the earliest dump (dump names sort chronologically), then the
    /// smallest id: the first crawl of a page wins, as in the paper's cross-dump dedup.
    Earliest,
    /// The copy from the latest dump, then the smallest id: freshest content wins.
    Latest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinhashConfig {
    pub enabled: bool,
    /// Words per shingle.
    pub ngram: usize,
    pub bands: usize,
    pub rows: usize,
    /// Seed of the permutations: runs to be compared (or merged incrementally) share it.
    pub seed: u64,
    /// When > 0, a band-bucket candidate joins its bucket's earliest member only if their
    /// exact shingle-set Jaccard similarity reaches this value (signatures then also store
    /// each document's shingle keys: ~4 bytes per word).
    pub verify_jaccard: f64,
}

impl Default for MinhashConfig {
    /// FineWeb's setting: 5-grams, 14 bands × 8 rows = 112 permutations.
    fn default() -> Self {
        Self {
            enabled: true,
            ngram: 5,
            bands: 14,
            rows: 8,
            seed: 1,
            verify_jaccard: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinesConfig {
    pub enabled: bool,
    /// `line` (default) or `paragraph` (blank-line-separated blocks).
    pub unit: text::Unit,
    /// A line found in more than this many surviving documents is removed from all of them.
    pub max_docs: u64,
}

impl Default for LinesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            unit: text::Unit::Line,
            max_docs: 10,
        }
    }
}

/// Where the cluster step runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// One process: external sorts and union-find, ~24 bytes per document in memory.
    #[default]
    Local,
    /// DataFusion plans over `loam worker` processes (datafusion-distributed): the same
    /// decisions, with the per-document state spread over the workers.
    Distributed,
}

/// `[dedup]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// Stage whose kept output dedup reads: `filter` (default) or `ingest`.
    pub upstream: String,
    /// Memory for the cluster step, sort buffers and per-document arrays together; the
    /// sorts spill to disk beyond it.
    pub memory_limit_mb: u64,
    pub keep: KeepRule,
    pub normalize: Normalize,
    /// Exact dedup on the normalised text.
    pub exact: bool,
    pub minhash: MinhashConfig,
    pub lines: LinesConfig,
    /// `dedup/_index` folders of earlier runs: their documents take part in clustering
    /// (without being read or written again), so new dumps dedup against them.
    pub previous_index: Vec<PathBuf>,
    /// The cluster step's engine; the decisions are the same byte for byte.
    pub engine: Engine,
    /// With `engine = "distributed"`: the `loam worker` addresses, e.g.
    /// `"http://10.0.0.5:50051"`. Every worker must see the run folder at the same path.
    pub workers: Vec<String>,
    /// With `engine = "distributed"` and no `workers`: this many workers inside the
    /// cluster step's own process over in-memory channels (no sockets), to try the plan.
    pub in_process_workers: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            upstream: "filter".into(),
            memory_limit_mb: 1024,
            keep: KeepRule::Earliest,
            normalize: Normalize::default(),
            exact: true,
            minhash: MinhashConfig::default(),
            lines: LinesConfig::default(),
            previous_index: Vec::new(),
            engine: Engine::Local,
            workers: Vec::new(),
            in_process_workers: 0,
        }
    }
}

impl DedupConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PipelineError::Config(m));
        if !matches!(self.upstream.as_str(), "filter" | "ingest") {
            return bad(format!(
                "dedup.upstream = {:?}: use \"filter\" or \"ingest\"",
                self.upstream
            ));
        }
        let m = &self.minhash;
        if m.enabled && (m.ngram == 0 || m.bands == 0 || m.rows == 0 || m.bands * m.rows > 4096) {
            return bad(format!(
                "dedup.minhash: ngram, bands and rows must be ≥ 1 and bands × rows ≤ 4096 (got {}, {}, {})",
                m.ngram, m.bands, m.rows
            ));
        }
        if !(0.0..=1.0).contains(&m.verify_jaccard) {
            return bad(format!(
                "dedup.minhash.verify_jaccard = {}: use 0 (off) to 1",
                m.verify_jaccard
            ));
        }
        if self.memory_limit_mb < 64 {
            return bad(format!(
                "dedup.memory_limit_mb = {}: give at least 64",
                self.memory_limit_mb
            ));
        }
        if self.lines.enabled && self.lines.max_docs == 0 {
            return bad("dedup.lines.max_docs must be ≥ 1 (or set dedup.lines.enabled = false)".into());
        }
        if self.engine == Engine::Distributed {
            self.validate_distributed()?;
        } else if !self.workers.is_empty() || self.in_process_workers > 0 {
            return bad(
                "dedup.workers / dedup.in_process_workers are set but dedup.engine is \"local\": \
                 set dedup.engine = \"distributed\" to use them, or remove them"
                    .into(),
            );
        }
        if !self.previous_index.is_empty() && self.keep != KeepRule::Earliest {
            return bad(
                "dedup.previous_index needs keep = \"earliest\": published survivors of earlier dumps \
                 cannot be retracted when a later copy would win"
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_distributed(&self) -> Result<()> {
        let bad = |m: String| Err(PipelineError::Config(m));
        match (self.workers.is_empty(), self.in_process_workers) {
            (true, 0) => {
                return bad(
                    "dedup.engine = \"distributed\" needs dedup.workers = [\"http://HOST:PORT\", …] \
                     (start each with `loam worker --listen HOST:PORT`), or dedup.in_process_workers = N \
                     to run N workers inside this process"
                        .into(),
                )
            }
            (false, n) if n > 0 => {
                return bad("give dedup.workers or dedup.in_process_workers, not both".into());
            }
            _ => {}
        }
        if self.in_process_workers > 64 {
            return bad(format!(
                "dedup.in_process_workers = {}: at most 64",
                self.in_process_workers
            ));
        }
        for w in &self.workers {
            let ok = url::Url::parse(w)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.port().is_some());
            if !ok {
                return bad(format!(
                    "dedup.workers entry {w:?}: give a worker address as http://HOST:PORT \
                     (what `loam worker --listen HOST:PORT` prints)"
                ));
            }
        }
        if self.minhash.enabled && self.minhash.verify_jaccard > 0.0 {
            return bad(format!(
                "dedup.minhash.verify_jaccard = {} runs only with dedup.engine = \"local\" \
                 (the distributed plan has no exact-Jaccard check); set it to 0 or use the local engine",
                self.minhash.verify_jaccard
            ));
        }
        Ok(())
    }
}

/// Folders of the dedup index inside `<run>/dedup`.
#[derive(Debug, Clone)]
pub struct IndexPaths {
    pub root: PathBuf,
    pub signatures: PathBuf,
    pub previous: PathBuf,
    pub cluster: PathBuf,
}

impl IndexPaths {
    pub fn new(stage_dir: &Path) -> Self {
        let root = stage_dir.join("_index");
        Self {
            signatures: root.join("signatures"),
            previous: root.join("previous"),
            cluster: root.join("cluster"),
            root,
        }
    }
}

/// Schema of a signature table: one row per document, in the upstream shard's order.
fn signature_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("dump", DataType::Utf8, false),
        Field::new("text_bytes", DataType::UInt64, false),
        // xxh3-128 of the normalised text, little-endian.
        Field::new("exact", DataType::Binary, false),
        // One little-endian u64 per band; empty for a text without words.
        Field::new("bands", DataType::Binary, false),
        // Distinct line hashes, little-endian u64s.
        Field::new("lines", DataType::Binary, false),
        // Sorted distinct shingle keys, little-endian u32s (only with verify_jaccard).
        Field::new("shingles", DataType::Binary, false),
    ]))
}

/// Step 1 over one shard of the upstream stage.
pub struct Signatures {
    inputs: Vec<PathBuf>,
    sizes: Vec<u64>,
    cfg: DedupConfig,
    hasher: MinHasher,
    threads: usize,
    fingerprint: String,
    upstream_fingerprint: String,
}

/// What one document contributes to the index.
struct DocSignature {
    exact: u128,
    bands: Vec<u64>,
    lines: Vec<u64>,
    shingles: Vec<u32>,
}

impl Signatures {
    pub fn new(upstream: &Path, cfg: DedupConfig, threads: usize) -> Result<Self> {
        cfg.validate()?;
        let (inputs, upstream_fp) = committed_outputs(upstream, "dedup")?;
        let sizes = file_sizes(inputs.iter().map(PathBuf::as_path))?;
        let key = serde_json::json!({
            "stage": "dedup-signatures/2",
            "normalize": cfg.normalize,
            "minhash": cfg.minhash,
            "unit": cfg.lines.unit,
            "upstream": upstream_fp,
        });
        let m = &cfg.minhash;
        let hasher = MinHasher::new(m.ngram, m.bands, m.rows, m.seed);
        Ok(Self {
            fingerprint: fingerprint(&key),
            upstream_fingerprint: upstream_fp,
            inputs,
            sizes,
            hasher,
            cfg,
            threads: threads.max(1),
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn upstream_fingerprint(&self) -> &str {
        &self.upstream_fingerprint
    }

    /// Upstream files of `shard`, in the order both `signatures` and `apply` read them.
    pub fn shard_inputs(&self, shard: ShardId) -> Vec<&Path> {
        assign_by_size(&self.sizes, shard)
            .into_iter()
            .map(|i| self.inputs[i].as_path())
            .collect()
    }

    fn sign(&self, text: &str, s: &mut (minhash::Scratch, Vec<u8>)) -> DocSignature {
        let exact = self.cfg.normalize.exact_hash(text, &mut s.1);
        let mut bands = Vec::new();
        let mut shingles = Vec::new();
        if self.cfg.minhash.enabled && self.hasher.signature(text, &mut s.0) {
            self.hasher.band_keys(&s.0, &mut bands);
            if self.cfg.minhash.verify_jaccard > 0.0 {
                shingles = self.hasher.shingle_keys(&s.0).to_vec();
                shingles.sort_unstable();
                shingles.dedup();
            }
        }
        let mut lines = Vec::new();
        if self.cfg.lines.enabled {
            self.cfg
                .normalize
                .unit_hashes(text, self.cfg.lines.unit, &mut s.1, &mut lines);
        }
        DocSignature {
            exact,
            bands,
            lines,
            shingles,
        }
    }

    /// Computes and commits the signature table of `shard`; a committed one with the same
    /// fingerprint is kept (returns `false`).
    pub fn run(&self, stage_dir: &Path, shard: ShardId, force: bool) -> Result<bool> {
        let dir = IndexPaths::new(stage_dir).signatures;
        let Some(commit) = IndexShard::begin(&dir, shard, "parquet", &self.fingerprint, force)? else {
            return Ok(false);
        };
        let dest = commit.dest.clone();
        let tmp = tmp_path(&dest);
        let file = fs::File::create(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
        let perr = |e| PipelineError::Parquet {
            path: dest.clone(),
            source: e,
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(perr)?))
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled("dump".into(), true)
            .build();
        let schema = signature_schema();
        let mut w = ArrowWriter::try_new(std::io::BufWriter::new(file), schema.clone(), Some(props)).map_err(perr)?;
        let scratch = std::sync::Mutex::new(Vec::new());
        for input in self.shard_inputs(shard) {
            for batch in DocumentReader::open(input)? {
                let docs = batch?;
                let sigs = par_map(&docs, self.threads, |d| {
                    let mut s = scratch
                        .lock()
                        .ok()
                        .and_then(|mut v| v.pop())
                        .unwrap_or_else(|| (minhash::Scratch::default(), Vec::new()));
                    let sig = self.sign(&d.text, &mut s);
                    if let Ok(mut v) = scratch.lock() {
                        v.push(s);
                    }
                    sig
                });
                let mut id = StringBuilder::new();
                let mut dump = StringBuilder::new();
                let mut bytes = UInt64Builder::new();
                let mut exact = BinaryBuilder::new();
                let mut bands = BinaryBuilder::new();
                let mut lines = BinaryBuilder::new();
                let mut shingles = BinaryBuilder::new();
                let mut buf = Vec::new();
                for (d, s) in docs.iter().zip(&sigs) {
                    id.append_value(&d.id);
                    dump.append_value(&d.dump);
                    bytes.append_value(d.text.len() as u64);
                    exact.append_value(s.exact.to_le_bytes());
                    buf.clear();
                    buf.extend(s.bands.iter().flat_map(|b| b.to_le_bytes()));
                    bands.append_value(&buf);
                    buf.clear();
                    buf.extend(s.lines.iter().flat_map(|b| b.to_le_bytes()));
                    lines.append_value(&buf);
                    buf.clear();
                    buf.extend(s.shingles.iter().flat_map(|b| b.to_le_bytes()));
                    shingles.append_value(&buf);
                }
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(id.finish()),
                        Arc::new(dump.finish()),
                        Arc::new(bytes.finish()),
                        Arc::new(exact.finish()),
                        Arc::new(bands.finish()),
                        Arc::new(lines.finish()),
                        Arc::new(shingles.finish()),
                    ],
                )?;
                w.write(&batch).map_err(perr)?;
            }
        }
        let file = w.into_inner().map_err(perr)?;
        let file = file.into_inner().map_err(|e| PipelineError::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| PipelineError::io(&tmp, e))?;
        fs::rename(&tmp, &dest).map_err(|e| PipelineError::io(&dest, e))?;
        sync_dir(&dest)?;
        commit.mark("after_signatures")?;
        Ok(true)
    }
}

/// Runs step 1 for `shards` with `parallel` workers; returns how many were computed.
pub fn run_signatures(
    sig: &Signatures,
    stage_dir: &Path,
    shards: &[ShardId],
    force: bool,
    parallel: usize,
) -> Result<(usize, f64)> {
    crate::stage::for_each_shard_parallel(shards, parallel, |shard| sig.run(stage_dir, shard, force))
}
