//! The sweep's configuration (`[sweep]`) and its plan: the IsoFLOP grid laid out around
//! score.json's M_opt (`sweep/plan.json`), one slot per budget and model target.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_train::scaling::{self, Design, GridRun, ShapeRules};
use loam_train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::config::{Resolved, UsageError};

pub const PLAN_SCHEMA: &str = "loam.sweep-plan/1";

/// The `[sweep]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// A `[sweep]` section turns the sweep steps on; `enabled = false` turns them off.
    pub enabled: bool,
    /// Compute budgets C in FLOPs (at least 2; 3 per decade is the paper's spacing).
    pub budgets: Vec<f64>,
    /// Models per budget, spaced evenly in ln M over ×`span` around the centre.
    pub per_budget: usize,
    pub span: f64,
    /// The centre is M_opt(C; a) of score.json times this (1: the score's prediction). It is
    /// raised to √span × the smallest shape when M_opt is below what the rules allow.
    pub centre_scale: f64,
    /// l_seq of every run (0: train.model.seq_len).
    pub seq_len: usize,
    /// Shape rules of the grid: tiny budgets need d/n below DeepSeek's 40.
    pub min_ratio: f64,
    pub max_ratio: f64,
    pub max_d_model: usize,
    /// B_opt(C) is split into micro-batches of at most this many sequences.
    pub max_micro_batch: usize,
    /// Validation windows of every run's final loss: the same windows for all runs.
    pub eval_windows: usize,
    /// Runs at once (0: the cores / threads_per_run).
    pub jobs: usize,
    /// Compute threads of each run (Flex hardly uses a second core on these models).
    pub threads_per_run: usize,
    /// A run whose loss is more than this factor above its budget's best did not converge
    /// (a ×16 IsoFLOP curve spans ~10–30%, so 1.5 flags only runs that failed to learn):
    /// it is dropped from the fit and listed.
    pub outlier_factor: f64,
    /// Bootstrap resamples (stratified by budget) and the seed of their streams.
    pub resamples: usize,
    pub seed: u64,
    /// Append the measurement to this calibration file (JSON lines `score.calibration` reads).
    pub calibration: Option<PathBuf>,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            budgets: Vec::new(),
            per_budget: 7,
            span: 16.0,
            centre_scale: 1.0,
            seq_len: 0,
            min_ratio: 8.0,
            max_ratio: 130.0,
            max_d_model: 4096,
            max_micro_batch: 16,
            eval_windows: 128,
            jobs: 0,
            threads_per_run: 1,
            outlier_factor: 1.5,
            resamples: 1000,
            seed: 0,
            calibration: None,
        }
    }
}

impl SweepConfig {
    /// No `[sweep]` section: the sweep steps are off.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| -> Result<()> { Err(UsageError(format!("sweep.{m}")).into()) };
        if !self.enabled {
            return Ok(());
        }
        if self.budgets.len() < 2 {
            return bad(format!(
                "budgets: {} given; a sweep needs at least 2 IsoFLOP budgets (3 for standard errors), e.g. [1e12, 3e12, 1e13]",
                self.budgets.len()
            ));
        }
        if let Some(c) = self.budgets.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
            return bad(format!("budgets: {c} is not a positive number of FLOPs"));
        }
        if self.budgets.windows(2).any(|w| w[0] >= w[1]) {
            return bad("budgets must ascend, each once".into());
        }
        if self.per_budget < 3 {
            return bad(format!(
                "per_budget = {}: a parabola per budget needs at least 3 models (the paper: 7–9)",
                self.per_budget
            ));
        }
        if !(self.span > 1.0 && self.span.is_finite()) {
            return bad(format!("span = {}: need a factor above 1 (the paper: ~16)", self.span));
        }
        if !(self.centre_scale > 0.0 && self.centre_scale.is_finite()) {
            return bad(format!("centre_scale = {} must be positive", self.centre_scale));
        }
        if !(self.min_ratio > 0.0 && self.min_ratio <= self.max_ratio) {
            return bad(format!(
                "min_ratio {} / max_ratio {}: need 0 < min_ratio <= max_ratio",
                self.min_ratio, self.max_ratio
            ));
        }
        if self.max_micro_batch == 0 || self.eval_windows == 0 || self.threads_per_run == 0 {
            return bad("max_micro_batch, eval_windows and threads_per_run must be at least 1".into());
        }
        if self.outlier_factor <= 1.0 {
            return bad(format!(
                "outlier_factor = {} must be above 1 (1.5: 50% worse than the budget's best)",
                self.outlier_factor
            ));
        }
        if self.resamples == 0 {
            return bad("resamples must be at least 1 (SCALING.md: 1000)".into());
        }
        Ok(())
    }
}

