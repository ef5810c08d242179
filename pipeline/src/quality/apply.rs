//! The `quality` stage proper (per shard): applies the committed threshold to the
//! upstream documents, in the row order the score step used. Every document, kept or
//! dropped, carries its `quality_score`; documents no model covers pass through, counted
//! per language. The stats hold the threshold and score histograms (kept / dropped, by
//! language), so reports need not reread the documents.
use std::collections::BTreeMap;
use std::path::Path;

use super::score::{
    pareto_keeps, read_scores, read_threshold, threshold_fingerprint, ScoreRow, Scorer, Threshold, NO_MODEL,
};
use super::{doc_key, KeepRule, QualityConfig, QualityPaths};
use crate::error::{PipelineError, Result};
use crate::schema::{Columns, DocumentReader};
use crate::stage::{fingerprint, ShardId, ShardWriter, Stage};

/// Score histograms have this many equal bins over [0, 1].
pub const HIST_BINS: usize = 20;

pub struct Apply {
    scorer: Scorer,
    threshold: Threshold,
    cfg: QualityConfig,
    seed: u64,
    fingerprint: String,
}

impl Apply {
    /// Needs the committed threshold step of the run, made from these scores and this
    /// keep rule over an `of`-way split.
    pub fn new(run_dir: &Path, scorer: Scorer, cfg: &QualityConfig, seed: u64, of: usize) -> Result<Self> {
        let paths = QualityPaths::new(run_dir);
        let threshold = read_threshold(&paths)?;
        if threshold.fingerprint != threshold_fingerprint(&scorer, of) {
            return Err(PipelineError::Config(format!(
                "{}: the committed threshold was made from other scores or another keep rule; rerun                  `loam quality --phase threshold` (with --force)",
                paths.threshold().display()
            )));
        }
        let fingerprint = fingerprint(&serde_json::json!({
            "stage": "quality/1", "threshold": threshold.fingerprint, "scores": scorer.fingerprint(),
        }));
        Ok(Self {
            scorer,
            threshold,
            cfg: cfg.clone(),
            seed,
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the rule keeps a scored row, and the drop detail when it does not.
    fn verdict(&self, row: &ScoreRow) -> std::result::Result<(), String> {
        let m = usize::from(row.model);
        let lang = self.cfg.models.get(m).map_or("?", |c| c.language.as_str());
        match self.cfg.keep {
            KeepRule::All => Ok(()),
            KeepRule::MinScore => {
                if f64::from(row.score) >= self.cfg.min_score {
                    Ok(())
                } else {
                    Err(format!(
                        "score {:.4} < min_score {} (model {lang})",
                        row.score, self.cfg.min_score
                    ))
                }
            }
            KeepRule::Pareto => {
                let (keep, draw) = pareto_keeps(row.score, row.key, self.cfg.pareto_alpha);
                if keep {
                    Ok(())
                } else {
                    Err(format!(
                        "score {:.4}: pareto({}) draw {draw:.4} ≤ 1 − score (model {lang})",
                        row.score, self.cfg.pareto_alpha
                    ))
                }
            }
            KeepRule::TopFraction => match self.threshold.cut(m) {
                Some(cut) if row.rank() <= cut => Ok(()),
                cut => Err(format!(
                    "score {:.4} below the top {}% of model {lang} (threshold {})",
                    row.score,
                    self.cfg.top_fraction * 100.0,
                    cut.and_then(|_| self.threshold.models[m].threshold_score)
                        .map_or("none".into(), |t| format!("{t:.4}"))
                )),
            },
        }
    }
}

fn bin(score: f32) -> usize {
    ((f64::from(score) * HIST_BINS as f64) as usize).min(HIST_BINS - 1)
}

impl Stage for Apply {
    fn name(&self) -> &'static str {
        "quality"
    }

    fn columns(&self) -> Columns {
        Columns::Quality
    }

    fn upstream(&self) -> Option<&str> {
        Some(&self.cfg.upstream)
    }

    fn run_shard(&self, shard: ShardId, out: &mut ShardWriter) -> Result<()> {
        let path = self.scorer.scores_path(shard);
        let rows = read_scores(&path)?;
        let mismatch = |what: String| PipelineError::BadFile {
            path: path.clone(),
            offset: 0,
            what,
            fix: "the upstream stage changed after scoring; rerun `loam quality` with --force".into(),
        };
        let mut next = rows.iter();
        // language → [kept bins, dropped bins]
        let mut hist: BTreeMap<String, [[u64; HIST_BINS]; 2]> = BTreeMap::new();
        let mut passed: BTreeMap<String, u64> = BTreeMap::new();
        for input in self.scorer.shard_inputs(shard) {
            for batch in DocumentReader::open(input)? {
                for mut doc in batch? {
                    let Some(row) = next.next() else {
                        return Err(mismatch(format!("{} scores for more upstream documents", rows.len())));
                    };
                    if row.key != doc_key(&doc.id, self.seed) {
                        return Err(mismatch(format!(
                            "the score of row for {} belongs to another document",
                            doc.id
                        )));
                    }
                    out.record_in(doc.text.len() as u64);
                    let lang = doc.signals.language.clone().unwrap_or_else(|| "unknown".into());
                    if row.model == NO_MODEL {
                        *passed.entry(lang).or_default() += 1;
                        doc.signals.quality_score = None;
                        out.keep(&doc)?;
                        continue;
                    }
                    doc.signals.quality_score = Some(row.score);
                    let h = hist.entry(lang).or_insert([[0; HIST_BINS]; 2]);
                    match self.verdict(row) {
                        Ok(()) => {
                            h[0][bin(row.score)] += 1;
                            out.keep(&doc)?;
                        }
                        Err(detail) => {
                            h[1][bin(row.score)] += 1;
                            out.drop_doc(&doc, "quality_below_threshold", Some(&detail))?;
                        }
                    }
                }
            }
        }
        if next.next().is_some() {
            return Err(mismatch(format!("{} scores for fewer upstream documents", rows.len())));
        }
        for (lang, n) in &passed {
            out.count(&format!("passed_through_no_model_{lang}"), *n);
        }
        out.set_extra(
            "score_histogram",
            serde_json::json!({
                "bins": HIST_BINS,
                "by_language": hist.iter().map(|(l, h)| (l.clone(), serde_json::json!({"kept": h[0].to_vec(), "dropped": h[1].to_vec()}))).collect::<serde_json::Map<_, _>>(),
            }),
        );
        out.set_extra("threshold", serde_json::to_value(&self.threshold).unwrap_or_default());
        out.set_extra(
            "what",
            serde_json::Value::String(
                "quality_score = P(hq) of a reference-likeness classifier (see quality/_model/*.card.json)".into(),
            ),
        );
        Ok(())
    }
}
