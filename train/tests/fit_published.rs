//! The fits against published points (../shared/data/scaling, not redistributed: each test
//! skips with a message when the file is absent) and bootstrap coverage on synthetic laws.
use loam_train::fit::{
    approach2, approach3, bootstrap, start_grid, synthetic, BootstrapConfig, Law, Objective, Point, Tolerances,
};
use std::path::PathBuf;

fn data(name: &str) -> Option<String> {
    // ../shared/data beside the checkout, or $LOAM_SHARED_DATA (as the root package's tests).
    let shared = std::env::var_os("LOAM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let p = shared.join("scaling").join(name);
    match std::fs::read_to_string(&p) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!(
                "skipped: {} ({e}); the published points live in ../shared/data/scaling",
                p.display()
            );
            None
        }
    }
}

/// Rows of a plain CSV (no quoted commas in these files) as header → value.
fn rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap_or_default().split(',').map(str::to_owned).collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| header.iter().cloned().zip(l.split(',').map(str::to_owned)).collect())
        .collect()
}

fn num(r: &std::collections::HashMap<String, String>, k: &str) -> f64 {
    r.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// Epoch's procedure: D = C/(6N), the 5 highest losses dropped (240 points).
fn epoch_points() -> Option<Vec<Point>> {
    let mut pts: Vec<Point> = rows(&data("epoch-chinchilla-svg-extracted.csv")?)
        .iter()
        .map(|r| {
            let (n, c) = (num(r, "Model Size"), num(r, "Training FLOP"));
            Point {
                budget: c,
                compute: c,
                size: n,
                tokens: c / (6.0 * n),
                loss: num(r, "loss"),
            }
        })
        .collect();
    pts.sort_by(|a, b| a.loss.total_cmp(&b.loss));
    pts.truncate(pts.len() - 5);
    Some(pts)
}

#[test]
fn approach3_reaches_epochs_optimum_on_the_chinchilla_points() {
    let Some(pts) = epoch_points() else { return };
    assert_eq!(pts.len(), 240);
    let f = approach3(&pts, 1e-3, &start_grid(), Tolerances::default(), 2).expect("fit");
    assert_eq!(f.starts, 4500);
    assert!(
        (f.objective - 1.0182740e-3).abs() < 1e-9,
        "objective {:.10e}",
        f.objective
    );
    let l = f.law;
    assert!((l.e - 1.81724).abs() < 1e-4, "{l:?}");
    assert!((l.alpha - 0.347313).abs() < 1e-4, "{l:?}");
    assert!((l.beta - 0.367183).abs() < 1e-4, "{l:?}");
    // A and B are weakly determined (Epoch: 477.84, 2143.86): loosely.
    assert!(
        (l.a / 477.84 - 1.0).abs() < 0.05 && (l.b / 2143.86 - 1.0).abs() < 0.1,
        "{l:?}"
    );
    assert!((f.a - 0.5139).abs() < 1e-3, "a = {}", f.a);
}

#[test]
fn objective_at_hoffmanns_rounded_constants() {
    let Some(pts) = epoch_points() else { return };
    let h = Law {
        a: 406.4,
        b: 410.7,
        e: 1.69,
        alpha: 0.34,
        beta: 0.28,
    };
    let v = Objective::new(&pts, 1e-3).eval(&h.theta(), None);
    assert!((v - 4.121009e-3).abs() < 1e-9, "{v:.9e}");
}

/// Chinchilla's error: the mean of the Huber terms is 240× smaller than the sum, so
/// SciPy's tolerances (absolute below an objective of 1) stop L-BFGS almost at once; the
/// sum under the same tolerances reaches the optimum.
#[test]
fn the_mean_huber_objective_stops_early() {
    let Some(pts) = epoch_points() else { return };
    let starts: Vec<_> = start_grid().into_iter().step_by(9).collect();
    let sum = approach3(&pts, 1e-3, &starts, Tolerances::SCIPY, 2).expect("sum");
    let obj_mean = Objective::new(&pts, 1e-3).mean();
    let runs: Vec<_> = starts
        .iter()
        .map(|s| loam_train::fit::minimise(&obj_mean, *s, Tolerances::SCIPY))
        .collect();
    let best_mean = runs
        .iter()
        .min_by(|a, b| a.objective.total_cmp(&b.objective))
        .expect("runs");
    let as_sum = Objective::new(&pts, 1e-3).eval(&best_mean.theta, None);
    eprintln!(
        "sum: {:.10e} ({} iters); mean, rescaled: {:.10e} ({} iters)",
        sum.objective, sum.iters, as_sum, best_mean.iters
    );
    assert!(
        (sum.objective - 1.0182740e-3).abs() < 1e-8,
        "the sum converges: {:.10e}",
        sum.objective
    );
    assert!(as_sum > 1.0182740e-3 * 1.05, "the mean stopped early: {as_sum:.10e}");
}

#[test]
fn approach2_on_chinchillas_figure_4() {
    let Some(text) = data("chinchilla-isoflop-fig4.csv") else {
        return;
    };
    let pts: Vec<Point> = rows(&text)
        .iter()
        .map(|r| {
            let c = num(r, "compute_flops");
            Point {
                budget: c,
                compute: c,
                size: num(r, "n_params"),
                tokens: num(r, "n_tokens"),
                loss: num(r, "loss"),
            }
        })
        .collect();
    assert_eq!(pts.len(), 114);
    let f = approach2(&pts).expect("fit");
    assert_eq!(f.slices.len(), 9);
    assert!(
        f.slices.iter().all(|s| s.refused.is_none()),
        "all 9 minima are interior"
    );
    assert!((f.size.exponent - 0.4813).abs() < 1e-3, "a = {}", f.size.exponent);
    assert!(f.size.se_exponent.is_some_and(|s| s > 0.0 && s < 0.05));
}

/// Percentile intervals of the bootstrap cover the true exponent on most synthetic
/// replicates (the nominal level is 95%).
#[test]
fn bootstrap_intervals_cover_the_truth() {
    let truth = Law {
        e: 1.8,
        a: 400.0,
        b: 2000.0,
        alpha: 0.34,
        beta: 0.37,
    };
    let budgets: Vec<f64> = (0..5).map(|i| 1e12 * 10f64.powf(i as f64 / 3.0)).collect();
    let a_true = truth.size_exponent();
    let (mut cover2, mut cover3, replicates) = (0, 0, 100);
    for r in 0..replicates {
        let pts = synthetic(&truth, &budgets, 7, 16.0, 0.01, 1000 + r);
        let f3 = approach3(&pts, 1e-3, &[truth.theta()], Tolerances::default(), 1).expect("fit");
        let cfg = BootstrapConfig {
            resamples: 1000,
            seed: r,
            ..BootstrapConfig::default()
        };
        let b = bootstrap(&pts, Some(&f3), Tolerances::default(), cfg, 2);
        cover2 += usize::from(b.a2.is_some_and(|i| i.lo <= a_true && a_true <= i.hi));
        cover3 += usize::from(b.a3.is_some_and(|i| i.lo <= a_true && a_true <= i.hi));
    }
    eprintln!("coverage of a = {a_true:.4}: approach 2 {cover2}/{replicates}, approach 3 {cover3}/{replicates}");
    assert!(cover2 >= 90, "approach 2 covered {cover2}/{replicates}");
    assert!(cover3 >= 90, "approach 3 covered {cover3}/{replicates}");
}
