//! `loam sweep`: the CLI and DAG steps of the IsoFLOP sweep ([`plan`] the grid, [`runner`]
//! its runs, [`results`] their fit), and the fit itself — approach 2, approach 3 and the
//! bootstrap (`loam_train::fit`) on a sweep's points or a CSV's, as `loam.fit/1` — with the
//! check of a run's predicted exponent and the calibration record `score` reads.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_train::fit::{self, Approach2, Approach3, Bootstrap, BootstrapConfig, Interval, Point, Tolerances};
use loam_train::scaling::{self, CalibrationRecord};
use serde::{Deserialize, Serialize};

use crate::config::UsageError;

pub mod plan;
pub mod results;
pub mod runner;
pub use plan::SweepConfig;

pub const FIT_SCHEMA: &str = "loam.fit/1";
/// Huber δ of SCALING.md §4 (Epoch's replication).
pub const HUBER_DELTA: f64 = 1e-3;

/// What the size column was: the fitted exponent is DeepSeek's a for M, Chinchilla's for N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeKind {
    /// Non-embedding FLOPs per token; C = M·D.
    M,
    /// Parameters; C ≈ 6·N·D.
    N,
}

/// Approach 2 when it could be fitted, else why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approach2Result {
    pub fit: Option<Approach2>,
    pub error: Option<String>,
}

/// `fit.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitFile {
    pub schema: String,
    pub size: SizeKind,
    pub points: usize,
    pub budgets: Vec<f64>,
    /// size_opt ∝ C^a by each approach, with the bootstrap intervals; b = 1 − a for M.
    pub a_approach2: Option<f64>,
    pub a_approach3: f64,
    pub approach2: Approach2Result,
    pub approach3: Approach3,
    pub bootstrap: Bootstrap,
    pub note: String,
    /// What makes a number above less trustworthy (refused budgets, a degenerate bootstrap,
    /// a non-physical law), stated beside it rather than hidden.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The score's prediction against this fit (`--score`, and every sweep).
    pub check: Option<Check>,
    /// A sweep's runs, outliers, centres and validation set (absent for `--points`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<results::SweepInfo>,
}

/// SCALING.md §4's recalibration: z = (â − a(q)) / √(σ_a² + s²), |z| ≤ 2 "consistent".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub score_file: PathBuf,
    pub q: f64,
    pub a_predicted: f64,
    pub sigma_predicted: f64,
    /// The exponent line the score used (`prior: DeepSeek Table 4` or a calibration file).
    pub predicted_by: String,
    /// Approach 2 (DeepSeek's IsoFLOP method) when it fitted, else approach 3.
    pub measured_by: String,
    pub a_hat: f64,
    /// From the bootstrap's 95% interval: (hi − lo)/(2·1.96); else approach 2's OLS s.e.
    /// None when the fit gives no usable uncertainty (then no verdict and no record).
    pub s: Option<f64>,
    pub z: Option<f64>,
    /// `consistent` (|z| ≤ 2), `rejected`, or `undetermined: …` (why).
    pub verdict: String,
    /// The line updated by this measurement, at this q (the prediction when undetermined).
    pub a_post: f64,
    /// The calibration file the record was appended to (`--calibration`).
    pub recorded_in: Option<PathBuf>,
    pub record: Option<CalibrationRecord>,
}

