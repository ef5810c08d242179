//! The corpus side of `score`: the corpus quality score q of SCALING.md §1 and the
//! diagnostics reported beside it (never folded into it).
//!
//! p̄(X) is the byte-weighted mean of the run's quality model's P(reference) over a seeded
//! sample of X: the documents whose key xxh3(seed, id) is among the `sample_docs` smallest
//! (the same documents at any sharding or thread count; every copy of a sampled document
//! counts). Three sets:
//! - raw: the ingest stage's documents whose language the filter keeps (its language id
//!   and thresholds, run again on the sampled text), before any rule, dedup or threshold;
//! - pos: each model's held-out positive sources (never trained on);
//! - final: the stage the tokenizer reads (after remix, copies counted).
//!
//! q = clip((p̄(final) − p̄(raw)) / (p̄(pos) − p̄(raw)), 0, 1) per model; the corpus's q is
//! the models' q weighted by their share of the final sample's bytes.
use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::Array;

use loam_quality::lid::LanguageId;
use serde::{Deserialize, Serialize};

use crate::dedup::minhash::{MinHasher, Scratch};
use crate::dedup::text::Normalize;
use crate::dedup::MinhashConfig;
use crate::error::{PipelineError, Result};
use crate::ledger::committed_stats;
use crate::quality::score::{load_models, score_text};
use crate::quality::sources::for_each_doc;
use crate::quality::QualityConfig;
use crate::schema::{id_and_text, scan_columns};
use crate::stage::{committed_outputs, fingerprint, par_map, ShardStats};
use crate::FilterConfig;

/// `[score]` settings (the allocation half is read by the binary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreConfig {
    /// Documents sampled per set (raw, pos, final); SCALING.md: 100k is enough.
    pub sample_docs: u64,
    /// Compute budgets C (FLOPs) to allocate; empty: the budget whose D_opt is
    /// `train.tokens`. `train.from_score` trains the first.
    pub budgets: Vec<f64>,
    /// A calibration file written by `loam sweep` (JSON lines); none: the prior.
    pub calibration: Option<PathBuf>,
    /// Shape search: d_model / n_layer range and the widest model.
    pub min_ratio: f64,
    pub max_ratio: f64,
    pub max_d_model: usize,
    /// A budget is refused when even the nearest allowed shape's M is more than this factor
    /// away from M_opt (the budget is then too small, or too large, for the shape rules).
    pub max_shape_error: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            sample_docs: 100_000,
            budgets: Vec::new(),
            calibration: None,
            min_ratio: 40.0,
            max_ratio: 130.0,
            max_d_model: 32_768,
            max_shape_error: 2.0,
        }
    }
}

impl ScoreConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PipelineError::Config(format!("score.{m}")));
        if self.sample_docs == 0 {
            return bad("sample_docs must be at least 1 (SCALING.md: 100000)".into());
        }
        if let Some(c) = self.budgets.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
            return bad(format!("budgets: {c} is not a positive number of FLOPs, e.g. 1e12"));
        }
        if !(self.min_ratio > 0.0 && self.min_ratio <= self.max_ratio) {
            return bad(format!(
                "min_ratio {} / max_ratio {}: need 0 < min_ratio <= max_ratio (DeepSeek: 40, 130)",
                self.min_ratio, self.max_ratio
            ));
        }
        if self.max_shape_error < 1.0 {
            return bad(format!("max_shape_error {} must be at least 1", self.max_shape_error));
        }
        Ok(())
    }
}

/// A byte-weighted mean of P(reference) over a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    /// None when the sample holds no document of this model.
    pub p: Option<f64>,
    /// Rows scored (copies counted) and their text bytes.
    pub docs: u64,
    pub bytes: u64,
    #[serde(skip)]
    sum: f64,
}

impl Mean {
    fn add(&mut self, p: f32, bytes: u64) {
        self.sum += f64::from(p) * bytes as f64;
        self.docs += 1;
        self.bytes += bytes;
    }
    fn finish(&mut self) {
        self.p = (self.bytes > 0).then(|| self.sum / self.bytes as f64);
    }
}

/// One quality model's share of the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScore {
    pub language: String,
    pub raw: Mean,
    pub pos: Mean,
    #[serde(rename = "final")]
    pub final_: Mean,
    /// This model's q (None when the final sample has none of its documents).
    pub q: Option<f64>,
    /// Share of the final sample's scored bytes.
    pub weight: f64,
}

