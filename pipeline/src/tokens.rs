//! The `tokenizer` and `tokenize` stages: train a byte-level BPE on a deterministic sample
//! of the final corpus (or adopt a given `tokenizer.json`), then encode every document of
//! the corpus into packed token shards (`loam_tokenize::shards`) for the trainer.
//!
//! ```text
//! <run>/tokenizer/tokenizer.json          HF tokenizer (loads in tokenizers / transformers)
//! <run>/tokenizer/tokenizer_config.json   for transformers' AutoTokenizer
//! <run>/tokenizer/loam_tokenizer.json     ids of BOS/EOS/PAD, padded vocabulary, sample, SHA-256
//! <run>/tokenizer/_stats/tokenizer.json   run facts (seconds)
//! <run>/tokenizer/_done/tokenizer         marker (fingerprint), written last
//! <run>/tokenize/<input stem>.tokens      one token shard per document file
//! <run>/tokenize/_stats, _done, _dropped  the stage contract's side outputs
//! <run>/tokenize/summary.json             tokens per document and per dump, bytes per token
//! ```
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use loam_tokenize::shards::{ShardSpec, ShardWriter as TokenWriter};
use loam_tokenize::train::{padded, train, BpeConfig};
use loam_tokenize::{sha256_hex, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::schema::{Columns, Document, DocumentReader};
use crate::stage::{
    assign_by_size, committed_outputs, failpoint, file_sizes, fingerprint, par_map, read_stats, tmp_path, write_atomic,
    ShardId, ShardWriter, Stage, DONE_DIR, STATS_DIR,
};

/// `[tokenizer]`: where the tokenizer comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerConfig {
    /// Stage whose kept documents are the corpus (the sample is drawn from it); `auto`:
    /// the last document stage before the tokenizer in the run's DAG.
    pub upstream: String,
    /// Use this `tokenizer.json` instead of training one (e.g. the released DeepSeek one).
    pub from_file: Option<PathBuf>,
    /// Training sample: each document is drawn with this probability (by a hash of its id
    /// and the run seed)...
    pub sample_rate: f64,
    /// ...until this many bytes of text are drawn.
    pub sample_bytes: u64,
    pub bpe: BpeConfig,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            upstream: "auto".into(),
            from_file: None,
            sample_rate: 1.0,
            sample_bytes: 1 << 30,
            bpe: BpeConfig::default(),
        }
    }
}

impl TokenizerConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return Err(PipelineError::Config(format!(
                "tokenizer.sample_rate = {} must be in (0, 1]",
                self.sample_rate
            )));
        }
        if self.upstream.is_empty() || self.upstream.contains('/') {
            return Err(PipelineError::Config(
                "tokenizer.upstream must name a stage of the run, e.g. \"dedup\"".into(),
            ));
        }
        self.bpe.validate()?;
        Ok(())
    }
}

/// `[tokenize]`: how documents become token shards.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizeConfig {
    /// Also start every document with BOS (EOS always ends one).
    pub add_bos: bool,
}

/// What `<run>/tokenizer/loam_tokenizer.json` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenizerMeta {
    /// "trained" or "file".
    pub source: String,
    pub tokenizer_sha256: String,
    pub vocab_size: usize,
    pub padded_vocab_size: usize,
    pub bos_id: Option<u32>,
    pub eos_id: u32,
    pub pad_id: Option<u32>,
    /// Merges learned (trained tokenizers).
    pub merges: Option<usize>,
    pub sample_docs: u64,
    pub sample_bytes: u64,
}

/// Paths of the tokenizer stage's outputs.
#[derive(Debug, Clone)]
pub struct TokenizerPaths {
    pub dir: PathBuf,
    pub tokenizer: PathBuf,
    pub config: PathBuf,
    pub meta: PathBuf,
    pub marker: PathBuf,
}

