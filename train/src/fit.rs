//! Scaling-law fits (SCALING.md §4) on points (budget, size, tokens, loss):
//! - approach 2: per IsoFLOP budget a parabola of loss in ln(size), its vertex, then OLS of
//!   ln size_opt and ln D_opt on ln C;
//! - approach 3: L = E + A/size^α + B/D^β fitted as LSE(a − α ln size, b − β ln D, e) against
//!   ln L by the *sum* of Huber(δ) terms, L-BFGS (argmin) from a grid of starts;
//! - a bootstrap of both, resampling runs within each budget.
//!
//! "Size" is M (non-embedding FLOPs per token) in loam's sweeps, so C = M·D and the fitted
//! exponent is DeepSeek's a; points from elsewhere may use N (parameters), C = 6ND, and the
//! exponents are then Chinchilla's. The fits do not care which; the report says.
use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason, TerminationStatus};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("{0}")]
    Points(String),
}

/// One training run's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The IsoFLOP budget the run belongs to (nominal C; groups the slice).
    pub budget: f64,
    /// What the run actually spent (C = size·D after rounding steps, or 6ND).
    pub compute: f64,
    pub size: f64,
    pub tokens: f64,
    pub loss: f64,
}

impl Point {
    fn check(&self, i: usize) -> Result<(), FitError> {
        for (name, v) in [
            ("budget", self.budget),
            ("compute", self.compute),
            ("size", self.size),
            ("tokens", self.tokens),
            ("loss", self.loss),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(FitError::Points(format!(
                    "point {i}: {name} = {v}, must be a positive number"
                )));
            }
        }
        Ok(())
    }
}

/// The points grouped by budget, budgets ascending, points in input order.
fn slices(points: &[Point]) -> Vec<(f64, Vec<usize>)> {
    let mut out: Vec<(f64, Vec<usize>)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        // Budgets equal to 1e-9 relative are one slice (labels parsed from text drift).
        match out.iter_mut().find(|(b, _)| ((b - p.budget) / b).abs() < 1e-9) {
            Some((_, v)) => v.push(i),
            None => out.push((p.budget, vec![i])),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

// ---------------------------------------------------------------------------------------
// Approach 2
// ---------------------------------------------------------------------------------------

/// One budget's IsoFLOP slice: loss ≈ c0 + c1·u + c2·u², u = ln(size) − centre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub budget: f64,
    pub points: usize,
    pub size_range: [f64; 2],
    pub centre: f64,
    pub coef: [f64; 3],
    /// Vertex: size_opt, D_opt = C/(k·size_opt) with k = C/(size·D) of the slice's runs (1 for
    /// M, 6 for N), and the loss there.
    pub size_opt: Option<f64>,
    pub tokens_opt: Option<f64>,
    pub loss_opt: Option<f64>,
    /// Why the slice is not used, if it is not.
    pub refused: Option<String>,
}

/// OLS of ln y on ln C: y = exp(intercept)·C^exponent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    pub exponent: f64,
    pub intercept: f64,
    /// Standard errors (None with two budgets: no residual degree of freedom).
    pub se_exponent: Option<f64>,
    pub se_intercept: Option<f64>,
    pub budgets: usize,
}