/// Reads a points CSV: `flops`, `m` or `params`, `tokens`, `loss` (others ignored); an
/// optional `budget` column groups the IsoFLOP slices, else flops rounded to 3
/// significant figures does.
pub fn read_points(path: &Path) -> Result<(Vec<Point>, SizeKind)> {
    let bad = |m: String| -> anyhow::Error { UsageError(format!("{}: {m}", path.display())).into() };
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad(format!(
            "{e}; give a CSV with columns flops, m (or params), tokens, loss"
        ))
    })?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad("empty file; the header must name flops, m (or params), tokens, loss".into()))?;
    let cols: HashMap<String, usize> = header
        .split(',')
        .enumerate()
        .map(|(i, c)| (c.trim().to_ascii_lowercase(), i))
        .collect();
    let col = |name: &str| cols.get(name).copied();
    let size_col = match (col("m"), col("params")) {
        (Some(i), _) => (i, SizeKind::M),
        (None, Some(i)) => (i, SizeKind::N),
        (None, None) => return Err(bad(format!("no `m` or `params` column (header: {header})"))),
    };
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            bad(format!(
                "no `{name}` column (header: {header}); need flops, m (or params), tokens, loss"
            ))
        })
    };
    let (fc, tc, lc) = (need("flops")?, need("tokens")?, need("loss")?);
    let bc = col("budget");
    let size_name = if size_col.1 == SizeKind::M { "m" } else { "params" };
    let mut pts = Vec::new();
    for (ln, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize, name: &str| -> Result<f64> {
            let raw = cells.get(i).copied().unwrap_or("");
            let v: f64 = raw
                .parse()
                .map_err(|_| bad(format!("row {} column `{name}`: {raw:?} is not a number", ln + 1)))?;
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(format!("row {} column `{name}`: {v} must be positive", ln + 1)));
            }
            Ok(v)
        };
        let flops = get(fc, "flops")?;
        let budget = match bc {
            Some(i) => get(i, "budget")?,
            None => round_sig(flops, 3),
        };
        pts.push(Point {
            budget,
            compute: flops,
            size: get(size_col.0, size_name)?,
            tokens: get(tc, "tokens")?,
            loss: get(lc, "loss")?,
        });
    }
    let mut budgets: Vec<f64> = pts.iter().map(|p| p.budget).collect();
    budgets.sort_by(f64::total_cmp);
    budgets.dedup();
    if budgets.len() < 3 {
        return Err(bad(format!(
            "{} distinct budget(s) in {} rows; a fit of C needs at least 3 IsoFLOP budgets (rows with equal `budget`, or flops equal to 3 significant figures)",
            budgets.len(),
            pts.len()
        )));
    }
    Ok((pts, size_col.1))
}

fn round_sig(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits - 1 - v.log10().floor() as i32);
    (v * p).round() / p
}

/// Both approaches and the bootstrap on `points`.
pub fn fit_points(points: &[Point], size: SizeKind, resamples: usize, seed: u64, threads: usize) -> Result<FitFile> {
    let a2 = fit::approach2(points);
    let a3 = fit::approach3(points, HUBER_DELTA, &fit::start_grid(), Tolerances::default(), threads)
        .map_err(|e| UsageError(format!("approach 3: {e}")))?;
    let mut boot = fit::bootstrap(
        points,
        Some(&a3),
        Tolerances::default(),
        BootstrapConfig {
            resamples,
            seed,
            ..BootstrapConfig::default()
        },
        threads,
    );
    let mut budgets: Vec<f64> = points.iter().map(|p| p.budget).collect();
    budgets.sort_by(f64::total_cmp);
    budgets.dedup();
    let mut warnings = warnings(a2.as_ref().ok(), &a3, &boot);
    if a2.is_err() && boot.a2.is_some() {
        // Resamples that happened to fit are a biased subset when the data itself does not.
        warnings.push(format!(
            "approach 2's bootstrap interval is withheld: approach 2 does not fit the points themselves ({} of {} resamples did)",
            boot.config.resamples - boot.a2_failed,
            boot.config.resamples
        ));
        boot.a2 = None;
        boot.b2 = None;
    }
    Ok(FitFile {
        warnings,
        schema: FIT_SCHEMA.into(),
        size,
        points: points.len(),
        budgets,
        a_approach2: a2.as_ref().ok().map(|f| f.size.exponent),
        a_approach3: a3.a,
        approach2: match a2 {
            Ok(f) => Approach2Result { fit: Some(f), error: None },
            Err(e) => Approach2Result { fit: None, error: Some(e.to_string()) },
        },
        approach3: a3,
        bootstrap: boot,
        note: match size {
            SizeKind::M => "size = M (non-embedding FLOPs/token), C = M·D: a is DeepSeek's model-scale exponent, b = 1 − a".into(),
            SizeKind::N => "size = N (parameters), C ≈ 6ND: the exponents are in N, as Chinchilla's (not comparable with DeepSeek's a in M)".into(),
        },
        check: None,
        sweep: None,
    })
}

/// The standard error a 95% percentile interval implies, (hi − lo)/(2·1.96); None when
/// there is no interval or it has no width (every resample alike).
fn half_width(i: &Option<Interval>) -> Option<f64> {
    i.filter(|i| i.hi > i.lo)
        .map(|i| (i.hi - i.lo) / (2.0 * 1.959_963_984_540_054))
}