impl TokenizerPaths {
    pub fn new(run_dir: &Path) -> Self {
        let dir = run_dir.join("tokenizer");
        Self {
            tokenizer: dir.join("tokenizer.json"),
            config: dir.join("tokenizer_config.json"),
            meta: dir.join("loam_tokenizer.json"),
            marker: dir.join(DONE_DIR).join("tokenizer"),
            dir,
        }
    }

    /// The committed tokenizer's record, or an error saying to run the stage.
    pub fn read_meta(&self, needed_by: &str) -> Result<TokenizerMeta> {
        if !self.marker.exists() {
            return Err(PipelineError::Config(format!(
                "{needed_by} needs a tokenizer, but {} has none committed; run `loam tokenizer train` first (loam run does it in order)",
                self.dir.display()
            )));
        }
        let bytes = fs::read(&self.meta).map_err(|e| PipelineError::io(&self.meta, e))?;
        serde_json::from_slice(&bytes).map_err(|e| PipelineError::BadStats {
            path: self.meta.clone(),
            detail: e.to_string(),
        })
    }
}

/// How the tokenizer step ended.
#[derive(Debug, Clone)]
pub enum TokenizerOutcome {
    Done(TokenizerMeta),
    AlreadyDone(TokenizerMeta),
}

impl TokenizerOutcome {
    pub fn meta(&self) -> &TokenizerMeta {
        match self {
            Self::Done(m) | Self::AlreadyDone(m) => m,
        }
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| PipelineError::io(path, e))
}

/// What the trainer drew from a [`Sample`], known once it drops the stream.
#[derive(Debug, Default)]
struct Drawn {
    docs: u64,
    bytes: u64,
    /// The first read error, which ended the stream early.
    error: Option<PipelineError>,
}

/// Documents of `files` drawn for the training sample, streamed: the trainer pulls them
/// (possibly from several threads) and drops the stream when done, which reports into
/// `drawn`.
struct Sample {
    files: std::vec::IntoIter<PathBuf>,
    reader: Option<DocumentReader>,
    batch: std::vec::IntoIter<Document>,
    rate: f64,
    seed: u64,
    budget: u64,
    docs: u64,
    bytes: u64,
    drawn: Arc<Mutex<Drawn>>,
}

impl Drop for Sample {
    fn drop(&mut self) {
        if let Ok(mut d) = self.drawn.lock() {
            (d.docs, d.bytes) = (self.docs, self.bytes);
        }
    }
}

impl Sample {
    fn drawn(&self, id: &str) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), self.seed);
        (h as f64) < self.rate * (u64::MAX as f64)
    }

    fn fail(&mut self, e: PipelineError) -> Option<String> {
        if let Ok(mut d) = self.drawn.lock() {
            d.error.get_or_insert(e);
        }
        None
    }
}

impl Iterator for Sample {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        loop {
            if self.bytes >= self.budget {
                return None;
            }
            if let Some(doc) = self.batch.next() {
                if self.drawn(&doc.id) {
                    self.docs += 1;
                    self.bytes += doc.text.len() as u64;
                    return Some(doc.text);
                }
                continue;
            }
            match self.reader.as_mut().map(Iterator::next) {
                Some(Some(Ok(batch))) => self.batch = batch.into_iter(),
                Some(Some(Err(e))) => return self.fail(e),
                Some(None) | None => {
                    let path = self.files.next()?;
                    match DocumentReader::open(&path) {
                        Ok(r) => self.reader = Some(r),
                        Err(e) => return self.fail(e),
                    }
                }
            }
        }
    }
}

