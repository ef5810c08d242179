//! `loam sweep`: an IsoFLOP sweep on the run's own tokens. `plan` lays the grid out around
//! score.json's M_opt (`sweep/plan.json`); `run --slot i` trains one grid point as an
//! ordinary resumable train run in `sweep/run-NNN/` and records its outcome; `fit` applies
//! the outlier rule, fits both approaches with the bootstrap and tests the score's prediction
//! (`sweep/fit.json`). `loam sweep` does all three, the grid's points as concurrent child
//! processes of `threads_per_run` cores each (a killed sweep, rerun, continues every run
//! from its last checkpoint; a finished one is a no-op).
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use loam_train::fit::Point;
use loam_train::scaling::{self, Design, GridRun, ShapeRules};
use loam_train::{TrainConfig, TrainError};
use serde::{Deserialize, Serialize};

use super::{FitFile, SizeKind};
use crate::config::{Resolved, UsageError};

pub const PLAN_SCHEMA: &str = "loam.sweep-plan/1";
pub const OUTCOME_SCHEMA: &str = "loam.sweep-run/1";

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
    pub slot: usize,
    /// Folder under `sweep/`.
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

/// `sweep/run-NNN/outcome.json`: what one run gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub schema: String,
    pub slot: usize,
    /// `ok`, or `diverged` (non-finite loss: kept as a result, dropped from the fit).
    pub status: String,
    pub budget: f64,
    pub n_layer: usize,
    pub d_model: usize,
    pub m: f64,
    pub tokens: u64,
    /// C = M·D actually spent.
    pub compute: f64,
    pub steps: u64,
    /// Validation loss on the sweep's shared windows: nats per token and bits per byte.
    pub val_loss: Option<f64>,
    pub val_bpb: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub bytes_per_token_val: Option<f64>,
    pub detail: Option<String>,
    /// Wall and CPU seconds of the attempt that finished (and the step it resumed from).
    pub wall_s: f64,
    pub cpu_s: f64,
    pub threads: usize,
    pub resumed_from: Option<u64>,
}

impl Outcome {
    /// One line of progress: the run, its shape and budget, how it ended.
    fn line(&self, dir: &str) -> String {
        format!(
            "sweep: {dir} ({} × {}, C = {:.3e}) {}: {} bits/byte in {:.1} s ({:.1} CPU s)",
            self.n_layer,
            self.d_model,
            self.compute,
            self.status,
            self.val_bpb.map_or("-".into(), |b| format!("{b:.4}")),
            self.wall_s,
            self.cpu_s
        )
    }
}

/// A run of the fit's table: kept, or dropped with its reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    pub slot: usize,
    pub dir: String,
    pub budget: f64,
    pub n_layer: usize,
    pub d_model: usize,
    pub m: f64,
    pub tokens: u64,
    pub compute: f64,
    pub loss_bpb: Option<f64>,
    pub status: String,
    pub dropped: Option<String>,
    pub wall_s: f64,
    pub cpu_s: f64,
}

/// What a sweep's fit.json adds to a points fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepInfo {
    /// xxh3 of the points, resamples and seed: a rerun with the same is a no-op.
    pub fingerprint: String,
    pub loss: String,
    pub outlier_rule: String,
    pub runs: Vec<RunRow>,
    pub centres: Vec<Centre>,
    pub grid_dropped: Vec<(f64, f64)>,
    /// The shared validation set: windows × (l_seq + 1) tokens from the start of the
    /// held-out documents, and its bytes per token.
    pub validation_windows: usize,
    pub seq_len: usize,
    pub bytes_per_token_val: f64,
    pub wall_s_total: f64,
    pub cpu_s_total: f64,
}

pub fn sweep_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("sweep")
}

fn plan_path(run_dir: &Path) -> PathBuf {
    sweep_dir(run_dir).join("plan.json")
}

fn usage(m: String) -> anyhow::Error {
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
            slot: g.slot,
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

fn outcome_path(run_dir: &Path, r: &PlannedRun) -> PathBuf {
    sweep_dir(run_dir).join(&r.dir).join("outcome.json")
}

fn read_outcome(run_dir: &Path, r: &PlannedRun) -> Result<Option<Outcome>> {
    Ok(loam_pipeline::score::read_json::<Outcome>(&outcome_path(run_dir, r))?.filter(|o| o.schema == OUTCOME_SCHEMA))
}

/// CPU seconds of this process (user + system, every thread), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the `(comm)`: state is field 3, utime 14 and stime 15, in clock ticks
    // (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// A child of `loam sweep` exits when its parent dies, so a killed sweep leaves no run
/// writing behind the rerun's back (the run folder's lock covers any other case).
fn exit_with_parent() {
    let Some(pid) = std::env::var("LOAM_SWEEP_PARENT")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return;
    };
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != pid {
            eprintln!("sweep: the parent sweep (pid {pid}) is gone; stopping (rerun `loam sweep` to continue)");
            std::process::exit(137);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    });
}