/// Reported beside q, never folded into it (q rises with the classifier threshold by
/// construction; these say what else changed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Distinct documents of the final sample that share a MinHash band bucket (the dedup
    /// setting) with an earlier sampled one, and those with identical normalised text. A
    /// lower bound when the sample is smaller than the corpus.
    pub near_duplicate_rate: f64,
    pub exact_duplicate_rate: f64,
    pub distinct_docs_sampled: u64,
    /// Median of gzip(text) / text bytes over the distinct sampled documents.
    pub median_gzip_ratio: f64,
    /// Filter: documents the heuristic rules kept / documents of kept languages.
    pub heuristic_pass_rate: f64,
    /// Token shards: tokens (copies counted) and unique tokens U (first copies only).
    pub tokens: u64,
    pub unique_tokens: u64,
    pub text_bytes: u64,
    pub unique_text_bytes: u64,
    /// Distinct final documents / raw documents, and unique final bytes / raw bytes (the
    /// raw bytes estimated from the raw sample's kept-language share).
    pub kept_fraction_docs: f64,
    pub kept_fraction_bytes: f64,
    /// Rows of the final sample that are remix copies (repeat > 0).
    pub repeated_row_share: f64,
    /// Bytes of the final sample no quality model covers (left out of p̄).
    pub unscored_final_share: f64,
}

/// The corpus half of `score/score.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusScore {
    pub q: f64,
    /// Byte-weighted over every model (for display; q is computed per model).
    pub p_raw: f64,
    pub p_pos: f64,
    pub p_final: f64,
    pub models: Vec<ModelScore>,
    pub final_stage: String,
    pub sample_docs: u64,
    pub diagnostics: Diagnostics,
}

/// What `score_corpus` reads.
pub struct ScoreInputs<'a> {
    pub run_dir: &'a Path,
    pub quality: &'a QualityConfig,
    pub filter: &'a FilterConfig,
    pub minhash: &'a MinhashConfig,
    /// Dedup's text normalisation (exact duplicates).
    pub dedup_normalize: &'a Normalize,
    /// The stage the tokenizer reads.
    pub final_stage: &'a str,
    pub seed: u64,
    pub sample_docs: u64,
    pub threads: usize,
}

impl ScoreInputs<'_> {
    /// Everything the score depends on: the committed inputs' fingerprints and settings.
    pub fn fingerprint(&self) -> Result<String> {
        let fp = |stage: &str| committed_outputs(&self.run_dir.join(stage), "score").map(|(_, f)| f);
        let train = crate::quality::train::committed(&crate::quality::QualityPaths::new(self.run_dir));
        Ok(fingerprint(&serde_json::json!({
            "stage": "score/1", "ingest": fp("ingest")?, "final": fp(self.final_stage)?,
            "final_stage": self.final_stage, "tokenize": fp("tokenize")?, "quality": train,
            "normalize": self.quality.normalize, "filter_languages": self.filter.languages,
            "min_language_score": self.filter.min_language_score, "minhash": self.minhash,
            "seed": self.seed, "sample_docs": self.sample_docs,
        })))
    }
}

thread_local! {
    /// Each thread's exact-hash buffer and MinHash scratch for the final pass.
    static SCRATCH: RefCell<(Vec<u8>, Scratch)> = RefCell::new((Vec::new(), Scratch::default()));
}

/// The error of a run without a quality model: q is measured with it.
pub fn require_quality_model(cfg: &QualityConfig) -> Result<()> {
    if !cfg.enabled || cfg.models.is_empty() {
        return Err(PipelineError::Config(
            "score needs the run's quality model (q is measured with it): add a [[quality.models]] entry with positives (some `heldout = true`) and negatives".into(),
        ));
    }
    Ok(())
}

fn sample_key(id: &str, seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed ^ 0x7363_6f72_6500_0000)
}

/// The largest key of the `k` smallest distinct document keys over `files` (reads ids only).
fn sample_cut(files: &[PathBuf], k: u64, seed: u64, setting: &str) -> Result<Option<u64>> {
    let mut keys: BTreeSet<u64> = BTreeSet::new();
    for f in files {
        scan_columns(f, &["id"], "rerun the stage that wrote it with --force", |b| {
            let ids = b
                .column_by_name("id")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| PipelineError::BadFile {
                    path: f.clone(),
                    offset: 0,
                    what: "not a loam document file: no id column".into(),
                    fix: format!("point {setting} at a document stage of the run"),
                })?;
            for i in 0..ids.len() {
                keys.insert(sample_key(ids.value(i), seed));
                if keys.len() as u64 > k {
                    keys.pop_last();
                }
            }
            Ok(())
        })?;
    }
    Ok(keys.last().copied())
}