/// Approach 2's bootstrap speaks for the data only when most resamples fitted.
fn a2_resamples_fitted(b: &Bootstrap) -> bool {
    b.a2_failed * 2 <= b.config.resamples
}

/// Approach 3's law is physical: both exponents positive.
fn physical(a3: &Approach3) -> bool {
    a3.law.alpha > 0.0 && a3.law.beta > 0.0
}

fn warnings(a2: Option<&Approach2>, a3: &Approach3, boot: &Bootstrap) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(a2) = a2 {
        for s in &a2.slices {
            if let Some(r) = &s.refused {
                w.push(format!("approach 2 refused C = {:.3e}: {r}", s.budget));
            }
        }
        if a2.size.se_exponent.is_none() {
            w.push(format!(
                "approach 2 rests on {} budgets: no residual degree of freedom, no OLS standard error",
                a2.size.budgets
            ));
        }
        let n = boot.config.resamples;
        let alike = half_width(&boot.a2).is_none();
        if !a2_resamples_fitted(boot) || alike {
            w.push(format!(
                "approach 2's bootstrap fitted {} of {n} resamples{}: too few distinct sizes per budget to resample",
                n - boot.a2_failed,
                if alike { ", all alike" } else { "" }
            ));
        }
    }
    if !physical(a3) {
        w.push(format!(
            "approach 3's law is not physical (α = {:.4}, β = {:.4}; both must be positive): too few points for its 5 parameters",
            a3.law.alpha, a3.law.beta
        ));
    }
    w
}

/// Tests the score's predicted a against the fit and builds the calibration record (of
/// `design`, the runs' own, when given; else the score's) with `source` as its provenance
/// (default: the score file, the approach, the points and budgets).
pub fn check(
    f: &FitFile,
    score_file: &Path,
    design: Option<&scaling::Design>,
    source: Option<serde_json::Value>,
) -> Result<Check> {
    if f.size != SizeKind::M {
        anyhow::bail!(UsageError(format!(
            "--score compares with the score's a, which is in M (non-embedding FLOPs/token); {} points give exponents in N: give an `m` column",
            f.points
        )));
    }
    let sc: crate::score::ScoreFile = loam_pipeline::score::read_json(score_file)?.ok_or_else(|| {
        UsageError(format!(
            "--score {}: no such file; run `loam score` first",
            score_file.display()
        ))
    })?;
    // Approach 2 (DeepSeek's method) with its bootstrap, else its OLS s.e.; approach 3 only
    // when approach 2 did not fit and its law is physical.
    let (by, a_hat, s) = match &f.approach2.fit {
        Some(a2) => (
            "approach 2 (IsoFLOP vertices)",
            a2.size.exponent,
            half_width(&f.bootstrap.a2)
                .filter(|_| a2_resamples_fitted(&f.bootstrap))
                .or(a2.size.se_exponent),
        ),
        None => (
            "approach 3 (parametric law)",
            f.approach3.a,
            half_width(&f.bootstrap.a3).filter(|_| physical(&f.approach3)),
        ),
    };
    let s = s.filter(|s| s.is_finite() && *s > 0.0);
    let line = sc.calibration.line;
    let mut source =
        source.unwrap_or_else(|| serde_json::json!({"score": score_file, "points": f.points, "budgets": f.budgets}));
    if let Some(m) = source.as_object_mut() {
        m.insert("fit".into(), by.into());
    }
    let record = s.map(|s| {
        let design = design.cloned().unwrap_or_else(|| sc.design.clone());
        CalibrationRecord {
            schema: scaling::CALIBRATION_SCHEMA.into(),
            q: sc.q,
            a_hat,
            s,
            design_hash: design.hash(),
            design,
            source,
        }
    });
    let z = s.map(|s| scaling::z_score(&line, sc.q, a_hat, s));
    Ok(Check {
        score_file: score_file.to_owned(),
        q: sc.q,
        a_predicted: line.a(sc.q),
        sigma_predicted: line.sigma,
        predicted_by: sc.calibration.source.clone(),
        measured_by: by.into(),
        a_hat,
        s,
        z,
        verdict: match z {
            Some(z) if z.abs() <= 2.0 => "consistent".into(),
            Some(_) => "rejected".into(),
            None => "undetermined: the fit gives no usable uncertainty on a (see warnings); add models per budget (≥ 5) or budgets (≥ 3)".into(),
        },
        a_post: record
            .as_ref()
            .map_or(line.a(sc.q), |r| scaling::calibrate(line, std::slice::from_ref(r)).a(sc.q)),
        recorded_in: None,
        record,
    })
}

