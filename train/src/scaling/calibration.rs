//! The design a sweep's exponent belongs to, its calibration records, and the exponent line
//! they update (SCALING.md §4).
use serde::{Deserialize, Serialize};

use super::ExponentLine;

/// What makes two sweeps' exponents comparable: only records of one design are pooled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Design {
    pub seq_len: usize,
    pub vocab_size: usize,
    /// How M is counted (`72nd^2+12ndl`).
    pub m_definition: String,
    /// The learning-rate schedule (`multistep-0.8x0.316-0.9x0.1`).
    pub schedule: String,
}

impl Design {
    pub const M_DEFINITION: &'static str = "72nd^2+12ndl";
    pub const SCHEDULE: &'static str = "multistep-0.8x0.316-0.9x0.1";

    /// loam's design at a context length and vocabulary.
    pub fn loam(seq_len: usize, vocab_size: usize) -> Self {
        Self {
            seq_len,
            vocab_size,
            m_definition: Self::M_DEFINITION.into(),
            schedule: Self::SCHEDULE.into(),
        }
    }

    /// A short stable hash of the design (hex xxh3-64 of its canonical JSON).
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(json.as_bytes()))
    }
}

/// One line of a calibration file (JSON lines, written by `loam sweep`): a measured
/// exponent â ± s on a corpus of score q, under `design`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRecord {
    pub schema: String,
    pub q: f64,
    pub a_hat: f64,
    pub s: f64,
    pub design: Design,
    pub design_hash: String,
    /// Free-form provenance (the sweep's run directory, date, grid).
    #[serde(default)]
    pub source: serde_json::Value,
}

pub const CALIBRATION_SCHEMA: &str = "loam.calibration/1";

/// The exponent line after the records: with none, the prior; with one, the prior's slope
/// through the precision-weighted mean of prior and measurement at that q; with two or
/// more at distinct q, intercept and slope by weighted least squares (weights
/// 1/(σ_a² + s²)), σ from the fit's residual-free covariance at the records' mean q.
pub fn calibrate(prior: ExponentLine, records: &[CalibrationRecord]) -> ExponentLine {
    let w = |r: &CalibrationRecord| 1.0 / (prior.sigma.powi(2) + r.s.powi(2));
    let Some(first) = records.first() else {
        return prior;
    };
    let distinct_q = records.iter().any(|r| (r.q - first.q).abs() > 1e-9);
    if records.len() == 1 || !distinct_q {
        // Pool the measurements at their (common) q, then weigh against the prior there.
        let q = first.q;
        let (sw, swa) = records.iter().fold((0.0, 0.0), |(sw, swa), r| {
            (sw + 1.0 / r.s.powi(2), swa + r.a_hat / r.s.powi(2))
        });
        let p0 = 1.0 / prior.sigma.powi(2);
        let a_post = (prior.a(q) * p0 + swa) / (p0 + sw);
        return ExponentLine {
            intercept: a_post - prior.slope * q,
            slope: prior.slope,
            sigma: (1.0 / (p0 + sw)).sqrt(),
        };
    }
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for r in records {
        let wi = w(r);
        sw += wi;
        sx += wi * r.q;
        sy += wi * r.a_hat;
        sxx += wi * r.q * r.q;
        sxy += wi * r.q * r.a_hat;
    }
    let det = sw * sxx - sx * sx;
    let slope = (sw * sxy - sx * sy) / det;
    let intercept = (sy - slope * sx) / sw;
    ExponentLine {
        intercept,
        slope,
        // Var of the fitted line at the weighted mean q: 1/Σw (its smallest value).
        sigma: (1.0 / sw).sqrt(),
    }
}

/// z = (â − a(q)) / √(σ_a² + s²): |z| ≤ 2 says the prediction is consistent.
pub fn z_score(line: &ExponentLine, q: f64, a_hat: f64, s: f64) -> f64 {
    (a_hat - line.a(q)) / (line.sigma.powi(2) + s.powi(2)).sqrt()
}