impl PowerLaw {
    pub fn coefficient(&self) -> f64 {
        self.intercept.exp()
    }
    pub fn at(&self, c: f64) -> f64 {
        (self.intercept + self.exponent * c.ln()).exp()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approach2 {
    pub slices: Vec<Slice>,
    /// size_opt ∝ C^a and D_opt ∝ C^b over the accepted slices.
    pub size: PowerLaw,
    pub tokens: PowerLaw,
}

/// Least squares of y on (1, u, u²) by the 3×3 normal equations (u centred: well conditioned).
fn quadratic(u: &[f64], y: &[f64]) -> Option<[f64; 3]> {
    let mut m = [[0.0f64; 4]; 3];
    for (&x, &v) in u.iter().zip(y) {
        let row = [1.0, x, x * x];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += row[i] * row[j];
            }
            m[i][3] += row[i] * v;
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..3 {
        let piv = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[piv][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, piv);
        let pivot_row = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (v, p) in row.iter_mut().zip(pivot_row).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    let c = [m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]];
    c.iter().all(|v| v.is_finite()).then_some(c)
}

fn fit_slice(budget: f64, pts: &[Point]) -> Slice {
    let lx: Vec<f64> = pts.iter().map(|p| p.size.ln()).collect();
    let (lo, hi) = lx
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let centre = lx.iter().sum::<f64>() / lx.len() as f64;
    let mut s = Slice {
        budget,
        points: pts.len(),
        size_range: [lo.exp(), hi.exp()],
        centre,
        coef: [f64::NAN; 3],
        size_opt: None,
        tokens_opt: None,
        loss_opt: None,
        refused: None,
    };
    let mut distinct = lx.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    if distinct.len() < 3 {
        s.refused = Some(format!("{} distinct sizes; a parabola needs 3", distinct.len()));
        return s;
    }
    let u: Vec<f64> = lx.iter().map(|x| x - centre).collect();
    let y: Vec<f64> = pts.iter().map(|p| p.loss).collect();
    let Some(c) = quadratic(&u, &y) else {
        s.refused = Some("the parabola's normal equations are singular".into());
        return s;
    };
    s.coef = c;
    if c[2] <= 0.0 {
        s.refused = Some(format!(
            "curvature {:.3e} ≤ 0: loss is not convex in ln(size) here",
            c[2]
        ));
        return s;
    }
    let v = centre - c[1] / (2.0 * c[2]);
    if !(lo..=hi).contains(&v) {
        s.refused = Some(format!(
            "vertex at size {:.3e} lies outside the sampled {:.3e}–{:.3e}: widen the grid or move its centre",
            v.exp(),
            lo.exp(),
            hi.exp()
        ));
        return s;
    }
    let k = median(pts.iter().map(|p| p.compute / (p.size * p.tokens)).collect());
    let uv = v - centre;
    s.size_opt = Some(v.exp());
    s.tokens_opt = Some(budget / (k * v.exp()));
    s.loss_opt = Some(c[0] + c[1] * uv + c[2] * uv * uv);
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn ols(x: &[f64], y: &[f64]) -> PowerLaw {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let (se_exponent, se_intercept) = if x.len() > 2 {
        let ssr: f64 = x.iter().zip(y).map(|(a, b)| (b - intercept - slope * a).powi(2)).sum();
        let s2 = ssr / (n - 2.0);
        (Some((s2 / sxx).sqrt()), Some((s2 * (1.0 / n + mx * mx / sxx)).sqrt()))
    } else {
        (None, None)
    };
    PowerLaw {
        exponent: slope,
        intercept,
        se_exponent,
        se_intercept,
        budgets: x.len(),
    }
}

/// Approach 2 on all points. Refused slices are reported in `slices`, not used; fewer than
/// two accepted slices is an error naming why each was refused.
pub fn approach2(points: &[Point]) -> Result<Approach2, FitError> {
    for (i, p) in points.iter().enumerate() {
        p.check(i)?;
    }
    let slices: Vec<Slice> = slices(points)
        .into_iter()
        .map(|(b, idx)| fit_slice(b, &idx.iter().map(|&i| points[i]).collect::<Vec<_>>()))
        .collect();
    let ok: Vec<&Slice> = slices.iter().filter(|s| s.refused.is_none()).collect();
    if ok.len() < 2 {
        let why: Vec<String> = slices
            .iter()
            .filter_map(|s| s.refused.as_ref().map(|r| format!("C = {:.3e}: {r}", s.budget)))
            .collect();
        return Err(FitError::Points(format!(
            "approach 2 needs at least 2 budgets with an interior, convex minimum; {} of {} qualify{}",
            ok.len(),
            slices.len(),
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        )));
    }
    let lc: Vec<f64> = ok.iter().map(|s| s.budget.ln()).collect();
    let ls: Vec<f64> = ok.iter().filter_map(|s| s.size_opt.map(f64::ln)).collect();
    let ld: Vec<f64> = ok.iter().filter_map(|s| s.tokens_opt.map(f64::ln)).collect();
    Ok(Approach2 {
        size: ols(&lc, &ls),
        tokens: ols(&lc, &ld),
        slices,
    })
}

// ---------------------------------------------------------------------------------------
// Approach 3
// ---------------------------------------------------------------------------------------

/// θ = (a, b, e, α, β): L = exp(e) + exp(a)/size^α + exp(b)/D^β.
pub type Theta = [f64; 5];

/// The fitted parametric law.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Law {
    pub e: f64,
    pub a: f64,
    pub b: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl Law {
    pub fn from_theta(t: &Theta) -> Self {
        Self {
            a: t[0].exp(),
            b: t[1].exp(),
            e: t[2].exp(),
            alpha: t[3],
            beta: t[4],
        }
    }
    pub fn theta(&self) -> Theta {
        [self.a.ln(), self.b.ln(), self.e.ln(), self.alpha, self.beta]
    }
    pub fn loss(&self, size: f64, tokens: f64) -> f64 {
        self.e + self.a / size.powf(self.alpha) + self.b / tokens.powf(self.beta)
    }
    /// size_opt ∝ C^(β/(α+β)) when C ∝ size·D.
    pub fn size_exponent(&self) -> f64 {
        self.beta / (self.alpha + self.beta)
    }
}

/// The summed (or, to show Chinchilla's error, averaged) Huber objective on log loss.
#[derive(Debug, Clone)]
pub struct Objective {
    ln_size: Vec<f64>,
    ln_tokens: Vec<f64>,
    ln_loss: Vec<f64>,
    pub delta: f64,
    /// 1 for the sum; 1/n for the mean.
    pub scale: f64,
}

impl Objective {
    pub fn new(points: &[Point], delta: f64) -> Self {
        Self {
            ln_size: points.iter().map(|p| p.size.ln()).collect(),
            ln_tokens: points.iter().map(|p| p.tokens.ln()).collect(),
            ln_loss: points.iter().map(|p| p.loss.ln()).collect(),
            delta,
            scale: 1.0,
        }
    }
    /// The mean instead of the sum (what Hoffmann et al. minimised).
    pub fn mean(mut self) -> Self {
        self.scale = 1.0 / self.ln_loss.len().max(1) as f64;
        self
    }

    /// The objective and, when `grad` is given, its gradient in θ.
    pub fn eval(&self, t: &Theta, mut grad: Option<&mut [f64; 5]>) -> f64 {
        let [a, b, e, alpha, beta] = *t;
        if let Some(g) = grad.as_deref_mut() {
            *g = [0.0; 5];
        }
        let mut total = 0.0;
        for i in 0..self.ln_loss.len() {
            let (x, y) = (self.ln_size[i], self.ln_tokens[i]);
            let u = [a - alpha * x, b - beta * y, e];
            let m = u[0].max(u[1]).max(u[2]);
            let w = [(u[0] - m).exp(), (u[1] - m).exp(), (u[2] - m).exp()];
            let s = w[0] + w[1] + w[2];
            let r = m + s.ln() - self.ln_loss[i];
            let d = self.delta;
            total += if r.abs() <= d {
                0.5 * r * r
            } else {
                d * (r.abs() - 0.5 * d)
            };
            if let Some(g) = grad.as_deref_mut() {
                // dHuber/dr = clamp(r, −δ, δ); dLSE/du_k = softmax weight w_k / s.
                let h = r.clamp(-d, d) * self.scale;
                let (p0, p1, p2) = (w[0] / s, w[1] / s, w[2] / s);
                g[0] += h * p0;
                g[1] += h * p1;
                g[2] += h * p2;
                g[3] -= h * p0 * x;
                g[4] -= h * p1 * y;
            }
        }
        total * self.scale
    }
}

impl CostFunction for Objective {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.eval(&theta_of(p), None))
    }
}

impl Gradient for Objective {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        let mut g = [0.0; 5];
        self.eval(&theta_of(p), Some(&mut g));
        Ok(g.to_vec())
    }
}

