//! `quality_score` (per shard) and `quality_threshold` (one task).
//!
//! The score step writes, per upstream shard and in its row order, one record per
//! document: which model scored it (255: none covers its language), P(hq), and the
//! document's key (a seeded hash of its id: the tie-break of `top_fraction` and the
//! Pareto draw). The threshold step reads only those files — never the texts — and fixes
//! the keep rule for the whole run: for `top_fraction`, every scored document goes
//! through an external sort on (model, score ↓, key ↑) and the ⌈f·n⌉-th of each model
//! becomes its threshold, so exactly that many are kept however the run is sharded.
//!
//! ```text
//! scores file: "LOAMQS01", u64 LE rows, rows × (u8 model, f32 LE score, u64 LE key)
//! ```
use std::fs;
use std::path::{Path, PathBuf};

use loam_quality::classifier::{Normalizer, QualityModel};
use serde::{Deserialize, Serialize};

use super::train::{self, read_cards};
use super::{doc_key, KeepRule, QualityConfig, QualityPaths};
use crate::error::{PipelineError, Result};
use arrow_array::cast::AsArray;
use arrow_array::Array;

use crate::schema::scan_columns;
use crate::sort::ExternalSorter;
use crate::stage::{
    assign_by_size, committed_outputs, file_sizes, fingerprint, par_map, write_atomic, IndexShard, ShardId, DONE_DIR,
};

pub const SCORES_MAGIC: &[u8; 8] = b"LOAMQS01";

thread_local! {
    /// Each scoring thread's normalised-text buffer.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}
/// P(reference) of `text` under `model`, normalised into this thread's buffer (no
/// allocation per document).
pub(crate) fn score_text(model: &QualityModel, normalize: &Normalizer, text: &str) -> f32 {
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        normalize.normalize_into(text, &mut line);
        model.score_normalized(&line)
    })
}

/// The model index of a document no model covers.
pub const NO_MODEL: u8 = u8::MAX;
const ROW_BYTES: usize = 13;

/// One document's score record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRow {
    pub model: u8,
    pub score: f32,
    pub key: u64,
}

impl ScoreRow {
    /// The rank of a scored row within its model: ascending = model, score ↓, key ↑.
    pub fn rank(&self) -> u128 {
        let desc = u32::MAX - self.score.to_bits();
        (u128::from(self.model) << 96) | (u128::from(desc) << 64) | u128::from(self.key)
    }
}

/// Reads a committed scores file (validating its length).
pub fn read_scores(path: &Path) -> Result<Vec<ScoreRow>> {
    let b = fs::read(path).map_err(|e| PipelineError::io(path, e))?;
    let bad = |what: &str| PipelineError::BadFile {
        path: path.to_owned(),
        offset: 0,
        what: what.to_owned(),
        fix: "rerun `loam quality --phase score --force` for its shard".into(),
    };
    if b.len() < 16 || &b[..8] != SCORES_MAGIC {
        return Err(bad("not a loam scores file"));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[8..16]);
    let n = u64::from_le_bytes(n) as usize;
    if b.len() != 16 + n * ROW_BYTES {
        return Err(bad("truncated scores file"));
    }
    Ok(b[16..]
        .chunks_exact(ROW_BYTES)
        .map(|c| {
            let mut s = [0u8; 4];
            s.copy_from_slice(&c[1..5]);
            let mut k = [0u8; 8];
            k.copy_from_slice(&c[5..13]);
            ScoreRow {
                model: c[0],
                score: f32::from_le_bytes(s),
                key: u64::from_le_bytes(k),
            }
        })
        .collect())
}

/// The run's committed quality models, one per configured model in config order, and the
/// train step's fingerprint; an error naming the fix when they are missing or stale.
pub fn load_models(run_dir: &Path, cfg: &QualityConfig, seed: u64) -> Result<(Vec<QualityModel>, String)> {
    cfg.validate()?;
    let paths = QualityPaths::new(run_dir);
    let Some(train_fp) = train::committed(&paths) else {
        return Err(PipelineError::Config(format!(
            "quality scoring needs the run's quality models, but {} has none committed; run `loam quality train` first (loam run does it in order)",
            paths.model.display()
        )));
    };
    if !train::committed_matches(run_dir, cfg, seed)? {
        return Err(PipelineError::Config(format!(
            "{}: the committed quality models were trained with other settings or sources than this config's; rerun `loam quality train --force`",
            paths.model.display()
        )));
    }
    let mut models = Vec::new();
    for card in &read_cards(&paths, cfg)? {
        let p = paths.model.join(&card.model);
        models.push(QualityModel::load(&p).map_err(|e| PipelineError::Config(e.to_string()))?);
    }
    Ok((models, train_fp))
}