/// Runs the tokenizer step (one task for the whole run): trains on the sample, or adopts
/// `from_file`; commits the files atomically, the marker last.
pub fn run_tokenizer(run_dir: &Path, cfg: &TokenizerConfig, seed: u64, force: bool) -> Result<TokenizerOutcome> {
    cfg.validate()?;
    let paths = TokenizerPaths::new(run_dir);
    let upstream = run_dir.join(&cfg.upstream);
    let (inputs, upstream_fp) = committed_outputs(&upstream, "tokenizer")?;
    let source_bytes = match &cfg.from_file {
        Some(f) => read_bytes(f)?,
        None => cfg.bpe.pretokenizer_source()?,
    };
    let fp = fingerprint(&serde_json::json!({
        "stage": "tokenizer/1", "config": cfg, "seed": seed, "upstream": upstream_fp,
        "source_sha256": sha256_hex(&source_bytes),
    }));
    fs::create_dir_all(paths.dir.join(DONE_DIR)).map_err(|e| PipelineError::io(&paths.dir, e))?;
    if paths.marker.exists() && !force {
        let found = fs::read_to_string(&paths.marker).map_err(|e| PipelineError::io(&paths.marker, e))?;
        if found.trim() != fp {
            return Err(PipelineError::ConfigChanged {
                dir: paths.dir.clone(),
                shard: "tokenizer".into(),
                found: found.trim().to_owned(),
                expected: fp,
            });
        }
        return Ok(TokenizerOutcome::AlreadyDone(paths.read_meta("tokenizer")?));
    }
    if paths.marker.exists() {
        fs::remove_file(&paths.marker).map_err(|e| PipelineError::io(&paths.marker, e))?;
    }
    let started = Instant::now();
    let meta = match &cfg.from_file {
        Some(file) => adopt(file, &source_bytes, cfg, &paths)?,
        None => {
            let drawn = Arc::new(Mutex::new(Drawn::default()));
            let sample = Sample {
                files: inputs.into_iter(),
                reader: None,
                batch: Vec::new().into_iter(),
                rate: cfg.sample_rate,
                seed,
                budget: cfg.sample_bytes,
                docs: 0,
                bytes: 0,
                drawn: Arc::clone(&drawn),
            };
            let trained = train(&cfg.bpe, sample)?;
            let Drawn { docs, bytes, error } = drawn.lock().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default();
            if let Some(e) = error {
                return Err(e);
            }
            write_atomic(&paths.tokenizer, trained.tokenizer_json.as_bytes())?;
            write_atomic(&paths.config, trained.tokenizer_config_json.as_bytes())?;
            TokenizerMeta {
                source: "trained".into(),
                tokenizer_sha256: sha256_hex(trained.tokenizer_json.as_bytes()),
                vocab_size: trained.vocab_size,
                padded_vocab_size: trained.padded_vocab_size,
                bos_id: Some(trained.bos_id),
                eos_id: trained.eos_id,
                pad_id: Some(trained.pad_id),
                merges: Some(trained.merges),
                sample_docs: docs,
                sample_bytes: bytes,
            }
        }
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| PipelineError::Config(e.to_string()))?;
    write_atomic(&paths.meta, &json)?;
    // Run facts apart from the outputs, so those are byte-identical run to run.
    let stats = paths.dir.join(STATS_DIR);
    fs::create_dir_all(&stats).map_err(|e| PipelineError::io(&stats, e))?;
    let facts = serde_json::json!({"seconds": started.elapsed().as_secs_f64()});
    write_atomic(&stats.join("tokenizer.json"), facts.to_string().as_bytes())?;
    failpoint("before_tokenizer_marker", ShardId::new(0, 1)?);
    write_atomic(&paths.marker, fp.as_bytes())?;
    Ok(TokenizerOutcome::Done(meta))
}

/// Copies a given tokenizer in, finding EOS (and BOS/PAD) by the configured strings.
fn adopt(file: &Path, bytes: &[u8], cfg: &TokenizerConfig, paths: &TokenizerPaths) -> Result<TokenizerMeta> {
    let tok = Tokenizer::load(file)?;
    let eos_id = tok.token_to_id(&cfg.bpe.eos).ok_or_else(|| {
        PipelineError::Config(format!(
            "{}: has no token {:?} to end documents with; set tokenizer.bpe.eos to its EOS string (DeepSeek LLM: \"<｜end▁of▁sentence｜>\")",
            file.display(),
            cfg.bpe.eos
        ))
    })?;
    write_atomic(&paths.tokenizer, bytes)?;
    let sibling = file.with_file_name("tokenizer_config.json");
    if let Ok(c) = fs::read(&sibling) {
        write_atomic(&paths.config, &c)?;
    }
    Ok(TokenizerMeta {
        source: "file".into(),
        tokenizer_sha256: tok.sha256().to_owned(),
        vocab_size: tok.vocab_size(),
        padded_vocab_size: padded(tok.vocab_size(), cfg.bpe.pad_multiple),
        bos_id: tok.token_to_id(&cfg.bpe.bos),
        eos_id,
        pad_id: tok.token_to_id(&cfg.bpe.pad),
        merges: None,
        sample_docs: 0,
        sample_bytes: 0,
    })
}

