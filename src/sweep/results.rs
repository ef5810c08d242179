//! `sweep fit` on a sweep's runs: the outlier rule, both fits with the bootstrap, the check
//! of the score's prediction and the calibration record (`sweep/fit.json`, `points.csv`).
use anyhow::Result;
use loam_train::fit::Point;
use serde::{Deserialize, Serialize};

use super::plan::{read_plan, sweep_dir, usage, Centre};
use super::runner::read_outcome;
use super::{FitFile, SizeKind};
use crate::config::Resolved;

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
                r.grid.slot
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
            slot: r.grid.slot,
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
    let source =
        serde_json::json!({"sweep": fingerprint, "run_dir": run_dir, "points": f.points, "budgets": f.budgets});
    let mut c = super::check(&f, &plan.score_file, Some(&plan.design), Some(source))?;
    if let (Some(cal), Some(r)) = (&sw.calibration, &c.record) {
        super::append_record(cal, r, Some(&fingerprint))?;
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