/// The score step over the upstream stage's committed shards.
pub struct Scorer {
    inputs: Vec<PathBuf>,
    sizes: Vec<u64>,
    /// Per configured model, the loaded classifier.
    models: Vec<QualityModel>,
    cfg: QualityConfig,
    normalize: Normalizer,
    seed: u64,
    threads: usize,
    fingerprint: String,
    dir: PathBuf,
}

impl Scorer {
    /// Needs the committed train step and upstream stage.
    pub fn new(run_dir: &Path, cfg: &QualityConfig, seed: u64, threads: usize) -> Result<Self> {
        let paths = QualityPaths::new(run_dir);
        let (models, train_fp) = load_models(run_dir, cfg, seed)?;
        let (inputs, upstream_fp) = committed_outputs(&run_dir.join(&cfg.upstream), "quality")?;
        let sizes = file_sizes(inputs.iter().map(PathBuf::as_path))?;
        let fingerprint = fingerprint(&serde_json::json!({
            "stage": "quality-score/1", "train": train_fp, "upstream": upstream_fp,
            "normalize": cfg.normalize, "seed": seed,
            "languages": cfg.models.iter().map(|m| m.language.clone()).collect::<Vec<_>>(),
        }));
        Ok(Self {
            inputs,
            sizes,
            models,
            normalize: cfg.normalize,
            cfg: cfg.clone(),
            seed,
            threads: threads.max(1),
            fingerprint,
            dir: paths.scores,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Upstream files of `shard`, in the order both `score` and `apply` read them.
    pub fn shard_inputs(&self, shard: ShardId) -> Vec<&Path> {
        assign_by_size(&self.sizes, shard)
            .into_iter()
            .map(|i| self.inputs[i].as_path())
            .collect()
    }

    /// Scores and commits `shard`; `false` when it was already committed.
    pub fn run(&self, shard: ShardId, force: bool) -> Result<bool> {
        let Some(commit) = IndexShard::begin(&self.dir, shard, "scores", &self.fingerprint, force)? else {
            return Ok(false);
        };
        let mut rows: Vec<u8> = Vec::new();
        rows.extend_from_slice(SCORES_MAGIC);
        rows.extend_from_slice(&0u64.to_le_bytes());
        let mut n = 0u64;
        let fix = "rerun the upstream stage with --force";
        for input in self.shard_inputs(shard) {
            // Only the columns scoring needs, borrowed from the batch (no per-document copies).
            scan_columns(input, &["id", "text", "language"], fix, |b| {
                let col = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>());
                let (ids, texts) = crate::schema::id_and_text(b, input, "quality.upstream")?;
                let langs = col("language");
                let idx: Vec<usize> = (0..b.num_rows()).collect();
                let scored = par_map(&idx, self.threads, |&i| {
                    let key = doc_key(ids.value(i), self.seed);
                    let lang = langs.filter(|l| l.is_valid(i)).map(|l| l.value(i));
                    match self.cfg.model_for(lang) {
                        Some(m) => (
                            m as u8,
                            score_text(&self.models[m], &self.normalize, texts.value(i)),
                            key,
                        ),
                        None => (NO_MODEL, 0.0, key),
                    }
                });
                for (m, s, k) in scored {
                    rows.push(m);
                    rows.extend_from_slice(&s.to_le_bytes());
                    rows.extend_from_slice(&k.to_le_bytes());
                    n += 1;
                }
                Ok(())
            })?;
        }
        rows[8..16].copy_from_slice(&n.to_le_bytes());
        commit.commit(&rows, "after_quality_scores")?;
        Ok(true)
    }

    /// The scores file of `shard`.
    pub fn scores_path(&self, shard: ShardId) -> PathBuf {
        self.dir.join(format!("{}.scores", shard.stem()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// One model's share of the keep rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelThreshold {
    pub language: String,
    /// Documents this model scored.
    pub scored: u64,
    /// Documents the rule keeps.
    pub keep: u64,
    /// `top_fraction`: the lowest kept score and its key (hex): a document is kept iff
    /// (score, key) ranks at or above (score ↓, key ↑) this pair.
    pub threshold_score: Option<f32>,
    pub threshold_key: Option<String>,
}

/// `quality/_index/threshold.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub schema: String,
    pub rule: KeepRule,
    pub top_fraction: f64,
    pub min_score: f64,
    pub pareto_alpha: f64,
    pub models: Vec<ModelThreshold>,
    /// Documents no model covers (kept as they are).
    pub unscored: u64,
    pub fingerprint: String,
}

pub const THRESHOLD_SCHEMA: &str = "loam.quality.threshold/1";

impl Threshold {
    /// The `top_fraction` cut of model `m` as a rank (see [`ScoreRow::rank`]).
    pub fn cut(&self, m: usize) -> Option<u128> {
        let t = self.models.get(m)?;
        let key = u64::from_str_radix(t.threshold_key.as_deref()?, 16).ok()?;
        Some(
            ScoreRow {
                model: m as u8,
                score: t.threshold_score?,
                key,
            }
            .rank(),
        )
    }
}

/// The Pareto rule's verdict for a document: GPT-3 keeps iff `np.random.pareto(α) > 1 −
/// score`; numpy's `pareto(α)` is Lomax, `U^(−1/α) − 1` for U uniform on (0, 1], drawn
/// here from the document's key.
pub fn pareto_keeps(score: f32, key: u64, alpha: f64) -> (bool, f64) {
    let u = (key as f64 + 1.0) / (u64::MAX as f64 + 1.0);
    let draw = u.powf(-1.0 / alpha) - 1.0;
    (draw > 1.0 - f64::from(score), draw)
}

/// Whether the keep rule keeps a scored row (not `top_fraction`, which needs the cut).
pub fn rule_keeps(cfg: &QualityConfig, row: &ScoreRow) -> bool {
    match cfg.keep {
        KeepRule::All => true,
        KeepRule::MinScore => f64::from(row.score) >= cfg.min_score,
        KeepRule::Pareto => pareto_keeps(row.score, row.key, cfg.pareto_alpha).0,
        KeepRule::TopFraction => false,
    }
}

/// Whether the threshold step ran now or was committed before.
#[derive(Debug)]
pub enum ThresholdOutcome {
    Done(Threshold),
    AlreadyDone(Threshold),
}

impl ThresholdOutcome {
    pub fn threshold(&self) -> &Threshold {
        match self {
            Self::Done(t) | Self::AlreadyDone(t) => t,
        }
    }
}

/// Reads the committed threshold, or says to run the step.
pub fn read_threshold(paths: &QualityPaths) -> Result<Threshold> {
    let p = paths.threshold();
    if !paths.threshold_marker().exists() {
        return Err(PipelineError::Config(format!(
            "{}: the quality threshold step has not committed; run `loam quality --phase threshold` first",
            paths.index.display()
        )));
    }
    let b = fs::read(&p).map_err(|e| PipelineError::io(&p, e))?;
    serde_json::from_slice(&b).map_err(|e| PipelineError::BadStats {
        path: p,
        detail: e.to_string(),
    })
}

/// What decides the threshold: the scores and the keep rule.
pub fn threshold_fingerprint(scorer: &Scorer, of: usize) -> String {
    let cfg = &scorer.cfg;
    fingerprint(&serde_json::json!({
        "stage": "quality-threshold/1", "scores": scorer.fingerprint, "of": of,
        "keep": cfg.keep, "top_fraction": cfg.top_fraction, "min_score": cfg.min_score,
        "pareto_alpha": cfg.pareto_alpha,
    }))
}

/// Runs the threshold step over the `of` committed score shards of `scorer`.
pub fn run_threshold(scorer: &Scorer, of: usize, force: bool) -> Result<ThresholdOutcome> {
    let cfg = &scorer.cfg;
    let index = scorer.dir.parent().map(Path::to_path_buf).unwrap_or_default();
    let paths_marker = index.join(DONE_DIR).join("threshold");
    let dest = index.join("threshold.json");
    let fp = threshold_fingerprint(scorer, of);
    if !force && fs::read_to_string(&paths_marker).is_ok_and(|f| f.trim() == fp) {
        let b = fs::read(&dest).map_err(|e| PipelineError::io(&dest, e))?;
        let t = serde_json::from_slice(&b).map_err(|e| PipelineError::BadStats {
            path: dest.clone(),
            detail: e.to_string(),
        })?;
        return Ok(ThresholdOutcome::AlreadyDone(t));
    }
    fs::create_dir_all(index.join(DONE_DIR)).map_err(|e| PipelineError::io(&index, e))?;
    if paths_marker.exists() {
        fs::remove_file(&paths_marker).map_err(|e| PipelineError::io(&paths_marker, e))?;
    }
    let mut files = Vec::new();
    for i in 0..of {
        let shard = ShardId::new(i, of)?;
        if !IndexShard::committed(&scorer.dir, shard, &scorer.fingerprint) {
            return Err(PipelineError::Config(format!(
                "{}: scores of shard {i} of {of} are not committed for this configuration; run \
                 `loam quality --phase score` for every shard first",
                scorer.dir.display()
            )));
        }
        files.push(scorer.scores_path(shard));
    }
    let n_models = cfg.models.len();
    let mut scored = vec![0u64; n_models];
    let mut kept = vec![0u64; n_models];
    let mut unscored = 0u64;
    let tmp = index.join(format!("_tmp-{}", std::process::id()));
    let mut sorter = (cfg.keep == KeepRule::TopFraction)
        .then(|| ExternalSorter::<u128>::new(&tmp, "ranks", (cfg.memory_limit_mb << 20) as usize));
    if sorter.is_some() {
        fs::create_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    }
    for f in &files {
        for row in read_scores(f)? {
            let m = usize::from(row.model);
            if row.model == NO_MODEL || m >= n_models {
                unscored += 1;
                continue;
            }
            scored[m] += 1;
            match &mut sorter {
                Some(s) => s.push(row.rank())?,
                None => kept[m] += u64::from(rule_keeps(cfg, &row)),
            }
        }
    }
    let mut cuts: Vec<Option<(f32, u64)>> = vec![None; n_models];
    if let Some(s) = sorter {
        let want: Vec<u64> = scored
            .iter()
            .map(|&n| (cfg.top_fraction * n as f64).ceil() as u64)
            .collect();
        let mut seen = vec![0u64; n_models];
        let mut sorted = s.finish()?;
        for r in sorted.by_ref() {
            let m = (r >> 96) as usize;
            if m >= n_models {
                continue;
            }
            seen[m] += 1;
            if seen[m] == want[m] {
                let score = f32::from_bits(u32::MAX - ((r >> 64) as u32));
                cuts[m] = Some((score, r as u64));
            }
        }
        if let Some(e) = sorted.error.take() {
            return Err(e);
        }
        kept = want;
    }
    let _ = fs::remove_dir_all(&tmp);
    let t = Threshold {
        schema: THRESHOLD_SCHEMA.into(),
        rule: cfg.keep,
        top_fraction: cfg.top_fraction,
        min_score: cfg.min_score,
        pareto_alpha: cfg.pareto_alpha,
        models: cfg
            .models
            .iter()
            .enumerate()
            .map(|(m, mc)| ModelThreshold {
                language: mc.language.clone(),
                scored: scored[m],
                keep: kept[m],
                threshold_score: cuts[m].map(|c| c.0),
                threshold_key: cuts[m].map(|c| format!("{:016x}", c.1)),
            })
            .collect(),
        unscored,
        fingerprint: fp.clone(),
    };
    let json = serde_json::to_vec_pretty(&t).map_err(|e| PipelineError::Config(e.to_string()))?;
    write_atomic(&dest, &json)?;
    crate::stage::failpoint("before_quality_threshold_marker", ShardId::new(0, 1)?);
    write_atomic(&paths_marker, fp.as_bytes())?;
    Ok(ThresholdOutcome::Done(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_orders_by_model_then_score_down_then_key_up() {
        let r = |model, score, key| ScoreRow { model, score, key }.rank();
        assert!(r(0, 0.9, 5) < r(0, 0.8, 1));
        assert!(r(0, 0.8, 1) < r(0, 0.8, 2));
        assert!(r(0, 0.0, 9) < r(1, 1.0, 0));
        assert!(r(0, 1.0, 0) < r(0, 0.0, 0));
    }

    #[test]
    fn pareto_keeps_high_scores_more_often() {
        // α = 9: a score of 1 is always kept; a score of 0 needs a draw above 1, i.e.
        // U < 2^-9: about 0.2% of documents.
        let keys: Vec<u64> = (0..20_000u64)
            .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()))
            .collect();
        let share = |s: f32| keys.iter().filter(|&&k| pareto_keeps(s, k, 9.0).0).count() as f64 / keys.len() as f64;
        assert_eq!(share(1.0), 1.0);
        assert!(share(0.0) < 0.01, "{}", share(0.0));
        let mid = share(0.9);
        // P(U^(-1/9) - 1 > 0.1) = P(U < 1.1^-9) = 0.424.
        assert!((mid - 1.1f64.powf(-9.0)).abs() < 0.02, "{mid}");
    }
}