/// The `tokenize` stage: each input document file becomes one token shard.
pub struct Tokenize {
    inputs: Vec<PathBuf>,
    sizes: Vec<u64>,
    tokenizer: Tokenizer,
    meta: TokenizerMeta,
    cfg: TokenizeConfig,
    out_dir: PathBuf,
    upstream: String,
    threads: usize,
    fingerprint: String,
}

/// Per-document token counts are histogrammed in powers of two up to 2^31.
const HIST_BUCKETS: usize = 32;

impl Tokenize {
    /// Reads the committed `upstream` stage and the run's committed tokenizer.
    pub fn new(run_dir: &Path, upstream: &str, cfg: TokenizeConfig, threads: usize) -> Result<Self> {
        let (inputs, upstream_fp) = committed_outputs(&run_dir.join(upstream), "tokenize")?;
        let sizes = file_sizes(inputs.iter().map(PathBuf::as_path))?;
        let paths = TokenizerPaths::new(run_dir);
        let meta = paths.read_meta("tokenize")?;
        let tokenizer = Tokenizer::load(&paths.tokenizer)?;
        if tokenizer.sha256() != meta.tokenizer_sha256 {
            return Err(PipelineError::Config(format!(
                "{} does not match the SHA-256 in {}: it was changed after the tokenizer step; rerun it with --force",
                paths.tokenizer.display(),
                paths.meta.display()
            )));
        }
        let fingerprint = fingerprint(&serde_json::json!({
            "stage": "tokenize/1", "config": cfg, "upstream": upstream_fp, "tokenizer": meta.tokenizer_sha256,
            "padded_vocab_size": meta.padded_vocab_size,
        }));
        Ok(Self {
            inputs,
            sizes,
            tokenizer,
            meta,
            cfg,
            out_dir: run_dir.join("tokenize"),
            upstream: upstream.to_owned(),
            threads: threads.max(1),
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn encode_file(&self, input: &Path, out: &mut ShardWriter) -> Result<()> {
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = self.out_dir.join(format!("{stem}.tokens"));
        let tmp = tmp_path(&dest);
        remove_stale(&self.out_dir, &format!(".{stem}.tokens.tmp."))?;
        let source = input
            .parent()
            .and_then(Path::file_name)
            .map(|d| {
                format!(
                    "{}/{}",
                    d.to_string_lossy(),
                    input.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                )
            })
            .unwrap_or_else(|| input.display().to_string());
        let mut w = TokenWriter::create(
            &dest,
            &tmp,
            ShardSpec {
                tokenizer_sha256: self.meta.tokenizer_sha256.clone(),
                vocab_size: self.meta.vocab_size,
                padded_vocab_size: self.meta.padded_vocab_size,
                eos_id: self.meta.eos_id,
                bos_id: if self.cfg.add_bos { self.meta.bos_id } else { None },
                source,
            },
        )?;
        let mut hist = [0u64; HIST_BUCKETS];
        // Totals per dump, language and mix domain, written as counters once per file (not
        // formatted per document).
        let mut groups: [BTreeMap<String, TokenTotals>; 3] = Default::default();
        // Tokens and bytes of first copies only: the unique tokens U that `score` weighs
        // the repetition of remix's copies against.
        let (mut unique_tokens, mut unique_bytes) = (0u64, 0u64);
        for batch in DocumentReader::open(input)? {
            let docs = batch?;
            let encoded = par_map(&docs, self.threads, |d| self.tokenizer.encode(&d.text));
            for (doc, ids) in docs.iter().zip(encoded) {
                out.record_in(doc.text.len() as u64);
                let ids = match ids {
                    Ok(ids) => ids,
                    Err(e) => {
                        out.drop_doc(doc, "encode_failed", Some(&e.to_string()))?;
                        continue;
                    }
                };
                w.push_doc(&ids, doc.text.len() as u64)?;
                out.keep_counted();
                let stored = ids.len() as u64 + 1 + u64::from(self.cfg.add_bos);
                hist[(64 - stored.leading_zeros() as usize).min(HIST_BUCKETS - 1)] += 1;
                if doc.signals.repeat.unwrap_or(0) == 0 {
                    unique_tokens += stored;
                    unique_bytes += doc.text.len() as u64;
                }
                let keys = [
                    Some(doc.dump.as_str()),
                    Some(doc.signals.language.as_deref().unwrap_or(UNKNOWN)),
                    doc.signals.mix_domain.as_deref(),
                ];
                for (g, key) in groups.iter_mut().zip(keys) {
                    let Some(key) = key else { continue };
                    let t = match g.get_mut(key) {
                        Some(t) => t,
                        None => g.entry(key.to_owned()).or_default(),
                    };
                    t.docs += 1;
                    t.tokens += stored;
                    t.text_bytes += doc.text.len() as u64;
                }
            }
            failpoint("mid_tokens", out.shard());
        }
        for (prefix, g) in GROUPS.iter().zip(&groups) {
            for (key, t) in g {
                out.count(&format!("{prefix}tokens/{key}"), t.tokens);
                out.count(&format!("{prefix}docs/{key}"), t.docs);
                out.count(&format!("{prefix}text_bytes/{key}"), t.text_bytes);
            }
        }
        for (k, n) in hist.iter().enumerate().filter(|(_, n)| **n > 0) {
            // Bucket k holds documents of 2^(k-1) ..= 2^k - 1 stored tokens.
            out.count(&format!("doc_tokens_lt_2^{k:02}"), *n);
        }
        out.count("unique_tokens", unique_tokens);
        out.count("unique_text_bytes", unique_bytes);
        let header = w.commit()?;
        out.count("tokens", header.n_tokens);
        out.count("text_bytes", header.text_bytes);
        let len = fs::metadata(&dest)
            .map(|m| m.len())
            .map_err(|e| PipelineError::io(&dest, e))?;
        out.add_bytes_out(len);
        Ok(())
    }
}

/// Deletes temporary token files a killed run left behind (any process id).
fn remove_stale(dir: &Path, prefix: &str) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            fs::remove_file(e.path()).map_err(|err| PipelineError::io(e.path(), err))?;
        }
    }
    Ok(())
}

