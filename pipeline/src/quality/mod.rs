//! The `quality` stage: a fastText reference-likeness classifier that loam trains itself
//! (DCLM's recipe), a `quality_score` on every document, and a keep rule applied exactly
//! over the whole run. Four DAG steps:
//!
//! 1. `quality_train` (one task, [`train`]): per configured model (a language, or `*`),
//!    positives from reference files and negatives from files and from the run's own pool
//!    (documents the filter kept and documents its rules dropped, sampled by hash), split
//!    into training and held-out data **by source**; fastText `supervised`; held-out
//!    ROC-AUC, precision/recall/F1 and the F1-optimal threshold in a model card beside
//!    the `.bin` (and the quantized `.ftz` when it is smaller and as accurate).
//! 2. `quality_score` (per shard, [`score`]): P(hq) of every upstream document, written
//!    to `quality/_index/scores/<shard>.scores` in the shard's row order.
//! 3. `quality_threshold` (one task, [`score::run_threshold`]): the keep rule made global
//!    and exact — for `top_fraction`, an external sort of every scored document by
//!    (score ↓, hash of id ↑) finds the ⌈f·n⌉-th per model.
//! 4. `quality` (per shard, [`apply`]): keeps or drops (`quality_below_threshold`) each
//!    document; kept and dropped rows both carry `quality_score`.
//!
//! ```text
//! <run>/quality/_model/<lang>.bin, <lang>.ftz, <lang>.card.json, _done/train
//!                       (<lang>.train.txt, <lang>.heldout.tsv with keep_training_files)
//! <run>/quality/_index/scores/<shard>.scores + _done/<shard>
//! <run>/quality/_index/threshold.json + _done/threshold
//! <run>/quality/<shard>.parquet, _dropped/, _stats/, _done/   (the stage contract)
//! ```
pub mod apply;
mod email;
pub mod score;
pub mod sources;
pub mod train;

use std::path::{Path, PathBuf};

use loam_quality::classifier::{FastTextArgs, Normalizer, QuantizeArgs};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::stage::DONE_DIR;

/// How the stage decides which scored documents to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepRule {
    /// The ⌈f·n⌉ best-scored documents of each model, exactly (ties broken by a hash of
    /// the id and the run seed).
    TopFraction,
    /// Every document with `quality_score ≥ min_score`.
    MinScore,
    /// GPT-3's rule: keep iff `pareto(α) > 1 − score`, the Pareto draw made from a hash of
    /// the document's id and the run seed (not a global random stream).
    Pareto,
    /// Score only; keep everything.
    All,
}

/// How the training set's classes are balanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// The smaller class's examples are repeated (⌊r⌋ copies, one more with probability
    /// frac(r) by a hash, each copy shuffled apart) until both classes weigh the same, as
    /// DCLM trained on equal positives and negatives; fastText has no example weights.
    Upsample,
    /// Train on the classes as they come.
    None,
}

/// Negatives drawn from the run's own pool (the filter stage's input, as it judged it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    pub enabled: bool,
    /// The stage whose kept and dropped documents are the pool.
    pub stage: String,
    /// Documents to draw (0: as many as the model's training positives).
    pub docs: u64,
    /// Share of them drawn from documents the heuristic rules dropped (reasons `gopher_*`,
    /// `c4_*`, `fineweb_*`); the rest from documents the filter kept.
    pub rule_dropped_share: f64,
    /// Share of the pool's domains held out for evaluation (the split is by registered
    /// domain, so no site is on both sides).
    pub heldout_share: f64,
}

impl Default for PoolConfig {
    /// Three quarters kept documents, one quarter rule-dropped ones: the classifier's job
    /// is to rank documents that already passed the rules, so most negatives look like
    /// them; the rule-dropped quarter teaches it what plain junk looks like.
    fn default() -> Self {
        Self {
            enabled: true,
            stage: "filter".into(),
            docs: 0,
            rule_dropped_share: 0.25,
            heldout_share: 0.2,
        }
    }
}

