//! `remix_train` (one task): a fastText topic classifier loam trains itself from labelled
//! real sources, with the quality stage's machinery (its source readers, normaliser and
//! fastText training) and more than two labels. Each configured label lists sources;
//! sources marked `heldout` are only evaluated (split by source, never by line). The
//! model card beside the model gives per-label held-out precision / recall / F1 and the
//! accuracy, so a user sees which domains it can tell apart before trusting it.
//!
//! ```text
//! <run>/remix/_model/topic.bin, topic.card.json, _done/train
//! ```
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use loam_quality::classifier::{train_supervised, FastTextArgs, Normalizer, TopicModel};
use serde::{Deserialize, Serialize};

use super::RemixPaths;
use crate::error::{PipelineError, Result};
use crate::quality::sources::{for_each_doc, SourceTally};
use crate::quality::SourceConfig;
use crate::sort::ExternalSorter;
use crate::stage::{fingerprint, write_atomic, DONE_DIR};

/// One topic label and the sources that teach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicLabel {
    /// The mixture domain the label assigns (lowercase a-z, 0-9, `_`, `-`).
    pub label: String,
    pub sources: Vec<SourceConfig>,
}

/// `[remix.classifier]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicConfig {
    /// Below this probability the classifier abstains and the next assignment source is
    /// tried.
    pub min_score: f64,
    pub normalize: Normalizer,
    pub fasttext: FastTextArgs,
    /// Shuffle memory of the training set; spills beyond it.
    pub memory_limit_mb: u64,
    pub labels: Vec<TopicLabel>,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            min_score: 0.5,
            normalize: Normalizer::default(),
            // Labelled reference sets are small (hundreds of documents, not DCLM's
            // hundreds of thousands): fastText's supervised tutorial settings (lr 0.5,
            // 25 epochs) instead of DCLM's, and a smaller hash table.
            fasttext: FastTextArgs {
                lr: 0.5,
                epoch: 25,
                bucket: 200_000,
                ..FastTextArgs::default()
            },
            memory_limit_mb: 256,
            labels: Vec::new(),
        }
    }
}

impl TopicConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PipelineError::Config(m));
        if self.labels.len() < 2 {
            return bad("remix.classifier needs at least two [[remix.classifier.labels]]".into());
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return bad(format!("remix.classifier.min_score = {}: use 0 to 1", self.min_score));
        }
        self.fasttext
            .validate()
            .map_err(|e| PipelineError::Config(format!("remix.classifier: {e}")))?;
        let mut seen: Vec<&str> = Vec::new();
        for l in &self.labels {
            if !super::domains::valid_domain(&l.label) || l.label == super::domains::BLOCKED {
                return bad(format!(
                    "remix.classifier label {:?}: use a plain lowercase domain name (not \"blocked\")",
                    l.label
                ));
            }
            if seen.contains(&l.label.as_str()) {
                return bad(format!("remix.classifier: label {} is listed twice", l.label));
            }
            seen.push(&l.label);
            if !l.sources.iter().any(|s| !s.heldout) || !l.sources.iter().any(|s| s.heldout) {
                return bad(format!(
                    "remix.classifier label {}: give at least one training source and one with heldout = true \
                     (held out by source, e.g. later addresses or another handbook)",
                    l.label
                ));
            }
        }
        Ok(())
    }
}

/// Held-out quality of one label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMetrics {
    pub label: String,
    pub train_docs: u64,
    pub heldout_docs: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// A source as trained on or held out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSourceCard {
    pub label: String,
    pub name: String,
    pub heldout: bool,
    pub docs: u64,
    pub bytes: u64,
    pub empty: u64,
    pub sha256: String,
}