impl Stage for Tokenize {
    fn name(&self) -> &'static str {
        "tokenize"
    }
    fn columns(&self) -> Columns {
        Columns::Quality
    }
    fn upstream(&self) -> Option<&str> {
        Some(&self.upstream)
    }
    fn writes_documents(&self) -> bool {
        false
    }
    fn run_shard(&self, shard: ShardId, out: &mut ShardWriter) -> Result<()> {
        for i in assign_by_size(&self.sizes, shard) {
            self.encode_file(&self.inputs[i], out)?;
        }
        Ok(())
    }
}

/// Counter prefixes of the per-group totals: `tokens/<dump>`, `language:tokens/<code>`,
/// `domain:tokens/<mix domain>`.
const GROUPS: [&str; 3] = ["", "language:", "domain:"];

/// The language key of documents without one.
const UNKNOWN: &str = "unknown";

/// Totals of one dump (or of the whole corpus) in token shards.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenTotals {
    pub docs: u64,
    /// Stored tokens, EOS (and BOS) included: what the model is trained to predict.
    pub tokens: u64,
    pub text_bytes: u64,
    /// `text_bytes / tokens`: bits per byte = (bits per token) / this.
    pub bytes_per_token: f64,
    pub tokens_per_doc: f64,
}

impl TokenTotals {
    fn finish(mut self) -> Self {
        self.bytes_per_token = if self.tokens == 0 {
            0.0
        } else {
            self.text_bytes as f64 / self.tokens as f64
        };
        self.tokens_per_doc = if self.docs == 0 {
            0.0
        } else {
            self.tokens as f64 / self.docs as f64
        };
        self
    }
}

