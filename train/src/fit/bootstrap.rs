//! The bootstrap of both approaches: runs resampled within each budget, seeded per resample.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{approach2, minimise, slices, Approach3, Law, Objective, Point, Run, Tolerances};

/// A percentile interval and the resamples behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub median: f64,
    pub hi: f64,
    pub level: f64,
    pub resamples: usize,
}

/// NumPy's default (linear) percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + f * (sorted[j] - sorted[i])
}

pub(super) fn interval(mut v: Vec<f64>, level: f64) -> Option<Interval> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let t = (1.0 - level) / 2.0;
    Some(Interval {
        lo: percentile(&v, t),
        median: percentile(&v, 0.5),
        hi: percentile(&v, 1.0 - t),
        level,
        resamples: v.len(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    pub resamples: usize,
    pub seed: u64,
    pub level: f64,
    /// Also refit approach 3 (warm-started from the full fit) in every resample.
    pub approach3: bool,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 1000,
            seed: 0,
            level: 0.95,
            approach3: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub config: BootstrapConfig,
    /// Approach 2's size and token exponents.
    pub a2: Option<Interval>,
    pub b2: Option<Interval>,
    /// Resamples where approach 2 had fewer than two usable budgets.
    pub a2_failed: usize,
    pub a3: Option<Interval>,
    pub e: Option<Interval>,
    pub alpha: Option<Interval>,
    pub beta: Option<Interval>,
    /// Approach-3 resamples whose L-BFGS did not converge (kept: the best point reached).
    pub a3_not_converged: usize,
}

/// Resamples runs with replacement within each budget (each budget keeps its run count),
/// refits, and reports percentile intervals. Resample r draws from ChaCha8(seed, stream r),
/// so the result does not depend on `threads`.
pub fn bootstrap(
    points: &[Point],
    full3: Option<&Approach3>,
    tol: Tolerances,
    cfg: BootstrapConfig,
    threads: usize,
) -> Bootstrap {
    let groups = slices(points);
    // One resample: approach 2's (size, token) exponents and approach 3's run.
    type Resample = (Option<(f64, f64)>, Option<Run>);
    let one = |r: usize| -> Resample {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(r as u64);
        let mut sample = Vec::with_capacity(points.len());
        for (_, idx) in &groups {
            for _ in 0..idx.len() {
                sample.push(points[idx[rng.random_range(0..idx.len())]]);
            }
        }
        let a2 = approach2(&sample).ok().map(|f| (f.size.exponent, f.tokens.exponent));
        let a3 = full3
            .filter(|_| cfg.approach3)
            .map(|f| minimise(&Objective::new(&sample, f.delta), f.theta, tol));
        (a2, a3)
    };
    let ids: Vec<usize> = (0..cfg.resamples).collect();
    let threads = threads.max(1);
    let results: Vec<Resample> = if threads == 1 {
        ids.iter().map(|&r| one(r)).collect()
    } else {
        let chunk = ids.len().div_ceil(threads).max(1);
        std::thread::scope(|sc| {
            let one = &one;
            let hs: Vec<_> = ids
                .chunks(chunk)
                .map(|c| sc.spawn(move || c.iter().map(|&r| one(r)).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        })
    };
    let a2: Vec<(f64, f64)> = results.iter().filter_map(|r| r.0).collect();
    let runs: Vec<Run> = results.iter().filter_map(|r| r.1).collect();
    let laws: Vec<Law> = runs.iter().map(|r| Law::from_theta(&r.theta)).collect();
    let level = cfg.level;
    Bootstrap {
        config: cfg,
        a2: interval(a2.iter().map(|x| x.0).collect(), level),
        b2: interval(a2.iter().map(|x| x.1).collect(), level),
        a2_failed: cfg.resamples - a2.len(),
        a3: interval(laws.iter().map(Law::size_exponent).collect(), level),
        e: interval(laws.iter().map(|l| l.e).collect(), level),
        alpha: interval(laws.iter().map(|l| l.alpha).collect(), level),
        beta: interval(laws.iter().map(|l| l.beta).collect(), level),
        a3_not_converged: runs.iter().filter(|r| !r.converged).count(),
    }
}