/// Trains slot `slot` of the plan (a no-op when it is finished or was dropped).
pub fn run_slot(run_dir: &Path, slot: usize) -> Result<serde_json::Value> {
    let plan = read_plan(run_dir)?;
    if slot >= plan.slots {
        anyhow::bail!(usage(format!(
            "--slot {slot}: the plan has slots 0–{}",
            plan.slots.saturating_sub(1)
        )));
    }
    let Some(r) = plan.runs.iter().find(|r| r.slot == slot) else {
        eprintln!("sweep: slot {slot} has no model of its own (its shape is another slot's); nothing to run");
        return Ok(serde_json::json!({"ok": true, "slot": slot, "status": "dropped"}));
    };
    exit_with_parent();
    let dir = sweep_dir(run_dir).join(&r.dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // One process per run folder: a second waits, then finds the run finished.
    let lock_path = dir.join("_lock");
    let lock = std::fs::File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if let Some(o) = read_outcome(run_dir, r)? {
        return Ok(serde_json::json!({"ok": true, "slot": slot, "status": o.status, "outcome": o}));
    }
    let (wall0, cpu0) = (Instant::now(), cpu_seconds());
    let device = Default::default();
    let total = r.train.total_steps();
    let progress = |m: &loam_train::StepMetrics, of: u64| {
        if (m.step + 1).is_multiple_of((of / 4).max(1)) || m.step + 1 == of {
            eprintln!(
                "{}",
                serde_json::json!({"event": "sweep_step", "run": r.dir, "step": m.step + 1, "of": of,
                    "loss": m.loss, "tokens_per_s": m.tokens_per_s, "val_bpb": m.val_bpb})
            );
        }
    };
    let res = loam_train::train::<loam_train::DefaultBackend>(
        &r.train,
        &run_dir.join("tokenize"),
        &dir,
        true,
        &device,
        progress,
    );
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| crate::threads_or_all(None));
    let mut o = Outcome {
        schema: OUTCOME_SCHEMA.into(),
        slot,
        status: "ok".into(),
        budget: r.grid.budget,
        n_layer: r.grid.shape.n_layer,
        d_model: r.grid.shape.d_model,
        m: r.grid.shape.m,
        tokens: r.train.tokens,
        compute: r.grid.compute,
        steps: total,
        val_loss: None,
        val_bpb: None,
        final_train_loss: None,
        bytes_per_token_val: None,
        detail: None,
        wall_s: 0.0,
        cpu_s: 0.0,
        threads,
        resumed_from: None,
    };
    match res {
        Ok(s) => {
            o.m = s.m;
            o.tokens = s.tokens;
            o.compute = s.compute;
            o.steps = s.steps;
            o.val_loss = s.val_loss;
            o.val_bpb = s.val_bpb;
            o.final_train_loss = Some(s.final_loss);
            o.bytes_per_token_val = Some(s.bytes_per_token_val);
            o.resumed_from = s.resumed_from;
        }
        Err(TrainError::Diverged { step, loss }) => {
            o.status = "diverged".into();
            o.steps = step;
            o.detail = Some(format!("loss {loss} at step {step}"));
        }
        Err(TrainError::Config(m)) => return Err(usage(format!("{}: {m}", dir.display()))),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("sweep run {}", dir.display()))),
    }
    o.wall_s = wall0.elapsed().as_secs_f64();
    o.cpu_s = cpu_seconds() - cpu0;
    crate::config::write_creating(&outcome_path(run_dir, r), &serde_json::to_vec_pretty(&o)?)?;
    eprintln!("{}", o.line(&r.dir));
    Ok(serde_json::json!({"ok": true, "slot": slot, "status": o.status, "outcome": o}))
}