fn theta_of(p: &[f64]) -> Theta {
    let mut t = [0.0; 5];
    for (d, s) in t.iter_mut().zip(p) {
        *d = *s;
    }
    t
}

/// L-BFGS stopping rules. argmin's are absolute (a change in cost below `cost`, a gradient
/// norm below `grad`), so they must sit far below the objective's scale: the summed Huber of
/// 240 points at δ = 1e-3 is ~1e-3, the mean ~4e-6.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    pub grad: f64,
    pub cost: f64,
    pub max_iters: u64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            grad: 1e-11,
            cost: 1e-16,
            max_iters: 2000,
        }
    }
}

impl Tolerances {
    /// SciPy's L-BFGS-B defaults (gtol 1e-5; ftol 2.2e-9 relative to max(|f|, 1), i.e.
    /// absolute below 1) as argmin reads them: what Hoffmann et al. and Epoch ran with.
    pub const SCIPY: Self = Self {
        grad: 1e-5,
        cost: 2.220446049250313e-9,
        max_iters: 15000,
    };
}

/// One L-BFGS run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub start: Theta,
    pub theta: Theta,
    pub objective: f64,
    pub iters: u64,
    /// Stopped by a tolerance (not by an error or the iteration cap).
    pub converged: bool,
}

/// Minimises `obj` from `start`. A line-search failure keeps the best point reached and is
/// reported as not converged.
pub fn minimise(obj: &Objective, start: Theta, tol: Tolerances) -> Run {
    let fallback = Run {
        start,
        theta: start,
        objective: obj.eval(&start, None),
        iters: 0,
        converged: false,
    };
    let Ok(solver) = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(tol.grad)
        .and_then(|s| s.with_tolerance_cost(tol.cost))
    else {
        return fallback;
    };
    let res = Executor::new(obj.clone(), solver)
        .configure(|s| s.param(start.to_vec()).max_iters(tol.max_iters))
        .run();
    match res {
        Ok(r) => {
            let st = r.state();
            let theta = st.get_best_param().map(|p| theta_of(p)).unwrap_or(start);
            let objective = obj.eval(&theta, None);
            let converged = matches!(
                st.get_termination_status(),
                TerminationStatus::Terminated(
                    TerminationReason::SolverConverged | TerminationReason::TargetCostReached
                )
            );
            if objective.is_finite() && objective <= fallback.objective {
                Run {
                    start,
                    theta,
                    objective,
                    iters: st.get_iter(),
                    converged,
                }
            } else {
                fallback
            }
        }
        Err(_) => fallback,
    }
}

