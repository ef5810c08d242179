//! The `remix` stage: a mixture domain for every document, a target mixture over those
//! domains, and deterministic up/down-sampling with an epoch cap. Three DAG steps:
//!
//! 1. `remix_assign` (per shard, [`assign`]): each upstream document's domain, by the
//!    configured precedence (host-suffix table, UT1 blocklist as `blocked`, else
//!    `other`), written to `remix/_index/assign/<shard>.assign` in the shard's row order
//!    with its size and draw; per-domain counts go into the index header.
//! 2. `remix_plan` (one task, [`plan`]): merges the per-shard counts into per-domain rates
//!    r = w·T/n capped at `max_epochs` (the excess redistributed to a fixed point, or the
//!    total shrunk, or an error), and — reading only the index rows, never a text — the
//!    exact copies every document gets, so `plan.json` states the achieved mixture before
//!    any document is written.
//! 3. `remix` (per shard, [`apply`]): writes ⌊r⌋ copies of each document plus one more
//!    when its draw says so, each copy with `repeat` (0-based), the shard's rows ordered by
//!    a hash of (id, repeat) so copies of a document are not adjacent; documents with no
//!    copy go to `_dropped` as `remix_downsample`.
//!
//! Every decision comes from u = xxh3(seed, "remix", id) / 2⁶⁴ and from global counts, so
//! the output is the same at any sharding and thread count.
//!
//! ```text
//! <run>/remix/_index/assign/<shard>.assign + _done/<shard>
//! <run>/remix/_index/plan.bin + _done/plan      (per-domain rates and exact-mode cuts)
//! <run>/remix/_stats/plan.json                  (what the user reads)
//! <run>/remix/<shard>.parquet, _dropped/, _stats/, _done/   (the stage contract)
//! ```
pub mod apply;
pub mod assign;
pub mod domains;
pub mod mixture;
pub mod plan;
pub mod topic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::stage::DONE_DIR;

/// What the mixture is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// UTF-8 bytes of text (remix runs before tokenization; bytes track tokens closely
    /// within a language).
    Bytes,
    Documents,
}

/// What a mixture share is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixKey {
    Domain,
    /// Joint key `domain/language` (e.g. `literature/zh`).
    DomainLanguage,
}

/// How the fractional part of a rate becomes copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One more copy iff u < frac(r): independent per document, on target in expectation.
    Bernoulli,
    /// Documents ranked within their key (by u, or by quality) and the first ones get the
    /// extra copy until the key's quota is met: on target to within one document.
    Exact,
}

/// The order `exact` mode fills a quota in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Within {
    /// By the draw u (a uniform random sample).
    Random,
    /// By `quality_score`, best first (unscored documents last), ties by u.
    Quality,
}

/// What happens when a domain's rate would pass `max_epochs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCap {
    /// Cap the domain and give its excess to the uncapped ones in proportion to their
    /// weights, until nothing is over the cap (the total is kept while any room is left).
    Redistribute,
    /// Keep the shares and shrink the total until no domain is over the cap.
    ShrinkTotal,
    /// Exit naming the domain.
    Error,
}

/// Where a document's domain came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DomainSource {
    Table,
    Blocklist,
    Classifier,
    Default,
}

impl DomainSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Blocklist => "blocklist",
            Self::Classifier => "classifier",
            Self::Default => "default",
        }
    }
}

/// How the target shares are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The shares the corpus has (a pass-through, unless `total` is set).
    Natural,
    /// `weights`, normalised.
    Weights,
    /// w ∝ n^α (α = 1: natural; α → 0: uniform).
    Temperature,
    /// UniMax (Chung et al., 2023): a uniform budget per key, each capped at
    /// `max_epochs`, what a small key cannot use going to the rest.
    Unimax,
}

/// `[remix.target]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    pub kind: TargetKind,
    /// `weights`: per key (a domain, or `domain/language` with the joint key).
    pub weights: BTreeMap<String, f64>,
    /// `temperature`: the exponent α.
    pub alpha: f64,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            kind: TargetKind::Natural,
            weights: BTreeMap::new(),
            alpha: 0.5,
        }
    }
}

/// The size of the output: the input's, or an absolute amount in `unit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Total {
    Amount(u64),
    Named(String),
}

impl Total {
    /// The absolute amount, `None` for `natural`.
    pub fn amount(&self) -> Option<u64> {
        match self {
            Self::Amount(n) => Some(*n),
            Self::Named(_) => None,
        }
    }
}

/// `[remix]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemixConfig {
    pub enabled: bool,
    /// The stage remixed; `auto`: quality when it runs, else dedup.
    pub upstream: String,
    /// Domain assignment, first match wins: any of `table`, `blocklist`, `classifier`.
    pub assign: Vec<String>,
    /// Host-suffix tables (`suffix<TAB>domain`), consulted before the built-in one.
    pub tables: Vec<PathBuf>,
    /// Use loam's default table (data/remix/domains.tsv) after the user's.
    pub builtin_table: bool,
    /// A domain blocklist (text, or the UT1 `.tar.gz`): its hosts get domain `blocked`.
    pub blocklist: Option<PathBuf>,
    pub unit: Unit,
    pub key: MixKey,
    pub mode: Mode,
    pub within: Within,
    /// At most this many copies of a document on average over its key (Muennighoff et
    /// al. 2023: up to 4 epochs cost almost nothing).
    pub max_epochs: f64,
    pub on_cap: OnCap,
    /// `"natural"` or an amount in `unit`.
    pub total: Total,
    pub target: TargetConfig,
    /// A topic classifier loam trains (`remix_train`) to assign domains by text.
    pub classifier: Option<topic::TopicConfig>,
    /// Sort memory of the exact-mode plan and the per-shard reorder of copies; both spill
    /// (or take more passes) beyond it.
    pub memory_limit_mb: u64,
}