/// `<run>/tokenize/summary.json`: what the trainer and the report read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenizeSummary {
    pub tokenizer_sha256: String,
    pub vocab_size: usize,
    pub padded_vocab_size: usize,
    pub eos_id: u32,
    pub total: TokenTotals,
    pub per_dump: BTreeMap<String, TokenTotals>,
    /// By the language the filter found (`unknown` without one).
    #[serde(default)]
    pub per_language: BTreeMap<String, TokenTotals>,
    /// By remix's mix domain (documents not remixed have none and are not counted here).
    #[serde(default)]
    pub per_domain: BTreeMap<String, TokenTotals>,
    /// Documents by stored tokens: key `lt_2^k` counts documents of 2^(k-1)..2^k-1 tokens.
    pub doc_tokens_histogram: BTreeMap<String, u64>,
    /// Token shard files, relative to the run's `tokenize/` folder, in order.
    pub shards: Vec<String>,
}

/// Sums the committed shards' stats into `summary.json` (written atomically).
pub fn write_summary(run_dir: &Path) -> Result<TokenizeSummary> {
    let dir = run_dir.join("tokenize");
    let meta = TokenizerPaths::new(run_dir).read_meta("tokenize summary")?;
    let mut s = TokenizeSummary {
        tokenizer_sha256: meta.tokenizer_sha256,
        vocab_size: meta.vocab_size,
        padded_vocab_size: meta.padded_vocab_size,
        eos_id: meta.eos_id,
        ..Default::default()
    };
    let stats_dir = dir.join(STATS_DIR);
    let mut names: Vec<PathBuf> = fs::read_dir(&stats_dir)
        .map_err(|e| PipelineError::io(&stats_dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut groups: [BTreeMap<String, TokenTotals>; 3] = Default::default();
    for p in names {
        let st = read_stats(&p)?;
        s.total.docs += st.kept;
        for (k, &n) in &st.counters {
            if let Some((what, key)) = k.split_once('/') {
                // Longest prefix first: "" matches every counter.
                let Some((g, what)) = (0..GROUPS.len())
                    .rev()
                    .find_map(|g| what.strip_prefix(GROUPS[g]).map(|w| (g, w)))
                else {
                    continue;
                };
                let t = groups[g].entry(key.to_owned()).or_default();
                match what {
                    "tokens" => t.tokens += n,
                    "docs" => t.docs += n,
                    "text_bytes" => t.text_bytes += n,
                    _ => {}
                }
            } else if let Some(b) = k.strip_prefix("doc_tokens_") {
                *s.doc_tokens_histogram.entry(b.to_owned()).or_default() += n;
            } else if k == "tokens" {
                s.total.tokens += n;
            } else if k == "text_bytes" {
                s.total.text_bytes += n;
            }
        }
    }
    s.total = s.total.finish();
    let finish = |g: BTreeMap<String, TokenTotals>| g.into_iter().map(|(k, t)| (k, t.finish())).collect();
    let [dumps, languages, domains] = groups;
    s.per_dump = finish(dumps);
    s.per_language = finish(languages);
    s.per_domain = finish(domains);
    let mut shards: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| PipelineError::io(&dir, e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tokens") && !n.starts_with('.'))
        .collect();
    shards.sort();
    s.shards = shards;
    let json = serde_json::to_vec_pretty(&s).map_err(|e| PipelineError::Config(e.to_string()))?;
    write_atomic(&dir.join("summary.json"), &json)?;
    Ok(s)
}