/// How a source's files are read into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// A file is one document (plain UTF-8 text).
    Text,
    /// Each non-empty line is one document.
    Lines,
    /// A file is one HTML page: charset detection and ingest's main-text extractor.
    Html,
    /// JSON lines with the text in `text_field`.
    Jsonl,
    /// A Parquet file with the text in column `text_field`.
    Parquet,
    /// An RFC 822 e-mail: the body (MIME text parts, quoted-printable/base64 decoded,
    /// HTML parts through the extractor); headers dropped.
    Email,
    /// A BIG-bench `real_or_fake_text` task file: per example, the text from the sentence
    /// its `target_scores` mark 1.0 (the first machine-written one) to the end.
    Bigbench,
}

/// A file of a source, as the config wrote it and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The path as written in the config (relative to it): what model cards and
    /// fingerprints name, so they do not depend on the working directory.
    pub name: String,
}

/// Labelled examples from files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    /// Files, folders (every file below, sorted) or globs, relative to the config file.
    /// A `.tar` / `.tar.gz` is read member by member.
    pub inputs: Vec<String>,
    pub format: SourceFormat,
    /// Held out for evaluation (never trained on). Split by source: give the held-out
    /// part its own entry (e.g. SOTU ≤ 1990 trains, later addresses are held out).
    #[serde(default)]
    pub heldout: bool,
    /// Only tar members whose path matches this glob (e.g. `spam-2/*`).
    #[serde(default)]
    pub members: Option<String>,
    /// JSON field / Parquet column holding the text.
    #[serde(default = "text_field")]
    pub text_field: String,
    /// BIG-bench only: keep examples whose `meta.split` is this (`dev`, `test`).
    #[serde(default)]
    pub split: Option<String>,
    /// At most this many documents (0: all), the first ones in file order.
    #[serde(default)]
    pub max_docs: u64,
    /// The expanded inputs, filled in when the config is resolved.
    #[serde(default, skip_deserializing)]
    pub files: Vec<SourceFile>,
}

fn text_field() -> String {
    "text".into()
}

/// One classifier: the documents it scores (by language) and what it learns from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// fastText language code of the documents this model scores, or `*` for every
    /// language without a model of its own.
    pub language: String,
    /// Use this trained model instead of training one (labels must be hq and cc).
    #[serde(default)]
    pub from_file: Option<PathBuf>,
    #[serde(default)]
    pub positives: Vec<SourceConfig>,
    #[serde(default)]
    pub negatives: Vec<SourceConfig>,
    #[serde(default)]
    pub pool: PoolConfig,
}

impl ModelConfig {
    /// The model's file stem: the language, or `all` for `*`.
    pub fn stem(&self) -> &str {
        if self.language == "*" {
            "all"
        } else {
            &self.language
        }
    }
}

/// `[quality]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// Run the quality steps (else the DAG goes from dedup straight on).
    pub enabled: bool,
    /// The stage whose kept documents are scored.
    pub upstream: String,
    pub keep: KeepRule,
    /// `top_fraction`: share of each model's documents kept (DCLM: top 10%).
    pub top_fraction: f64,
    /// `min_score`: the threshold.
    pub min_score: f64,
    /// `pareto`: the shape α (GPT-3: 9).
    pub pareto_alpha: f64,
    /// The one normaliser of training lines and scored documents.
    pub normalize: Normalizer,
    pub balance: Balance,
    pub fasttext: FastTextArgs,
    pub quantize: QuantizeArgs,
    /// Sort memory of the threshold step and of shuffling the training set; both spill
    /// to disk beyond it.
    pub memory_limit_mb: u64,
    /// Also keep each model's training file (`<lang>.train.txt`, fastText's input) and its
    /// held-out examples with their scores (`<lang>.heldout.tsv`) in `quality/_model/`.
    pub keep_training_files: bool,
    pub models: Vec<ModelConfig>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            upstream: "dedup".into(),
            keep: KeepRule::TopFraction,
            top_fraction: 0.1,
            min_score: 0.5,
            pareto_alpha: 9.0,
            normalize: Normalizer::default(),
            balance: Balance::Upsample,
            fasttext: FastTextArgs::default(),
            quantize: QuantizeArgs::default(),
            memory_limit_mb: 256,
            keep_training_files: false,
            models: Vec::new(),
        }
    }
}

