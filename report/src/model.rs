//! `report.json` (schema `loam.report/1`): every number the page and the dataset card
//! show, gathered from what the stages wrote. The HTML and the card are pure functions of
//! it. A section is `None` when its stage did not run.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "loam.report/1";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema: String,
    pub header: Header,
    /// Documents, text bytes and tokens out of every document stage, in DAG order.
    pub funnel: Vec<FunnelRow>,
    pub ingest: Option<Ingest>,
    pub filter: Option<Filter>,
    pub dedup: Option<Dedup>,
    pub quality: Option<Quality>,
    pub remix: Option<Remix>,
    pub tokenize: Option<Tokenize>,
    pub score: Option<Score>,
    pub sweep: Option<Sweep>,
    pub train: Option<Train>,
    pub datasheet: Datasheet,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Header {
    /// The run directory's name (not its absolute path: the report moves with the run).
    pub run: String,
    pub loam_version: String,
    /// SHA-256 of `config.resolved.toml`, the config the run was made with.
    pub config_sha256: String,
    pub seed: u64,
    pub shards: usize,
    pub quality_models: Vec<FileDigest>,
    pub tokenizer: Option<FileDigest>,
    /// Seconds each stage's shards took, summed (CPU-side work, not wall time).
    pub seconds: Vec<StageSeconds>,
    pub ledger: LedgerBadge,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileDigest {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageSeconds {
    pub stage: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LedgerBadge {
    pub balanced: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunnelRow {
    pub stage: String,
    pub docs_in: u64,
    pub kept: u64,
    /// Rows written when the stage repeats documents (remix's copies).
    pub rows_out: Option<u64>,
    pub dropped: u64,
    /// UTF-8 text bytes kept (None where the stats predate the count).
    pub text_bytes_kept: Option<u64>,
    pub tokens: Option<u64>,
}

/// A drop reason with the documents and text bytes it removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reason {
    pub reason: String,
    pub docs: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DumpRow {
    pub dump: String,
    pub kept: u64,
    pub dropped: u64,
    pub kept_bytes: u64,
    pub dropped_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Count {
    pub key: String,
    pub n: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ingest {
    pub input_files: u64,
    pub input_bytes: u64,
    /// Documents kept by source format (warc, wet, jsonl, parquet).
    pub formats: Vec<Count>,
    /// Records that did not become documents, and documents quarantined, by reason.
    pub reasons: Vec<Reason>,
    pub per_dump: Vec<DumpRow>,
    pub warnings: Vec<String>,
}

/// A histogram over fixed bins: `edges` has one more entry than each series.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub title: String,
    pub x_label: String,
    pub edges: Vec<f64>,
    pub series: Vec<HistSeries>,
    /// A vertical line (a threshold), with its label.
    pub marker: Option<Marker>,
    /// What one count is: "documents" or "bytes".
    pub weight: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HistSeries {
    pub name: String,
    pub counts: Vec<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Filter {
    /// In the order the rules run (language, URL, Gopher repetition, Gopher quality, C4,
    /// FineWeb).
    pub reasons: Vec<Reason>,
    pub languages: Vec<Count>,
    pub per_dump: Vec<DumpRow>,
    pub edited: u64,
    pub c4_lines_removed: u64,
    /// From the seeded sample of kept and dropped documents.
    pub histograms: Vec<Histogram>,
    /// Each heuristic rule's quantity, recomputed on the sample, with its limit.
    #[serde(default)]
    pub rule_histograms: Vec<Histogram>,
    pub sample: SampleNote,
}

/// How big the sample behind a section's histograms and snippets was.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SampleNote {
    pub kept: usize,
    pub dropped: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Dedup {
    pub documents: u64,
    pub kept: u64,
    pub exact_duplicate: u64,
    pub near_duplicate: u64,
    pub docs_with_lines_removed: u64,
    pub lines_removed: u64,
    pub curve: Vec<CurvePoint>,
    /// DeepSeek LLM Table 1: (dumps deduplicated together, % documents removed).
    pub paper_table1: Vec<(u32, f64)>,
    pub per_dump: Vec<DumpRow>,
    /// Cluster size → clusters of that size.
    pub cluster_sizes: Vec<(u64, u64)>,
    pub examples: Vec<Cluster>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    pub dumps: u32,
    pub last_dump: String,
    pub documents: u64,
    pub removed: u64,
    pub removed_share: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cluster {
    /// The survivor the members were folded into (the dropped side output's `detail`).
    pub survivor: String,
    pub members: Vec<Snippet>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snippet {
    pub id: String,
    pub dump: String,
    pub label: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Quality {
    pub models: Vec<QualityModel>,
    pub rule: String,
    /// Score histograms per language, kept vs dropped, with the threshold.
    pub histograms: Vec<Histogram>,
    pub snippets: Vec<Snippet>,
    pub sample: SampleNote,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QualityModel {
    pub language: String,
    pub file: String,
    pub heldout_roc_auc: f64,
    pub threshold: Option<f64>,
    pub scored: u64,
    pub keep: u64,
    pub train_examples: BTreeMap<String, u64>,
    pub heldout_examples: BTreeMap<String, u64>,
    pub sources: Vec<QualitySource>,
    pub what: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QualitySource {
    pub name: String,
    pub label: String,
    pub split: String,
    pub docs: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Remix {
    pub unit: String,
    pub target: String,
    pub max_epochs: f64,
    pub docs_in: u64,
    pub docs_kept: u64,
    pub rows_out: u64,
    pub l1_target_achieved: f64,
    pub unique_fraction_out: f64,
    pub domains: Vec<RemixDomain>,
    /// (domain, language) → documents out, from the seeded sample of remix's output.
    pub domain_language: Vec<(String, String, u64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RemixDomain {
    pub domain: String,
    pub docs_in: u64,
    pub natural_share: f64,
    pub target_share: f64,
    pub achieved_share: f64,
    pub epochs: f64,
    pub capped: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tokenize {
    pub tokenizer_sha256: String,
    pub vocab_size: u64,
    pub docs: u64,
    pub tokens: u64,
    pub text_bytes: u64,
    pub bytes_per_token: f64,
    /// (upper bound in tokens, documents): powers of two.
    pub tokens_per_doc: Vec<(u64, u64)>,
    pub per_dump: Vec<TokenRow>,
    #[serde(default)]
    pub per_language: Vec<TokenRow>,
    /// By remix's mix domain (empty when remix did not run).
    #[serde(default)]
    pub per_domain: Vec<TokenRow>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenRow {
    pub key: String,
    pub docs: u64,
    pub tokens: u64,
    pub text_bytes: u64,
    pub bytes_per_token: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Score {
    pub q: f64,
    pub a: f64,
    pub b: f64,
    pub sigma_a: f64,
    pub calibration: String,
    pub assumption: String,
    /// (name, value) pairs of the score's diagnostics.
    pub diagnostics: Vec<(String, f64)>,
    pub p_raw: f64,
    pub p_final: f64,
    pub p_pos: f64,
    pub allocation: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Sweep {
    pub verdict: String,
    pub predicted_a: Option<f64>,
    /// (approach, a, interval low, interval high) where fitted.
    pub estimates: Vec<(String, f64, Option<f64>, Option<f64>)>,
    pub budgets: Vec<IsoFlop>,
    /// Approach 2's power law through the vertices: ln M_opt = intercept + exponent·ln C,
    /// as (exponent, intercept).
    #[serde(default)]
    pub size_fit: Option<(f64, f64)>,
    /// The score's prediction: (C, M_opt) at each of score.json's budgets.
    #[serde(default)]
    pub predicted: Vec<(f64, f64)>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IsoFlop {
    pub flops: f64,
    /// (M, loss) of every run kept by the outlier rule.
    pub points: Vec<(f64, f64)>,
    /// The fitted parabola [centre, c0, c1, c2]: loss = c0 + c1·x + c2·x², x = ln M − centre.
    pub parabola: Option<[f64; 4]>,
    pub vertex: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Train {
    pub steps: u64,
    pub tokens: u64,
    pub params: u64,
    pub final_loss: f64,
    pub val_loss: Option<f64>,
    pub val_bpb: Option<f64>,
    /// Text bytes per token of the validation windows: bits per byte = nats / ln 2 / this.
    #[serde(default)]
    pub bytes_per_token: Option<f64>,
    /// (tokens, loss, learning rate, grad norm), at most a few hundred points.
    pub curve: Vec<(f64, f64, f64, f64)>,
    /// (tokens, validation bits per byte) at every evaluation.
    #[serde(default)]
    pub val_curve: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Datasheet {
    pub languages: Vec<String>,
    pub size_category: String,
    pub sources: Vec<SourceCard>,
    /// Gebru et al.'s sections: (section, text).
    pub sections: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceCard {
    pub dump: String,
    pub inputs: Vec<String>,
    pub license: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    pub inputs: Vec<InputFile>,
    pub config_toml: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
    /// None over the hash limit (the report then only states the size).
    pub sha256: Option<String>,
}