/// `remix/_model/topic.card.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicCard {
    pub schema: String,
    pub what: String,
    pub model: String,
    pub model_sha256: String,
    pub labels: Vec<LabelMetrics>,
    /// Share of held-out documents whose top label is right.
    pub heldout_accuracy: f64,
    pub macro_f1: f64,
    /// Share of held-out documents at or above `min_score` (the rest fall through).
    pub heldout_coverage: f64,
    pub min_score: f64,
    pub sources: Vec<TopicSourceCard>,
    pub fasttext: FastTextArgs,
    pub normalize: Normalizer,
    pub fingerprint: String,
}

pub fn model_path(paths: &RemixPaths) -> PathBuf {
    paths.stage.join("_model").join("topic.bin")
}

fn marker(paths: &RemixPaths) -> PathBuf {
    paths.stage.join("_model").join(DONE_DIR).join("train")
}

/// What decides the model: the labels' sources (their files' SHA-256 through the card),
/// the arguments and the seed.
pub fn train_fingerprint(cfg: &TopicConfig, seed: u64) -> String {
    fingerprint(&serde_json::json!({
        "stage": "remix-train/1", "seed": seed, "fasttext": cfg.fasttext, "normalize": cfg.normalize,
        "labels": cfg.labels.iter().map(|l| serde_json::json!({
            "label": l.label,
            "sources": l.sources.iter().map(|s| serde_json::json!({
                "name": s.name, "heldout": s.heldout, "format": s.format, "members": s.members,
                "text_field": s.text_field, "split": s.split, "max_docs": s.max_docs,
                "files": s.files.iter().map(|f| {
                    let meta = fs::metadata(&f.path).ok();
                    serde_json::json!([f.name, meta.as_ref().map(|m| m.len()), meta.and_then(|m| m.modified().ok()).map(|t| format!("{t:?}"))])
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
}

/// The committed card, when the committed model was trained with `fp`.
pub fn committed_card(paths: &RemixPaths, fp: &str) -> Option<TopicCard> {
    let m = fs::read_to_string(marker(paths)).ok()?;
    if m.trim() != fp {
        return None;
    }
    let b = fs::read(paths.stage.join("_model").join("topic.card.json")).ok()?;
    serde_json::from_slice(&b).ok()
}

/// Trains (or finds committed) the topic model; returns its card.
pub fn run_train(run_dir: &Path, cfg: &TopicConfig, seed: u64, force: bool) -> Result<(TopicCard, bool)> {
    cfg.validate()?;
    let paths = RemixPaths::new(run_dir);
    let fp = train_fingerprint(cfg, seed);
    if !force {
        if let Some(card) = committed_card(&paths, &fp) {
            return Ok((card, false));
        }
    }
    let model_dir = paths.stage.join("_model");
    let tmp = model_dir.join(format!("_tmp-{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    let _ = fs::remove_file(marker(&paths));
    let mut sorter = ExternalSorter::<(u64, String)>::new(&tmp, "train", (cfg.memory_limit_mb << 20) as usize);
    let mut heldout: Vec<(usize, String)> = Vec::new();
    let mut sources = Vec::new();
    let mut train_docs = vec![0u64; cfg.labels.len()];
    let mut heldout_docs = vec![0u64; cfg.labels.len()];
    let mut line = String::new();
    for (li, l) in cfg.labels.iter().enumerate() {
        for s in &l.sources {
            let mut n = 0u64;
            let mut empty = 0u64;
            let tally: SourceTally = for_each_doc(s, |text| {
                cfg.normalize.normalize_into(text, &mut line);
                if line.is_empty() {
                    empty += 1;
                    return Ok(());
                }
                n += 1;
                if s.heldout {
                    heldout_docs[li] += 1;
                    heldout.push((li, line.clone()));
                } else {
                    train_docs[li] += 1;
                    let key =
                        xxhash_rust::xxh3::xxh3_64_with_seed(format!("{}\0{}\0{n}", l.label, s.name).as_bytes(), seed);
                    sorter.push((key, format!("__label__{} {line}", l.label)))?;
                }
                Ok(())
            })?;
            if n == 0 {
                return Err(PipelineError::Config(format!(
                    "remix.classifier label {} source {}: no documents (check its inputs and format)",
                    l.label, s.name
                )));
            }
            sources.push(TopicSourceCard {
                label: l.label.clone(),
                name: s.name.clone(),
                heldout: s.heldout,
                docs: n,
                bytes: tally.bytes,
                empty: tally.empty + empty,
                sha256: tally.sha256,
            });
        }
    }
    // fastText reads its file in order: the lines go in a seeded shuffled order.
    let train_txt = tmp.join("topic.train.txt");
    {
        let f = fs::File::create(&train_txt).map_err(|e| PipelineError::io(&train_txt, e))?;
        let mut w = BufWriter::new(f);
        let mut sorted = sorter.finish()?;
        for (_, l) in sorted.by_ref() {
            w.write_all(l.as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|e| PipelineError::io(&train_txt, e))?;
        }
        if let Some(e) = sorted.error.take() {
            return Err(e);
        }
        w.flush().map_err(|e| PipelineError::io(&train_txt, e))?;
    }
    let bin = tmp.join("topic.bin");
    train_supervised(&cfg.fasttext, &train_txt, &bin)
        .map_err(|e| PipelineError::Config(format!("remix.classifier: {e}")))?;
    let model = TopicModel::load(&bin).map_err(|e| PipelineError::Config(e.to_string()))?;
    // Held-out evaluation: top-1 label per document.
    let k = cfg.labels.len();
    let (mut tp, mut predicted) = (vec![0u64; k], vec![0u64; k]);
    let (mut right, mut covered) = (0u64, 0u64);
    for (li, text) in &heldout {
        let Some((label, p)) = model.predict_normalized(text) else {
            continue;
        };
        if f64::from(p) >= cfg.min_score {
            covered += 1;
        }
        if let Some(pi) = cfg.labels.iter().position(|l| l.label == label) {
            predicted[pi] += 1;
            if pi == *li {
                tp[pi] += 1;
                right += 1;
            }
        }
    }
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let labels: Vec<LabelMetrics> = (0..k)
        .map(|i| {
            let (p, r) = (ratio(tp[i], predicted[i]), ratio(tp[i], heldout_docs[i]));
            LabelMetrics {
                label: cfg.labels[i].label.clone(),
                train_docs: train_docs[i],
                heldout_docs: heldout_docs[i],
                precision: p,
                recall: r,
                f1: if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 },
            }
        })
        .collect();
    let dest = model_path(&paths);
    let card = TopicCard {
        schema: "loam.remix.topic.card/1".into(),
        what: "a fastText topic classifier loam trained from the labelled sources below: it assigns a document the \
               domain whose sources it resembles most, and abstains below min_score"
            .into(),
        model: "topic.bin".into(),
        model_sha256: crate::quality::sources::file_sha256(&bin)?,
        heldout_accuracy: ratio(right, heldout.len() as u64),
        macro_f1: labels.iter().map(|l| l.f1).sum::<f64>() / k as f64,
        heldout_coverage: ratio(covered, heldout.len() as u64),
        labels,
        min_score: cfg.min_score,
        sources,
        fasttext: cfg.fasttext.clone(),
        normalize: cfg.normalize,
        fingerprint: fp.clone(),
    };
    drop(model);
    fs::rename(&bin, &dest).map_err(|e| PipelineError::io(&dest, e))?;
    let json = serde_json::to_vec_pretty(&card).map_err(|e| PipelineError::Config(e.to_string()))?;
    write_atomic(&model_dir.join("topic.card.json"), &json)?;
    let _ = fs::remove_dir_all(&tmp);
    let m = marker(&paths);
    fs::create_dir_all(m.parent().unwrap_or(&model_dir)).map_err(|e| PipelineError::io(&model_dir, e))?;
    write_atomic(&m, fp.as_bytes())?;
    Ok((card, true))
}
