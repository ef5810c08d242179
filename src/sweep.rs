//! `loam sweep fit`: approach-2 and approach-3 fits with a bootstrap (`loam_train::fit`) on
//! points from a CSV, written as the fit JSON a sweep writes (`loam.fit/1`); with `--score`,
//! the check of that run's predicted exponent and the calibration record `score` reads.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_train::fit::{self, Approach2, Approach3, Bootstrap, BootstrapConfig, Interval, Point, Tolerances};
use loam_train::scaling::{self, CalibrationRecord};
use serde::{Deserialize, Serialize};

use crate::config::UsageError;

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
    /// The score's prediction against this fit (`--score`).
    pub check: Option<Check>,
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
    pub s: f64,
    pub z: f64,
    pub verdict: String,
    /// The line updated by this measurement, at this q.
    pub a_post: f64,
    /// The calibration file the record was appended to (`--calibration`).
    pub recorded_in: Option<PathBuf>,
    pub record: CalibrationRecord,
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
    let boot = fit::bootstrap(
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
    Ok(FitFile {
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
    })
}

/// Tests the score's predicted a against the fit and builds the calibration record.
pub fn check(f: &FitFile, score_file: &Path) -> Result<Check> {
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
    let z95 = 1.959_963_984_540_054;
    let (by, a_hat, s) = match (&f.approach2.fit, f.bootstrap.a2) {
        (Some(a2), Some(i)) => (
            "approach 2 (IsoFLOP vertices)",
            a2.size.exponent,
            (i.hi - i.lo) / (2.0 * z95),
        ),
        (Some(a2), None) => (
            "approach 2 (IsoFLOP vertices)",
            a2.size.exponent,
            a2.size.se_exponent.unwrap_or(f64::NAN),
        ),
        (None, _) => (
            "approach 3 (parametric law)",
            f.approach3.a,
            f.bootstrap.a3.map_or(f64::NAN, |i| (i.hi - i.lo) / (2.0 * z95)),
        ),
    };
    if !(s.is_finite() && s > 0.0) {
        anyhow::bail!(UsageError(format!(
            "the fit's uncertainty on a is {s}: add budgets or resamples (--resamples) so that the bootstrap spreads"
        )));
    }
    let line = sc.calibration.line;
    let z = scaling::z_score(&line, sc.q, a_hat, s);
    let record = CalibrationRecord {
        schema: scaling::CALIBRATION_SCHEMA.into(),
        q: sc.q,
        a_hat,
        s,
        design: sc.design.clone(),
        design_hash: sc.design_hash.clone(),
        source: serde_json::json!({"score": score_file, "fit": by, "points": f.points, "budgets": f.budgets}),
    };
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
        verdict: if z.abs() <= 2.0 { "consistent" } else { "rejected" }.into(),
        a_post: scaling::calibrate(line, std::slice::from_ref(&record)).a(sc.q),
        recorded_in: None,
        record,
    })
}

/// Appends `record` to a calibration file (JSON lines), rewriting it atomically.
fn append_record(path: &Path, record: &CalibrationRecord) -> Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
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
    if let Some(c) = &f.check {
        let _ = writeln!(
            t,
            "  score's prediction: a({:.3}) = {:.4} ± {:.3} ({}); measured {:.4} ± {:.4} by {}; z = {:+.2}: {}; a_post = {:.4}{}",
            c.q,
            c.a_predicted,
            c.sigma_predicted,
            c.predicted_by,
            c.a_hat,
            c.s,
            c.measured_by,
            c.z,
            c.verdict,
            c.a_post,
            c.recorded_in.as_ref().map_or(String::new(), |p| format!("; recorded in {}", p.display()))
        );
    }
    t
}

#[derive(clap::Args)]
pub struct SweepFitArgs {
    /// CSV with columns flops, m (or params), tokens, loss; optional budget.
    #[arg(long)]
    pub points: PathBuf,
    /// Also write the fit here (pretty JSON).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bootstrap resamples (stratified by budget).
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seed of the bootstrap's ChaCha streams.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads for the starts and resamples (default: all cores); the result is the same.
    #[arg(long)]
    pub threads: Option<usize>,
    /// A run's score/score.json: test its predicted a against this fit (z, verdict, a_post).
    #[arg(long)]
    pub score: Option<PathBuf>,
    /// Append the measurement to this calibration file (JSON lines `score.calibration` reads).
    #[arg(long, requires = "score")]
    pub calibration: Option<PathBuf>,
}

pub fn sweep_fit_cmd(args: SweepFitArgs) -> Result<serde_json::Value> {
    if args.resamples == 0 {
        anyhow::bail!(UsageError(
            "--resamples must be at least 1 (SCALING.md: 1000 or more)".into()
        ));
    }
    let (points, size) = read_points(&args.points)?;
    let threads = crate::threads_or_all(args.threads);
    let mut f = fit_points(&points, size, args.resamples, args.seed, threads)?;
    if let Some(score) = &args.score {
        let mut c = check(&f, score)?;
        if let Some(cal) = &args.calibration {
            append_record(cal, &c.record)?;
            c.recorded_in = Some(cal.clone());
        }
        f.check = Some(c);
    }
    eprint!("{}", table(&f));
    if let Some(out) = &args.out {
        crate::config::write_creating(out, &serde_json::to_vec_pretty(&f)?)?;
    }
    Ok(serde_json::to_value(&f)?)
}