impl Default for RemixConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            upstream: "auto".into(),
            assign: vec!["table".into(), "blocklist".into()],
            tables: Vec::new(),
            builtin_table: true,
            blocklist: None,
            unit: Unit::Bytes,
            key: MixKey::Domain,
            mode: Mode::Bernoulli,
            within: Within::Random,
            max_epochs: 4.0,
            on_cap: OnCap::Redistribute,
            total: Total::Named("natural".into()),
            target: TargetConfig::default(),
            classifier: None,
            memory_limit_mb: 256,
        }
    }
}

impl RemixConfig {
    /// Whether domains come (partly) from the topic classifier.
    pub fn uses_classifier(&self) -> bool {
        self.classifier.is_some() && self.assign.iter().any(|a| a == "classifier")
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PipelineError::Config(m));
        if self.upstream.is_empty() || self.upstream.contains('/') {
            return bad("remix.upstream must name a stage of the run, e.g. \"quality\", or be \"auto\"".into());
        }
        for a in &self.assign {
            if !matches!(a.as_str(), "table" | "blocklist" | "classifier") {
                return bad(format!(
                    "remix.assign: unknown source {a:?}; use \"table\", \"blocklist\" and/or \"classifier\""
                ));
            }
        }
        if self.assign.iter().any(|a| a == "classifier") && self.classifier.is_none() {
            return bad(
                "remix.assign names \"classifier\" but there is no [remix.classifier] with its labels and sources"
                    .into(),
            );
        }
        if let Some(c) = &self.classifier {
            c.validate()?;
        }
        if self.assign.iter().any(|a| a == "blocklist") && self.blocklist.is_none() {
            return bad(
                "remix.assign names \"blocklist\" but remix.blocklist is not set; give the UT1 tar.gz (or a domain list) or drop it from assign"
                    .into(),
            );
        }
        if !(self.max_epochs >= 1.0 && self.max_epochs.is_finite()) {
            return bad(format!(
                "remix.max_epochs = {}: use 1 or more (Muennighoff: ≤ 4 is nearly free)",
                self.max_epochs
            ));
        }
        if let Total::Named(n) = &self.total {
            if n != "natural" {
                return bad(format!(
                    "remix.total = {n:?}: use \"natural\" or an amount in remix.unit"
                ));
            }
        }
        if self.total.amount() == Some(0) {
            return bad("remix.total = 0: give a positive amount, or \"natural\"".into());
        }
        let t = &self.target;
        match t.kind {
            TargetKind::Weights => {
                if t.weights.is_empty() {
                    return bad("remix.target.kind = \"weights\" but remix.target.weights is empty".into());
                }
                for (k, w) in &t.weights {
                    if !(w.is_finite() && *w >= 0.0) {
                        return bad(format!("remix.target.weights.{k} = {w}: weights must be ≥ 0"));
                    }
                }
                if t.weights.values().sum::<f64>() <= 0.0 {
                    return bad("remix.target.weights are all 0".into());
                }
            }
            TargetKind::Temperature if !(t.alpha >= 0.0 && t.alpha.is_finite()) => {
                return bad(format!("remix.target.alpha = {}: use α ≥ 0", t.alpha));
            }
            _ => {}
        }
        if self.memory_limit_mb < 16 {
            return bad(format!(
                "remix.memory_limit_mb = {}: give at least 16",
                self.memory_limit_mb
            ));
        }
        Ok(())
    }
}

/// Folders of the remix stage inside `<run>/remix`.
#[derive(Debug, Clone)]
pub struct RemixPaths {
    pub stage: PathBuf,
    pub index: PathBuf,
    pub assign: PathBuf,
}

impl RemixPaths {
    pub fn new(run_dir: &Path) -> Self {
        let stage = run_dir.join("remix");
        Self {
            index: stage.join("_index"),
            assign: stage.join("_index").join("assign"),
            stage,
        }
    }

    pub fn plan(&self) -> PathBuf {
        self.index.join("plan.json")
    }

    pub fn plan_marker(&self) -> PathBuf {
        self.index.join(DONE_DIR).join("plan")
    }

    /// The user-facing copy of the plan, beside the shard stats.
    pub fn plan_report(&self) -> PathBuf {
        self.stage.join(crate::stage::STATS_DIR).join("plan.json")
    }
}

/// The draw of a document: xxh3-64 of `"remix\0" + id` seeded by the run seed.
pub fn draw(id: &str, seed: u64) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::with_seed(seed);
    h.update(b"remix\0");
    h.update(id.as_bytes());
    h.digest()
}

/// u ∈ [0, 1) from a draw.
pub fn unit_interval(draw: u64) -> f64 {
    (draw >> 11) as f64 / (1u64 << 53) as f64
}

/// The output order key of copy `repeat` of a document.
pub fn order_key(id: &str, repeat: u32, seed: u64) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::with_seed(seed);
    h.update(b"remix-order\0");
    h.update(id.as_bytes());
    h.update(&repeat.to_le_bytes());
    h.digest()
}