/// Appends `record` to a calibration file (JSON lines), rewriting it atomically. With
/// `fit_id`, nothing is appended when a record from that fit (`source.sweep`) is already
/// there: a rerun of a finished sweep does not count its measurement twice.
fn append_record(path: &Path, record: &CalibrationRecord, fit_id: Option<&str>) -> Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let seen = |id: &str| {
        text.lines().any(|l| {
            serde_json::from_str::<CalibrationRecord>(l)
                .is_ok_and(|r| r.source.get("sweep").and_then(|v| v.as_str()) == Some(id))
        })
    };
    if fit_id.is_some_and(seen) {
        return Ok(());
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&serde_json::to_string(record)?);
    text.push('\n');
    crate::config::write_creating(path, text.as_bytes())
}

fn show(i: &Option<Interval>) -> String {
    i.map_or("-".into(), |i| format!("[{:.4}, {:.4}]", i.lo, i.hi))
}

/// The table printed on stderr.
pub fn table(f: &FitFile) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "fit: {} points, {} budgets, size = {:?}",
        f.points,
        f.budgets.len(),
        f.size
    );
    if let Some(a2) = &f.approach2.fit {
        let _ = writeln!(
            t,
            "  {:>10}  {:>6}  {:>21}  {:>10}  {:>10}  {:>8}  status",
            "C", "runs", "size range", "size_opt", "D_opt", "loss"
        );
        for s in &a2.slices {
            let _ = writeln!(
                t,
                "  {:>10.3e}  {:>6}  {:>10.3e}–{:<10.3e}  {:>10}  {:>10}  {:>8}  {}",
                s.budget,
                s.points,
                s.size_range[0],
                s.size_range[1],
                s.size_opt.map_or("-".into(), |v| format!("{v:.3e}")),
                s.tokens_opt.map_or("-".into(), |v| format!("{v:.3e}")),
                s.loss_opt.map_or("-".into(), |v| format!("{v:.4}")),
                s.refused.as_deref().unwrap_or("ok")
            );
        }
        let _ = writeln!(
            t,
            "  approach 2: a = {:.4} ± {} (OLS), bootstrap {}; b = {:.4}, bootstrap {}",
            a2.size.exponent,
            a2.size.se_exponent.map_or("-".into(), |s| format!("{s:.4}")),
            show(&f.bootstrap.a2),
            a2.tokens.exponent,
            show(&f.bootstrap.b2)
        );
    } else if let Some(e) = &f.approach2.error {
        let _ = writeln!(t, "  approach 2: not fitted: {e}");
    }
    let l = &f.approach3.law;
    let _ = writeln!(
        t,
        "  approach 3: a = β/(α+β) = {:.4}, bootstrap {}; E {:.4} A {:.4e} B {:.4e} α {:.4} β {:.4}; objective {:.7e} ({} of {} starts converged)",
        f.approach3.a,
        show(&f.bootstrap.a3),
        l.e,
        l.a,
        l.b,
        l.alpha,
        l.beta,
        f.approach3.objective,
        f.approach3.converged_starts,
        f.approach3.starts
    );
    for w in &f.warnings {
        let _ = writeln!(t, "  warning: {w}");
    }
    if let Some(c) = &f.check {
        let _ = writeln!(
            t,
            "  score's prediction: a({:.3}) = {:.4} ± {:.3} ({}); measured {:.4} ± {} by {}; z = {}: {}; a_post = {:.4}{}",
            c.q,
            c.a_predicted,
            c.sigma_predicted,
            c.predicted_by,
            c.a_hat,
            c.s.map_or("?".into(), |s| format!("{s:.4}")),
            c.measured_by,
            c.z.map_or("-".into(), |z| format!("{z:+.2}")),
            c.verdict,
            c.a_post,
            c.recorded_in.as_ref().map_or(String::new(), |p| format!("; recorded in {}", p.display()))
        );
    }
    t
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// The run's TOML config ([sweep] lives there): plan, every run, then the fit.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Runs at once (default: [sweep] jobs, else the cores / threads_per_run).
    #[arg(long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub common: crate::Common,
}