fn counter(stats: &[ShardStats], key: &str) -> Option<u64> {
    let mut any = false;
    let n = stats
        .iter()
        .filter_map(|s| s.counters.get(key))
        .inspect(|_| any = true)
        .sum();
    any.then_some(n)
}

/// Per-row work of the final pass, done in parallel.
struct FinalRow {
    model: Option<usize>,
    p: f32,
    bytes: u64,
    first_copy: bool,
    gzip_ratio: f64,
    exact: u128,
    bands: Vec<u64>,
}

fn gzip_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let out = e
        .write_all(text.as_bytes())
        .and_then(|_| e.finish())
        .map(|v| v.len())
        .unwrap_or(0);
    out as f64 / text.len() as f64
}

/// q, its three means and the diagnostics for the run.
pub fn score_corpus(inp: &ScoreInputs<'_>) -> Result<CorpusScore> {
    let cfg = inp.quality;
    require_quality_model(cfg)?;
    let (models, _) = load_models(inp.run_dir, cfg, inp.seed)?;
    let norm = cfg.normalize;
    let threads = inp.threads.max(1);
    let k = inp.sample_docs;
    let mut per: Vec<ModelScore> = cfg
        .models
        .iter()
        .map(|m| ModelScore {
            language: m.language.clone(),
            raw: Mean::default(),
            pos: Mean::default(),
            final_: Mean::default(),
            q: None,
            weight: 0.0,
        })
        .collect();
    let score = |m: usize, text: &str| score_text(&models[m], &norm, text);

    // pos: every held-out positive document, the `k` smallest keys per model.
    for (m, mc) in cfg.models.iter().enumerate() {
        let mut rows: Vec<(u64, f32, u64)> = Vec::new();
        for src in mc.positives.iter().filter(|s| s.heldout) {
            // Scored in batches: only (key, p, bytes) is kept per document.
            let mut batch: Vec<String> = Vec::new();
            let flush = |batch: &mut Vec<String>, rows: &mut Vec<(u64, f32, u64)>| {
                for (p, bytes) in par_map(batch, threads, |t| (score(m, t), t.len() as u64)) {
                    let key = sample_key(&format!("{}/{}", src.name, rows.len()), inp.seed);
                    rows.push((key, p, bytes));
                }
                batch.clear();
            };
            for_each_doc(src, |t| {
                batch.push(t.to_owned());
                if batch.len() >= 4096 {
                    flush(&mut batch, &mut rows);
                }
                Ok(())
            })?;
            flush(&mut batch, &mut rows);
        }
        if rows.is_empty() {
            return Err(PipelineError::Config(format!(
                "score needs held-out positives for quality model {:?} (p̄(pos) anchors q = 1): mark one of its [[quality.models.positives]] `heldout = true`",
                mc.language
            )));
        }
        rows.sort_by_key(|r| r.0);
        for (_, p, bytes) in rows.into_iter().take(k as usize) {
            per[m].pos.add(p, bytes);
        }
    }

    // raw: the ingest stage's sampled documents, through the filter's language gate.
    let (ingest, _) = committed_outputs(&inp.run_dir.join("ingest"), "score")?;
    let lid = LanguageId::load(&inp.filter.lid_model).map_err(|e| PipelineError::Config(e.to_string()))?;
    let (mut raw_sampled_bytes, mut raw_kept_bytes) = (0u64, 0u64);
    if let Some(cut) = sample_cut(&ingest, k, inp.seed, "score (ingest)")? {
        for f in &ingest {
            scan_columns(f, &["id", "text"], "rerun `loam ingest --force`", |b| {
                let (ids, texts) = id_and_text(b, f, "ingest")?;
                let rows: Vec<usize> = (0..b.num_rows())
                    .filter(|&i| sample_key(ids.value(i), inp.seed) <= cut)
                    .collect();
                let out = par_map(&rows, threads, |&i| {
                    let text = texts.value(i);
                    let (lang, lscore) = lid.predict(text);
                    let kept = (inp.filter.languages.is_empty() || inp.filter.languages.contains(&lang))
                        && lscore >= inp.filter.min_language_score;
                    let m = if kept { cfg.model_for(Some(&lang)) } else { None };
                    (kept, m.map(|m| (m, score(m, text))), text.len() as u64)
                });
                for (kept, scored, bytes) in out {
                    raw_sampled_bytes += bytes;
                    if kept {
                        raw_kept_bytes += bytes;
                    }
                    if let Some((m, p)) = scored {
                        per[m].raw.add(p, bytes);
                    }
                }
                Ok(())
            })?;
        }
    }

    // final: the tokenizer's input, copies counted; diagnostics on first copies.
    let (finals, _) = committed_outputs(&inp.run_dir.join(inp.final_stage), "score")?;
    let hasher = MinHasher::new(inp.minhash.ngram, inp.minhash.bands, inp.minhash.rows, inp.minhash.seed);
    let exact_norm = inp.dedup_normalize;
    let (mut unscored_bytes, mut final_bytes, mut final_rows, mut copies) = (0u64, 0u64, 0u64, 0u64);
    let mut ratios: Vec<f64> = Vec::new();
    let (mut seen_exact, mut seen_band): (HashSet<u128>, HashSet<u64>) = (HashSet::new(), HashSet::new());
    let (mut near, mut exact_dups) = (0u64, 0u64);
    if let Some(cut) = sample_cut(&finals, k, inp.seed, "tokenizer.upstream")? {
        for f in &finals {
            scan_columns(
                f,
                &["id", "text", "language", "repeat"],
                "rerun the stage with --force",
                |b| {
                    let (ids, texts) = id_and_text(b, f, "tokenizer.upstream")?;
                    let langs = b.column_by_name("language").and_then(|c| c.as_string_opt::<i32>());
                    let repeats = b
                        .column_by_name("repeat")
                        .and_then(|c| c.as_primitive_opt::<arrow_array::types::UInt32Type>());
                    let rows: Vec<usize> = (0..b.num_rows())
                        .filter(|&i| sample_key(ids.value(i), inp.seed) <= cut)
                        .collect();
                    let out = par_map(&rows, threads, |&i| {
                        let text = texts.value(i);
                        let lang = langs.filter(|l| l.is_valid(i)).map(|l| l.value(i));
                        let model = cfg.model_for(lang);
                        let first_copy = repeats.is_none_or(|r| !r.is_valid(i) || r.value(i) == 0);
                        let (mut ratio, mut exact, mut bands) = (0.0, 0u128, Vec::new());
                        if first_copy {
                            ratio = gzip_ratio(text);
                            SCRATCH.with(|sc| {
                                let (buf, s) = &mut *sc.borrow_mut();
                                exact = exact_norm.exact_hash(text, buf);
                                if hasher.signature(text, s) {
                                    hasher.band_keys(s, &mut bands);
                                }
                            });
                        }
                        FinalRow {
                            model,
                            p: model.map_or(0.0, |m| score(m, text)),
                            bytes: text.len() as u64,
                            first_copy,
                            gzip_ratio: ratio,
                            exact,
                            bands,
                        }
                    });
                    for r in out {
                        final_rows += 1;
                        final_bytes += r.bytes;
                        match r.model {
                            Some(m) => per[m].final_.add(r.p, r.bytes),
                            None => unscored_bytes += r.bytes,
                        }
                        if !r.first_copy {
                            copies += 1;
                            continue;
                        }
                        ratios.push(r.gzip_ratio);
                        if !seen_exact.insert(r.exact) {
                            exact_dups += 1;
                        }
                        let mut dup = false;
                        for band in &r.bands {
                            dup |= !seen_band.insert(*band);
                        }
                        near += u64::from(dup);
                    }
                    Ok(())
                },
            )?;
        }
    }
    let scored_final: u64 = per.iter().map(|m| m.final_.bytes).sum();
    if final_rows == 0 {
        return Err(PipelineError::Config(format!(
            "the final corpus ({}/{}) is empty: nothing to score; loosen the filter rules or the quality threshold (quality.top_fraction), or check the remix target",
            inp.run_dir.display(),
            inp.final_stage
        )));
    }
    if scored_final == 0 {
        return Err(PipelineError::Config(format!(
            "no document of the final corpus ({}) is in a language a quality model covers: add a [[quality.models]] for its language, or one with language = \"*\"",
            inp.final_stage
        )));
    }

    for m in per.iter_mut() {
        m.raw.finish();
        m.pos.finish();
        m.final_.finish();
        m.weight = m.final_.bytes as f64 / scored_final as f64;
        let Some(f) = m.final_.p else { continue };
        let (Some(r), Some(p)) = (m.raw.p, m.pos.p) else {
            return Err(PipelineError::Config(format!(
                "quality model {:?} scores final documents, but the raw sample has none of its language: q has no anchor; sample more (score.sample_docs) or check filter.languages",
                m.language
            )));
        };
        if p <= r {
            return Err(PipelineError::Config(format!(
                "quality model {:?} rates raw crawl (p̄ {r:.4}) at least as high as its held-out positives (p̄ {p:.4}), so q has no scale: retrain it with better negatives or other positives",
                m.language
            )));
        }
        m.q = Some(((f - r) / (p - r)).clamp(0.0, 1.0));
    }
    let q = per.iter().map(|m| m.weight * m.q.unwrap_or(0.0)).sum();
    let wmean = |f: fn(&ModelScore) -> &Mean| {
        let (s, b) = per.iter().map(f).fold((0.0, 0u64), |(s, b), x| {
            (s + x.p.unwrap_or(0.0) * x.bytes as f64, b + x.bytes)
        });
        if b == 0 {
            0.0
        } else {
            s / b as f64
        }
    };

    // Ledger-side diagnostics.
    let filter = committed_stats(&inp.run_dir.join("filter"))?;
    let docs_in: u64 = filter.iter().map(|s| s.docs_in).sum();
    let lang_dropped: u64 = filter
        .iter()
        .flat_map(|s| s.dropped.iter())
        .filter(|(r, _)| r.starts_with("language_"))
        .map(|(_, n)| n)
        .sum();
    let filter_kept: u64 = filter.iter().map(|s| s.kept).sum();
    let filter_bytes_in: u64 = filter.iter().map(|s| s.bytes_in).sum();
    let raw_docs = docs_in.saturating_sub(lang_dropped);
    let final_kept: u64 = committed_stats(&inp.run_dir.join(inp.final_stage))?
        .iter()
        .map(|s| s.kept)
        .sum();
    let tok = committed_stats(&inp.run_dir.join("tokenize"))?;
    let tokens = counter(&tok, "tokens").unwrap_or(0);
    let text_bytes = counter(&tok, "text_bytes").unwrap_or(0);
    let unique_tokens = counter(&tok, "unique_tokens").unwrap_or(tokens);
    let unique_text_bytes = counter(&tok, "unique_text_bytes").unwrap_or(text_bytes);
    let raw_bytes_est = if raw_sampled_bytes > 0 {
        filter_bytes_in as f64 * raw_kept_bytes as f64 / raw_sampled_bytes as f64
    } else {
        0.0
    };
    ratios.sort_by(f64::total_cmp);
    let distinct = ratios.len() as u64;
    let frac = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let diagnostics = Diagnostics {
        near_duplicate_rate: frac(near, distinct),
        exact_duplicate_rate: frac(exact_dups, distinct),
        distinct_docs_sampled: distinct,
        median_gzip_ratio: ratios.get(ratios.len() / 2).copied().unwrap_or(0.0),
        heuristic_pass_rate: frac(filter_kept, raw_docs),
        tokens,
        unique_tokens,
        text_bytes,
        unique_text_bytes,
        kept_fraction_docs: frac(final_kept, raw_docs),
        kept_fraction_bytes: if raw_bytes_est > 0.0 {
            unique_text_bytes as f64 / raw_bytes_est
        } else {
            0.0
        },
        repeated_row_share: frac(copies, final_rows),
        unscored_final_share: frac(unscored_bytes, final_bytes),
    };
    Ok(CorpusScore {
        q,
        p_raw: wmean(|m| &m.raw),
        p_pos: wmean(|m| &m.pos),
        p_final: wmean(|m| &m.final_),
        models: per,
        final_stage: inp.final_stage.to_owned(),
        sample_docs: k,
        diagnostics,
    })
}