impl QualityConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PipelineError::Config(m));
        if !self.enabled {
            return Ok(());
        }
        if self.upstream.is_empty() || self.upstream.contains('/') {
            return bad("quality.upstream must name a stage of the run, e.g. \"dedup\"".into());
        }
        if !(self.top_fraction > 0.0 && self.top_fraction <= 1.0) {
            return bad(format!(
                "quality.top_fraction = {}: use a share in (0, 1]",
                self.top_fraction
            ));
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return bad(format!("quality.min_score = {}: use 0 to 1", self.min_score));
        }
        if !(self.pareto_alpha > 0.0 && self.pareto_alpha.is_finite()) {
            return bad(format!(
                "quality.pareto_alpha = {}: must be > 0 (GPT-3: 9)",
                self.pareto_alpha
            ));
        }
        if self.memory_limit_mb < 16 {
            return bad(format!(
                "quality.memory_limit_mb = {}: give at least 16",
                self.memory_limit_mb
            ));
        }
        self.fasttext
            .validate()
            .map_err(|e| PipelineError::Config(e.to_string()))?;
        self.quantize
            .validate()
            .map_err(|e| PipelineError::Config(e.to_string()))?;
        if self.models.is_empty() {
            return bad(
                "quality has no model: add a [[quality.models]] entry (language, positives, negatives), \
                 or set quality.enabled = false"
                    .into(),
            );
        }
        let mut seen = Vec::new();
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("quality.models[{i}] ({})", m.language);
            if m.language.is_empty() || m.language.contains(['/', '.', ' ']) {
                return bad(format!(
                    "{at}: language must be a fastText code such as \"en\", or \"*\""
                ));
            }
            if seen.contains(&m.language) {
                return bad(format!("{at}: a second model for the same language"));
            }
            seen.push(m.language.clone());
            let p = &m.pool;
            if !(0.0..=1.0).contains(&p.rule_dropped_share) || !(0.0..1.0).contains(&p.heldout_share) {
                return bad(format!(
                    "{at}.pool: rule_dropped_share must be in [0, 1] and heldout_share in [0, 1)"
                ));
            }
            if m.from_file.is_some() {
                continue;
            }
            if m.positives.is_empty() {
                return bad(format!(
                    "{at}: no positives; list reference sources under [[quality.models.positives]], or give from_file"
                ));
            }
            if m.negatives.is_empty() && !p.enabled {
                return bad(format!(
                    "{at}: no negatives; list sources under [[quality.models.negatives]] or enable pool"
                ));
            }
            let mut names = Vec::new();
            for s in m.positives.iter().chain(&m.negatives) {
                if s.name.is_empty() || names.contains(&&s.name) {
                    return bad(format!("{at}: every source needs a distinct name (got {:?})", s.name));
                }
                names.push(&s.name);
                if s.inputs.is_empty() {
                    return bad(format!("{at}: source {} lists no inputs", s.name));
                }
            }
        }
        Ok(())
    }

    /// The model for documents of `language`: its own, else `*`'s.
    pub fn model_for(&self, language: Option<&str>) -> Option<usize> {
        language
            .and_then(|l| self.models.iter().position(|m| m.language == l))
            .or_else(|| self.models.iter().position(|m| m.language == "*"))
    }
}

/// Folders of the quality stage inside `<run>/quality`.
#[derive(Debug, Clone)]
pub struct QualityPaths {
    pub stage: PathBuf,
    pub model: PathBuf,
    pub scores: PathBuf,
    pub index: PathBuf,
}

impl QualityPaths {
    pub fn new(run_dir: &Path) -> Self {
        let stage = run_dir.join("quality");
        Self {
            model: stage.join("_model"),
            index: stage.join("_index"),
            scores: stage.join("_index").join("scores"),
            stage,
        }
    }

    pub fn train_marker(&self) -> PathBuf {
        self.model.join(DONE_DIR).join("train")
    }

    pub fn threshold(&self) -> PathBuf {
        self.index.join("threshold.json")
    }

    pub fn threshold_marker(&self) -> PathBuf {
        self.index.join(DONE_DIR).join("threshold")
    }

    pub fn card(&self, stem: &str) -> PathBuf {
        self.model.join(format!("{stem}.card.json"))
    }
}

/// The per-document hash that breaks score ties and drives the Pareto draw:
/// xxh3-64 of the id, seeded by the run seed.
pub fn doc_key(id: &str, seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed ^ 0x7175_616c_6974_7900)
}