#[derive(clap::Subcommand)]
pub enum SweepAction {
    /// Lay the grid out around score.json's M_opt (sweep/plan.json); one task.
    Plan(SweepPlanArgs),
    /// Train one slot of the plan into sweep/run-NNN (resumable; one task per slot).
    Run(SweepRunArgs),
    /// Fit the sweep's runs (--config), or points you already have (--points FILE.csv:
    /// flops, m or params, tokens, loss) with both approaches and the bootstrap; stdout: the
    /// fit JSON, a table on stderr.
    Fit(SweepFitArgs),
}

#[derive(clap::Args)]
pub struct SweepPlanArgs {
    #[arg(long)]
    pub config: PathBuf,
    #[command(flatten)]
    pub common: crate::Common,
}

#[derive(clap::Args)]
pub struct SweepRunArgs {
    /// The run's TOML config; or --run DIR (the plan holds every setting of the run).
    #[arg(long, conflicts_with = "run")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// The grid slot: budget index × per_budget + model index.
    #[arg(long)]
    pub slot: usize,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(clap::Args)]
pub struct SweepFitArgs {
    /// CSV with columns flops, m (or params), tokens, loss; optional budget.
    #[arg(long, conflicts_with = "config", required_unless_present = "config")]
    pub points: Option<PathBuf>,
    /// The run's TOML config: fit its sweep's runs into sweep/fit.json.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also write the fit here (pretty JSON).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bootstrap resamples (stratified by budget; with --config: [sweep] resamples).
    #[arg(long)]
    pub resamples: Option<usize>,
    /// Seed of the bootstrap's ChaCha streams (with --config: [sweep] seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads for the starts and resamples (default: all cores); the result is the same.
    #[arg(long)]
    pub threads: Option<usize>,
    /// A run's score/score.json: test its predicted a against this fit (z, verdict, a_post).
    #[arg(long, requires = "points")]
    pub score: Option<PathBuf>,
    /// Append the measurement to this calibration file (JSON lines `score.calibration` reads).
    #[arg(long, requires = "score")]
    pub calibration: Option<PathBuf>,
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    pub overrides: Vec<String>,
}

/// A sweep's result line: the fit's headline numbers.
fn headline(f: &FitFile) -> serde_json::Value {
    serde_json::json!({
        "a_approach2": f.a_approach2, "a_approach3": f.a_approach3,
        "a2_interval": f.bootstrap.a2, "a3_interval": f.bootstrap.a3,
        "points": f.points, "budgets": f.budgets,
        "z": f.check.as_ref().map(|c| c.z), "verdict": f.check.as_ref().map(|c| c.verdict.clone()),
        "a_predicted": f.check.as_ref().map(|c| c.a_predicted), "a_post": f.check.as_ref().map(|c| c.a_post),
    })
}

pub fn sweep_plan_step(ctx: &mut crate::dag::Ctx<'_>) -> Result<()> {
    let p = plan::commit_plan(ctx.cfg, ctx.common.force)?;
    ctx.report.set(
        "sweep_plan",
        serde_json::json!({"runs": p.runs.len(), "slots": p.slots, "a_predicted": p.a_predicted}),
    );
    Ok(())
}

pub fn sweep_run_step(ctx: &mut crate::dag::Ctx<'_>) -> Result<()> {
    let plan = plan::read_plan(&ctx.cfg.run_dir)?;
    let jobs = runner::jobs(ctx.cfg, crate::threads(ctx.common));
    runner::run_slots(ctx.cfg, &plan, jobs)
}

pub fn sweep_fit_step(ctx: &mut crate::dag::Ctx<'_>) -> Result<()> {
    let f = results::fit_sweep(ctx.cfg, crate::threads(ctx.common))?;
    ctx.report.set("sweep", headline(&f));
    Ok(())
}