/// Where a budget's models are centred, and why there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Centre {
    pub budget: f64,
    /// M_opt(C; a) of the score's exponent.
    pub m_opt: f64,
    pub centre: f64,
    pub note: Option<String>,
}

/// One grid point: the shape and budget, and the full `[train]` table it trains with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Folder under `sweep/` (`run-` and the grid slot).
    pub dir: String,
    pub grid: GridRun,
    pub train: TrainConfig,
}

/// `sweep/plan.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub schema: String,
    pub score_file: PathBuf,
    pub q: f64,
    pub a_predicted: f64,
    pub predicted_by: String,
    /// The design the runs share (context length, vocabulary, M, schedule): a calibration
    /// record pools only with this design.
    pub design: Design,
    pub rules: ShapeRules,
    /// budgets × per_budget: the slots a scheduler has tasks for (dropped ones are no-ops).
    pub slots: usize,
    pub centres: Vec<Centre>,
    pub runs: Vec<PlannedRun>,
    /// (budget, M target) pairs with no shape of their own.
    pub dropped: Vec<(f64, f64)>,
}

pub fn sweep_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("sweep")
}

fn plan_path(run_dir: &Path) -> PathBuf {
    sweep_dir(run_dir).join("plan.json")
}

pub(super) fn usage(m: String) -> anyhow::Error {
    UsageError(m).into()
}

/// Lays the grid out from score.json: centres, shapes, η_opt, B_opt split into
/// micro-batches, and the whole steps within each budget.
pub fn make_plan(cfg: &Resolved) -> Result<Plan> {
    let sw = &cfg.sweep;
    let score_file = crate::score::score_path(&cfg.run_dir);
    let sc: crate::score::ScoreFile = loam_pipeline::score::read_json(&score_file)?.ok_or_else(|| {
        usage(format!(
            "the sweep is centred on {}, which is missing: run `loam score` first (loam run does it in order)",
            score_file.display()
        ))
    })?;
    let seq = if sw.seq_len == 0 {
        cfg.train.model.seq_len
    } else {
        sw.seq_len
    };
    let rules = ShapeRules {
        seq_len: seq,
        vocab_size: sc.design.vocab_size,
        min_ratio: sw.min_ratio,
        max_ratio: sw.max_ratio,
        max_d_model: sw.max_d_model,
        ..ShapeRules::default()
    };
    let floor = scaling::smallest_m(&rules)
        .ok_or_else(|| usage("sweep: the shape rules allow no model; widen min_ratio/max_ratio".into()))?;
    let low = floor * sw.span.sqrt();
    let centres: Vec<Centre> = sw
        .budgets
        .iter()
        .map(|&c| {
            let m_opt = scaling::m_opt(c, sc.a);
            let want = m_opt * sw.centre_scale;
            Centre {
                budget: c,
                m_opt,
                centre: want.max(low),
                note: (want < low).then(|| {
                    format!(
                        "M_opt·centre_scale = {want:.3e} is below √span × the smallest shape ({floor:.3e}): the ×{} span starts at the smallest shape",
                        sw.span
                    )
                }),
            }
        })
        .collect();
    let pairs: Vec<(f64, f64)> = centres.iter().map(|c| (c.budget, c.centre)).collect();
    let grid = scaling::sweep_grid(&pairs, sw.per_budget, sw.span, &rules);
    let mut dropped = grid.dropped.clone();
    let mut runs = Vec::new();
    for g in grid.runs {
        let mut t = cfg.train.clone();
        t.from_score = false;
        t.model.n_layer = g.shape.n_layer;
        t.model.d_model = g.shape.d_model;
        t.model.n_heads = g.shape.n_heads;
        t.model.n_kv_heads = g.shape.n_kv_heads;
        t.model.seq_len = seq;
        t.schedule.peak_lr = g.peak_lr;
        t.grad_accum = g.batch_seqs.div_ceil(sw.max_micro_batch);
        t.micro_batch = g.batch_seqs.div_ceil(t.grad_accum);
        let step = t.tokens_per_step();
        // Whole steps of the batch actually run within C/M.
        t.tokens = ((g.budget / g.shape.m) / step as f64).floor() as u64 * step;
        let steps = t.tokens / step.max(1);
        if steps == 0 {
            dropped.push((g.budget, g.m_target));
            continue;
        }
        // The paper's warmup is 2000 of ~10⁵ steps; a sweep run of a few hundred steps
        // warms up over at most a tenth of them.
        t.schedule.warmup_steps = t.schedule.warmup_steps.min((steps / 10).max(1));
        t.stop_after_steps = None;
        t.eval_every = 0;
        t.eval_windows = sw.eval_windows;
        let mut g = g;
        g.tokens = t.tokens;
        g.compute = g.shape.m * t.tokens as f64;
        runs.push(PlannedRun {
            dir: format!("run-{:03}", g.slot),
            grid: g,
            train: t,
        });
    }
    Ok(Plan {
        schema: PLAN_SCHEMA.into(),
        score_file,
        q: sc.q,
        a_predicted: sc.a,
        predicted_by: sc.calibration.source.clone(),
        design: Design::loam(seq, sc.design.vocab_size),
        rules,
        slots: sw.budgets.len() * sw.per_budget,
        centres,
        runs,
        dropped,
    })
}