/// SCALING.md's grid of starts: α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈
/// {0, 5, …, 25}: 4,500 points.
pub fn start_grid() -> Vec<Theta> {
    let steps = |lo: f64, hi: f64, step: f64| -> Vec<f64> {
        let n = ((hi - lo) / step).round() as usize;
        (0..=n).map(|i| lo + step * i as f64).collect()
    };
    let mut out = Vec::new();
    for &al in &steps(0.0, 2.0, 0.5) {
        for &be in &steps(0.0, 2.0, 0.5) {
            for &e in &steps(-1.0, 1.0, 0.5) {
                for &a in &steps(0.0, 25.0, 5.0) {
                    for &b in &steps(0.0, 25.0, 5.0) {
                        out.push([a, b, e, al, be]);
                    }
                }
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approach3 {
    pub law: Law,
    pub theta: Theta,
    pub objective: f64,
    pub delta: f64,
    /// size_opt ∝ C^a with a = β/(α+β); D_opt ∝ C^(1−a).
    pub a: f64,
    pub starts: usize,
    pub converged_starts: usize,
    /// The best run's own convergence.
    pub converged: bool,
    pub iters: u64,
}

/// Approach 3 from every start (run over `threads`); the lowest objective wins, ties to the
/// earlier start, so the answer does not depend on the thread count.
pub fn approach3(
    points: &[Point],
    delta: f64,
    starts: &[Theta],
    tol: Tolerances,
    threads: usize,
) -> Result<Approach3, FitError> {
    for (i, p) in points.iter().enumerate() {
        p.check(i)?;
    }
    if points.len() < 5 {
        return Err(FitError::Points(format!(
            "approach 3 fits 5 parameters: needs at least 5 points, got {}",
            points.len()
        )));
    }
    let obj = Objective::new(points, delta);
    let runs = par_runs(&obj, starts, tol, threads.max(1));
    let best = runs
        .iter()
        .enumerate()
        .min_by(|(i, a), (j, b)| a.objective.total_cmp(&b.objective).then(i.cmp(j)))
        .map(|(_, r)| *r)
        .ok_or_else(|| FitError::Points("approach 3 needs at least one start".into()))?;
    let law = Law::from_theta(&best.theta);
    Ok(Approach3 {
        a: law.size_exponent(),
        law,
        theta: best.theta,
        objective: best.objective,
        delta,
        starts: starts.len(),
        converged_starts: runs.iter().filter(|r| r.converged).count(),
        converged: best.converged,
        iters: best.iters,
    })
}

fn par_runs(obj: &Objective, starts: &[Theta], tol: Tolerances, threads: usize) -> Vec<Run> {
    if threads == 1 || starts.len() < 2 {
        return starts.iter().map(|s| minimise(obj, *s, tol)).collect();
    }
    let chunk = starts.len().div_ceil(threads);
    std::thread::scope(|sc| {
        let handles: Vec<_> = starts
            .chunks(chunk)
            .map(|c| sc.spawn(move || c.iter().map(|s| minimise(obj, *s, tol)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

// ---------------------------------------------------------------------------------------
// Bootstrap
// ---------------------------------------------------------------------------------------

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

fn interval(mut v: Vec<f64>, level: f64) -> Option<Interval> {
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

// ---------------------------------------------------------------------------------------
// Synthetic laws (tests and benchmarks)
// ---------------------------------------------------------------------------------------

/// An IsoFLOP grid from a known law: for each budget, `per_budget` sizes spaced evenly in
/// ln over ×`span` centred on the law's own optimum, D = C/size, loss from the law times
/// exp(noise·N(0,1)) (seeded; noise 0 gives the exact law).
pub fn synthetic(law: &Law, budgets: &[f64], per_budget: usize, span: f64, noise: f64, seed: u64) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    // The exact optimum of E + A M^−α + B (C/M)^−β in M: αA M^−α = βB (C/M)^−β.
    let g = (law.alpha * law.a / (law.beta * law.b)).ln();
    for &c in budgets {
        let ln_opt = (g + law.beta * c.ln()) / (law.alpha + law.beta);
        for k in 0..per_budget {
            let f = if per_budget > 1 {
                k as f64 / (per_budget - 1) as f64 - 0.5
            } else {
                0.0
            };
            let size = (ln_opt + f * span.ln()).exp();
            let tokens = c / size;
            // Box–Muller from two uniforms.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            out.push(Point {
                budget: c,
                compute: c,
                size,
                tokens,
                loss: law.loss(size, tokens) * (noise * z).exp(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUE: Law = Law {
        e: 1.8,
        a: 400.0,
        b: 2000.0,
        alpha: 0.34,
        beta: 0.37,
    };

    fn budgets() -> Vec<f64> {
        (0..7).map(|i| 1e12 * 10f64.powf(i as f64 / 3.0)).collect()
    }

    #[test]
    fn gradient_matches_central_differences() {
        let pts = synthetic(&TRUE, &budgets(), 7, 16.0, 0.01, 3);
        for obj in [
            Objective::new(&pts, 1e-3),
            Objective::new(&pts, 1e-1),
            Objective::new(&pts, 1e-3).mean(),
        ] {
            for t in [[6.0, 7.5, 0.6, 0.35, 0.36], [3.0, 12.0, -0.5, 0.1, 0.9], TRUE.theta()] {
                let mut g = [0.0; 5];
                obj.eval(&t, Some(&mut g));
                for k in 0..5 {
                    let h = 1e-6;
                    let (mut up, mut dn) = (t, t);
                    up[k] += h;
                    dn[k] -= h;
                    let fd = (obj.eval(&up, None) - obj.eval(&dn, None)) / (2.0 * h);
                    let tol = 1e-6 * fd.abs().max(g[k].abs()).max(1e-9);
                    assert!(
                        (fd - g[k]).abs() <= tol.max(1e-10),
                        "θ {t:?} ∂{k}: analytic {} vs {fd}",
                        g[k]
                    );
                }
            }
        }
    }

    #[test]
    fn noise_free_law_is_recovered_exactly_by_both_approaches() {
        let pts = synthetic(&TRUE, &budgets(), 7, 16.0, 0.0, 0);
        let a_true = TRUE.size_exponent();
        let f2 = approach2(&pts).expect("approach 2");
        assert!(f2.slices.iter().all(|s| s.refused.is_none()));
        assert!(
            (f2.size.exponent - a_true).abs() < 1e-9,
            "{} vs {a_true}",
            f2.size.exponent
        );
        assert!((f2.tokens.exponent - (1.0 - a_true)).abs() < 1e-9);
        // A few grid starts suffice on exact data; the full grid is exercised on Epoch's points.
        let starts: Vec<Theta> = start_grid().into_iter().step_by(97).collect();
        let f3 = approach3(&pts, 1e-3, &starts, Tolerances::default(), 2).expect("approach 3");
        assert!(f3.objective < 1e-16, "objective {}", f3.objective);
        assert!((f3.a - a_true).abs() < 1e-6, "{} vs {a_true}", f3.a);
        assert!(
            (f3.law.e - TRUE.e).abs() < 1e-4 && (f3.law.alpha - TRUE.alpha).abs() < 1e-4,
            "{:?}",
            f3.law
        );
    }

    #[test]
    fn noisy_law_is_recovered_within_a_hundredth() {
        let a_true = TRUE.size_exponent();
        for seed in 0..5 {
            let pts = synthetic(&TRUE, &budgets(), 7, 16.0, 0.005, seed);
            let f2 = approach2(&pts).expect("approach 2");
            assert!(
                (f2.size.exponent - a_true).abs() < 0.01,
                "seed {seed}: approach 2 a = {}",
                f2.size.exponent
            );
            let f3 = approach3(
                &pts,
                1e-3,
                &[TRUE.theta(), [5.0, 5.0, 0.5, 0.5, 0.5]],
                Tolerances::default(),
                1,
            )
            .expect("approach 3");
            assert!((f3.a - a_true).abs() < 0.01, "seed {seed}: approach 3 a = {}", f3.a);
        }
    }

    #[test]
    fn slices_without_an_interior_convex_minimum_are_refused_and_named() {
        let mut pts = synthetic(&TRUE, &budgets()[..3], 5, 16.0, 0.0, 0);
        // Shift the first budget's sizes far to the right of its optimum: vertex outside.
        for p in pts.iter_mut().take(5) {
            p.size *= 100.0;
            p.tokens = p.compute / p.size;
            p.loss = TRUE.loss(p.size, p.tokens);
        }
        let f = approach2(&pts).expect("two budgets remain");
        assert!(
            f.slices[0].refused.as_deref().is_some_and(|r| r.contains("outside")),
            "{:?}",
            f.slices[0]
        );
        assert_eq!(f.size.budgets, 2);
        assert!(
            f.size.se_exponent.is_none(),
            "two budgets leave no residual degree of freedom"
        );
        // Concave losses: refused for curvature.
        let mut conc = synthetic(&TRUE, &budgets()[..2], 5, 16.0, 0.0, 0);
        for p in &mut conc {
            p.loss = 100.0 - p.loss;
        }
        let err = approach2(&conc).expect_err("no convex slice").to_string();
        assert!(err.contains("curvature") && err.contains("0 of 2"), "{err}");
        let bad = [Point {
            budget: 1e12,
            compute: 1e12,
            size: -1.0,
            tokens: 1.0,
            loss: 1.0,
        }];
        assert!(approach2(&bad).expect_err("negative").to_string().contains("size"));
    }

    #[test]
    fn bootstrap_is_seeded_and_independent_of_threads() {
        let pts = synthetic(&TRUE, &budgets()[..4], 5, 16.0, 0.01, 1);
        let f3 = approach3(&pts, 1e-3, &[TRUE.theta()], Tolerances::default(), 1).expect("fit");
        let cfg = BootstrapConfig {
            resamples: 40,
            seed: 7,
            ..BootstrapConfig::default()
        };
        let one = bootstrap(&pts, Some(&f3), Tolerances::default(), cfg, 1);
        let two = bootstrap(&pts, Some(&f3), Tolerances::default(), cfg, 2);
        assert_eq!(one, two);
        let other = bootstrap(
            &pts,
            Some(&f3),
            Tolerances::default(),
            BootstrapConfig { seed: 8, ..cfg },
            2,
        );
        assert_ne!(one.a2, other.a2);
        let a2 = one.a2.expect("interval");
        assert!(a2.lo <= a2.median && a2.median <= a2.hi && a2.resamples + one.a2_failed == 40);
    }

    #[test]
    fn percentiles_match_numpy() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // numpy.percentile(range(1, 11), [2.5, 50, 97.5]) = [1.225, 5.5, 9.775]
        let i = interval(v, 0.95).expect("interval");
        assert!((i.lo - 1.225).abs() < 1e-12 && (i.median - 5.5).abs() < 1e-12 && (i.hi - 9.775).abs() < 1e-12);
    }
}