/// `loam sweep [--config C]` and its subcommands.
pub fn sweep_cmd(args: SweepArgs) -> Result<serde_json::Value> {
    match args.action {
        Some(SweepAction::Plan(a)) => {
            let cfg = sweep_config(&a.config, &a.common.overrides)?;
            crate::dag::Ctx::new(&cfg, &a.common, &crate::Split::default())?.run(&["sweep_plan"])
        }
        Some(SweepAction::Run(a)) => {
            let run_dir = match (&a.config, &a.run) {
                (Some(c), _) => sweep_config(c, &a.overrides)?.run_dir,
                (None, Some(r)) => r.clone(),
                (None, None) => anyhow::bail!(UsageError("give --config FILE or --run DIR".into())),
            };
            runner::run_slot(&run_dir, a.slot)
        }
        Some(SweepAction::Fit(a)) => match a.config.clone() {
            None => sweep_fit_cmd(a),
            Some(config) => {
                let mut overrides = a.overrides.clone();
                if let Some(r) = a.resamples {
                    overrides.push(format!("sweep.resamples={r}"));
                }
                if let Some(s) = a.seed {
                    overrides.push(format!("sweep.seed={s}"));
                }
                let cfg = sweep_config(&config, &overrides)?;
                let f = results::fit_sweep(&cfg, crate::threads_or_all(a.threads))?;
                write_out(&f, a.out.as_deref())
            }
        },
        None => {
            let Some(config) = &args.config else {
                anyhow::bail!(UsageError(
                    "give --config FILE (a run with [sweep]), or a subcommand: plan, run, fit".into()
                ));
            };
            let mut overrides = args.common.overrides.clone();
            if let Some(j) = args.jobs {
                overrides.push(format!("sweep.jobs={j}"));
            }
            let cfg = sweep_config(config, &overrides)?;
            let ctx = crate::dag::Ctx::new(&cfg, &args.common, &crate::Split::default())?;
            ctx.run(&["sweep_plan", "sweep_run", "sweep_fit"])
        }
    }
}

/// The config of a sweep command: it must have a `[sweep]` section and quality models.
fn sweep_config(path: &Path, overrides: &[String]) -> Result<crate::config::Resolved> {
    let cfg = crate::config::load(path, overrides)?;
    if !cfg.sweep.enabled {
        anyhow::bail!(UsageError(format!(
            "{}: no [sweep] section (or sweep.enabled = false); add one with budgets = [...]",
            path.display()
        )));
    }
    if !cfg.quality_enabled() {
        anyhow::bail!(UsageError(format!(
            "{}: the sweep is centred on the score, which needs [[quality.models]]",
            path.display()
        )));
    }
    Ok(cfg)
}

pub fn sweep_fit_cmd(args: SweepFitArgs) -> Result<serde_json::Value> {
    let resamples = args.resamples.unwrap_or(1000);
    if resamples == 0 {
        anyhow::bail!(UsageError(
            "--resamples must be at least 1 (SCALING.md: 1000 or more)".into()
        ));
    }
    let Some(points_file) = &args.points else {
        anyhow::bail!(UsageError("give --points FILE.csv or --config FILE".into()));
    };
    let (points, size) = read_points(points_file)?;
    let threads = crate::threads_or_all(args.threads);
    let mut f = fit_points(&points, size, resamples, args.seed.unwrap_or(0), threads)?;
    if let Some(score) = &args.score {
        let mut c = check(&f, score, None, None)?;
        if let (Some(cal), Some(r)) = (&args.calibration, &c.record) {
            append_record(cal, r, None)?;
            c.recorded_in = Some(cal.clone());
        }
        f.check = Some(c);
    }
    eprint!("{}", table(&f));
    write_out(&f, args.out.as_deref())
}

/// `--out FILE` (pretty JSON), and the fit as the result line.
fn write_out(f: &FitFile, out: Option<&Path>) -> Result<serde_json::Value> {
    if let Some(out) = out {
        crate::config::write_creating(out, &serde_json::to_vec_pretty(f)?)?;
    }
    Ok(serde_json::to_value(f)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweeps_record_is_appended_once_however_often_its_fit_is_rerun() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let cal = tmp.path().join("cal/calibration.jsonl");
        let design = scaling::Design::loam(32, 1024);
        let record = |fp: &str| CalibrationRecord {
            schema: scaling::CALIBRATION_SCHEMA.into(),
            q: 0.5,
            a_hat: 0.52,
            s: 0.02,
            design_hash: design.hash(),
            design: design.clone(),
            source: serde_json::json!({ "sweep": fp }),
        };
        append_record(&cal, &record("aaaa"), Some("aaaa"))?;
        append_record(&cal, &record("aaaa"), Some("aaaa"))?;
        append_record(&cal, &record("bbbb"), Some("bbbb"))?;
        let text = std::fs::read_to_string(&cal)?;
        assert_eq!(text.lines().count(), 2, "{text}");
        let back: Vec<CalibrationRecord> = text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        assert_eq!(back[1].source["sweep"], "bbbb");
        Ok(())
    }
}