/// Writes the plan, or keeps the one there when it is the same grid; a different grid over
/// existing runs needs `--force` (which clears `sweep/`).
pub fn commit_plan(cfg: &Resolved, force: bool) -> Result<Plan> {
    let plan = make_plan(cfg)?;
    let path = plan_path(&cfg.run_dir);
    let old: Option<Plan> = loam_pipeline::score::read_json(&path)?;
    if let Some(old) = old {
        let same = serde_json::to_value(&old.runs)? == serde_json::to_value(&plan.runs)?;
        if same {
            return Ok(old);
        }
        if !force {
            anyhow::bail!(usage(format!(
                "{} holds another grid (the score, [sweep] or [train] changed); pass --force to clear {} and start the sweep again",
                path.display(),
                sweep_dir(&cfg.run_dir).display()
            )));
        }
        std::fs::remove_dir_all(sweep_dir(&cfg.run_dir))
            .with_context(|| format!("clearing {}", sweep_dir(&cfg.run_dir).display()))?;
    }
    crate::config::write_creating(&path, &serde_json::to_vec_pretty(&plan)?)?;
    eprintln!("{}", plan_table(&plan));
    Ok(plan)
}

pub fn read_plan(run_dir: &Path) -> Result<Plan> {
    let path = plan_path(run_dir);
    let plan: Plan = loam_pipeline::score::read_json(&path)?.ok_or_else(|| {
        usage(format!(
            "{} is missing: run `loam sweep plan` first (`loam sweep` and `loam run` do it in order)",
            path.display()
        ))
    })?;
    if plan.schema != PLAN_SCHEMA {
        anyhow::bail!(usage(format!(
            "{}: schema {:?}, this loam reads {PLAN_SCHEMA:?}; run `loam sweep plan --force`",
            path.display(),
            plan.schema
        )));
    }
    Ok(plan)
}

fn plan_table(p: &Plan) -> String {
    use std::fmt::Write as _;
    let mut t = format!(
        "sweep plan: {} runs in {} slots, a = {:.4} at q = {:.3} ({}), l_seq {}, vocab {}\n",
        p.runs.len(),
        p.slots,
        p.a_predicted,
        p.q,
        p.predicted_by,
        p.rules.seq_len,
        p.rules.vocab_size
    );
    for c in &p.centres {
        let _ = writeln!(
            t,
            "  C = {:.3e}: M_opt {:.3e}, centre {:.3e}{}",
            c.budget,
            c.m_opt,
            c.centre,
            c.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
        );
        for r in p.runs.iter().filter(|r| r.grid.budget == c.budget) {
            let _ = writeln!(
                t,
                "    {}  {:>2} × {:<4}  M {:.3e}  D {:>10}  LR {:.3e}  batch {} × {}",
                r.dir,
                r.grid.shape.n_layer,
                r.grid.shape.d_model,
                r.grid.shape.m,
                r.train.tokens,
                r.train.schedule.peak_lr,
                r.train.micro_batch,
                r.train.grad_accum
            );
        }
    }
    if !p.dropped.is_empty() {
        let _ = writeln!(t, "  targets with no shape of their own (dropped): {}", p.dropped.len());
    }
    t
}