/// Runs every unfinished slot as a child `loam sweep run`, `jobs` at a time, each with
/// `threads_per_run` compute threads; the costliest first, so the last to start are short.
pub fn run_slots(cfg: &Resolved, plan: &Plan, jobs: usize) -> Result<()> {
    let run_dir = &cfg.run_dir;
    let mut todo: Vec<&PlannedRun> = Vec::new();
    for r in &plan.runs {
        if read_outcome(run_dir, r)?.is_none() {
            todo.push(r);
        }
    }
    if todo.is_empty() {
        eprintln!("sweep: every run of the plan is finished");
        return Ok(());
    }
    todo.sort_by(|a, b| {
        let cost = |r: &PlannedRun| r.grid.shape.total_flops * r.train.tokens as f64;
        cost(b).total_cmp(&cost(a)).then(a.slot.cmp(&b.slot))
    });
    let exe = std::env::current_exe().context("finding the loam binary to run the sweep's runs")?;
    let jobs = jobs.clamp(1, todo.len());
    eprintln!(
        "sweep: {} of {} runs to train, {jobs} at a time, {} thread(s) each",
        todo.len(),
        plan.runs.len(),
        cfg.sweep.threads_per_run
    );
    let queue = Mutex::new(todo.into_iter().rev().collect::<Vec<_>>());
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                while let Some(r) = queue.lock().ok().and_then(|mut q| q.pop()) {
                    let dir = sweep_dir(run_dir).join(&r.dir);
                    let log = dir.join("log.txt");
                    let res = std::fs::create_dir_all(&dir)
                        .and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(&log))
                        .and_then(|f| {
                            std::process::Command::new(&exe)
                                .args(["sweep", "run", "--run"])
                                .arg(run_dir)
                                .args(["--slot", &r.slot.to_string()])
                                .env("RAYON_NUM_THREADS", cfg.sweep.threads_per_run.to_string())
                                .env("LOAM_SWEEP_PARENT", std::process::id().to_string())
                                .stdout(std::process::Stdio::null())
                                .stderr(f)
                                .status()
                        });
                    let problem = match res {
                        Ok(st) if st.success() => None,
                        Ok(st) => Some(format!("{} exited with {st} (see {})", r.dir, log.display())),
                        Err(e) => Some(format!("{}: {e}", r.dir)),
                    };
                    if let Some(p) = problem {
                        if let Ok(mut f) = failed.lock() {
                            f.push(p);
                        }
                    } else if let Ok(Some(o)) = read_outcome(run_dir, r) {
                        eprintln!("{}", o.line(&r.dir));
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_default();
    if !failed.is_empty() {
        anyhow::bail!("{} sweep run(s) failed: {}", failed.len(), failed.join("; "));
    }
    Ok(())
}

/// The outlier rule, as fit.json states it.
fn outlier_rule(factor: f64) -> String {
    format!(
        "dropped: a diverged run (non-finite loss), a run with no validation loss, and a run whose loss is more than {factor}× its budget's best (not converged)"
    )
}

/// Collects the runs' outcomes, drops outliers, fits, checks the score's prediction and
/// appends the calibration record (once per fit), writing `sweep/fit.json` and
/// `sweep/points.csv`.
pub fn fit_sweep(cfg: &Resolved, threads: usize) -> Result<FitFile> {
    let run_dir = &cfg.run_dir;
    let sw = &cfg.sweep;
    let plan = read_plan(run_dir)?;
    let mut rows = Vec::new();
    let mut bpt: Option<f64> = None;
    for r in &plan.runs {
        let o = read_outcome(run_dir, r)?.ok_or_else(|| {
            usage(format!(
                "{} has not finished: run `loam sweep run --slot {}` (or `loam sweep`, which runs every slot)",
                sweep_dir(run_dir).join(&r.dir).display(),
                r.slot
            ))
        })?;
        if let Some(b) = o.bytes_per_token_val {
            if bpt.is_some_and(|x| (x - b).abs() > 1e-9 * x) {
                anyhow::bail!(
                    "{}: validated on another byte set ({b} bytes/token, others {}); the runs must share one validation set — rerun with --force",
                    r.dir,
                    bpt.unwrap_or(0.0)
                );
            }
            bpt = Some(b);
        }
        rows.push(RunRow {
            slot: r.slot,
            dir: r.dir.clone(),
            budget: r.grid.budget,
            n_layer: o.n_layer,
            d_model: o.d_model,
            m: o.m,
            tokens: o.tokens,
            compute: o.compute,
            loss_bpb: o.val_bpb.filter(|b| b.is_finite()),
            dropped: match (&o.status[..], o.val_bpb) {
                ("diverged", _) => Some(format!("diverged: {}", o.detail.as_deref().unwrap_or(""))),
                (_, None) => Some("no validation loss (no validation windows)".into()),
                (_, Some(b)) if !b.is_finite() => Some(format!("validation loss {b}")),
                _ => None,
            },
            status: o.status,
            wall_s: o.wall_s,
            cpu_s: o.cpu_s,
        });
    }
    for &c in &sw.budgets {
        let best = rows
            .iter()
            .filter(|r| r.budget == c && r.dropped.is_none())
            .filter_map(|r| r.loss_bpb)
            .fold(f64::INFINITY, f64::min);
        for r in rows.iter_mut().filter(|r| r.budget == c && r.dropped.is_none()) {
            if let Some(l) = r.loss_bpb.filter(|l| *l > best * sw.outlier_factor) {
                r.dropped = Some(format!(
                    "not converged: {l:.4} bits/byte is more than {}× the budget's best {best:.4}",
                    sw.outlier_factor
                ));
            }
        }
    }
    let points: Vec<Point> = rows
        .iter()
        .filter(|r| r.dropped.is_none())
        .filter_map(|r| {
            r.loss_bpb.map(|loss| Point {
                budget: r.budget,
                compute: r.compute,
                size: r.m,
                tokens: r.tokens as f64,
                loss,
            })
        })
        .collect();
    let mut csv = String::from("budget,flops,m,tokens,loss\n");
    for p in &points {
        csv.push_str(&format!(
            "{:e},{:e},{:e},{},{}\n",
            p.budget, p.compute, p.size, p.tokens, p.loss
        ));
    }
    let mut budgets: Vec<f64> = points.iter().map(|p| p.budget).collect();
    budgets.dedup();
    if budgets.len() < 2 {
        anyhow::bail!(usage(format!(
            "{} budget(s) have runs left after the outlier rule; a fit needs 2 (see {}/run-*/outcome.json)",
            budgets.len(),
            sweep_dir(run_dir).display()
        )));
    }
    let fingerprint = format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(format!("{csv}|{}|{}", sw.resamples, sw.seed).as_bytes())
    );
    let fit_path = sweep_dir(run_dir).join("fit.json");
    if let Some(old) = loam_pipeline::score::read_json::<FitFile>(&fit_path)? {
        if old.sweep.as_ref().is_some_and(|s| s.fingerprint == fingerprint) {
            eprintln!("sweep: {} is up to date", fit_path.display());
            return Ok(old);
        }
    }
    crate::config::write_creating(&sweep_dir(run_dir).join("points.csv"), csv.as_bytes())?;
    let mut f = super::fit_points(&points, SizeKind::M, sw.resamples, sw.seed, threads)?;
    let mut c = super::check(&f, &plan.score_file, Some(&plan.design))?;
    if let Some(r) = c.record.as_mut() {
        r.source = serde_json::json!({"sweep": fingerprint, "run_dir": run_dir, "fit": c.measured_by,
            "points": f.points, "budgets": f.budgets});
    }
    if let (Some(cal), Some(r)) = (&sw.calibration, &c.record) {
        super::append_record_once(cal, r, &fingerprint)?;
        c.recorded_in = Some(cal.clone());
    }
    f.check = Some(c);
    f.sweep = Some(SweepInfo {
        fingerprint,
        loss: "validation bits per byte on the shared windows".into(),
        outlier_rule: outlier_rule(sw.outlier_factor),
        wall_s_total: rows.iter().map(|r| r.wall_s).sum(),
        cpu_s_total: rows.iter().map(|r| r.cpu_s).sum(),
        runs: rows,
        centres: plan.centres.clone(),
        grid_dropped: plan.dropped.clone(),
        validation_windows: sw.eval_windows,
        seq_len: plan.rules.seq_len,
        bytes_per_token_val: bpt.unwrap_or(f64::NAN),
    });
    crate::config::write_creating(&fit_path, &serde_json::to_vec_pretty(&f)?)?;
    eprint!("{}", super::table(&f));
    Ok(f)
}

/// Runs as `loam sweep` and `loam run` use: `jobs` from the flag, else `[sweep] jobs`, else
/// the cores over threads_per_run.
pub fn jobs(cfg: &Resolved, flag: Option<usize>, threads: usize) -> usize {
    flag.filter(|j| *j > 0)
        .or((cfg.sweep.jobs > 0).then_some(cfg.sweep.jobs))
        .unwrap_or_else(|| (threads / cfg.sweep.threads_per_run).max(1))
}
