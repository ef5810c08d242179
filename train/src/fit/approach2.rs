//! Approach 2: per IsoFLOP budget a parabola of loss in ln(size) and its vertex, then OLS of
//! ln size_opt and ln D_opt on ln C.
use serde::{Deserialize, Serialize};

use super::{slices, FitError, Point};

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