/// Reads `path` if it holds JSON of type `T` (None when absent).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| PipelineError::BadStats {
                path: path.to_owned(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PipelineError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_byte_weighted() {
        let mut m = Mean::default();
        m.add(1.0, 300);
        m.add(0.0, 100);
        m.finish();
        assert_eq!(m.p, Some(0.75));
        let mut e = Mean::default();
        e.finish();
        assert_eq!(e.p, None);
    }

    #[test]
    fn gzip_ratio_separates_repetitive_from_varied_text() {
        let rep = "the same line again. ".repeat(200);
        let varied: String = (0..2000u32)
            .map(|i| char::from(b'a' + (i.wrapping_mul(7919) % 26) as u8))
            .collect();
        assert!(gzip_ratio(&rep) < 0.1);
        assert!(gzip_ratio(&varied) > gzip_ratio(&rep));
        assert_eq!(gzip_ratio(""), 0.0);
    }

    #[test]
    fn config_rejects_nonsense() {
        assert!(ScoreConfig::default().validate().is_ok());
        for bad in [
            ScoreConfig {
                sample_docs: 0,
                ..ScoreConfig::default()
            },
            ScoreConfig {
                budgets: vec![-1.0],
                ..ScoreConfig::default()
            },
            ScoreConfig {
                min_ratio: 200.0,
                ..ScoreConfig::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }
}
