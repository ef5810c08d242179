//! Muennighoff et al. (2023)'s data-constrained scaling law, with the constants of their
//! datablations README (Apache-2.0), in parameters N and tokens D from U unique tokens.
//! Also the repetition verdict loam reports from it.
use serde::{Deserialize, Serialize};

use super::budget_for_tokens;

pub const ALPHA: f64 = 0.352_659_6;
pub const BETA: f64 = 0.352_659_6;
/// Repetitions at which repeated data's value decays by 1/e.
pub const R_STAR_D: f64 = 15.387_756;
pub const R_STAR_N: f64 = 5.309_743;

fn a() -> f64 {
    6.255_414f64.exp()
}
fn b() -> f64 {
    7.304_997_4f64.exp()
}
fn e() -> f64 {
    0.625_480_4f64.exp()
}

/// U·(1 + R*·(1 − e^(−R/R*))) for R = x/U − 1 repetitions (≥ 0): what x tokens (or
/// parameters) drawn from U unique ones are worth.
pub fn effective(x: f64, unique: f64, r_star: f64) -> f64 {
    let r = (x / unique - 1.0).max(0.0);
    unique + unique * r_star * (1.0 - (-r / r_star).exp())
}

/// The compute-optimal N for D tokens under the law's own A, B, α, β:
/// N = (D·G)^(β/α)·G with G = (αA/(βB))^(1/(α+β)).
pub fn d_to_n(d: f64) -> f64 {
    let g = ((ALPHA * a()) / (BETA * b())).powf(1.0 / (ALPHA + BETA));
    (d * g).powf(BETA / ALPHA) * g
}

/// L(N, D, U) = E + A/N'^α + B/D'^β, with D' from U and N' from U_N = min(N, d_to_n(U)).
pub fn loss(n: f64, d: f64, unique: f64) -> f64 {
    let d_eff = effective(d, unique, R_STAR_D);
    let u_n = n.min(d_to_n(unique));
    let n_eff = effective(n, u_n, R_STAR_N);
    e() + a() / n_eff.powf(ALPHA) + b() / d_eff.powf(BETA)
}

/// How much a run repeats its unique tokens, and what that costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// D ≤ U: no token seen twice.
    NoRepetition,
    /// Up to 4 epochs: about as good as unique data (Muennighoff et al.).
    Fine,
    /// 4–16 epochs: a measurable penalty (reported).
    Penalty,
    /// Over 16 epochs: use a smaller budget or more data.
    TooManyEpochs,
}

/// The repetition verdict for training `d` tokens of `unique` unique ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repetition {
    pub tokens: f64,
    pub unique_tokens: f64,
    pub epochs: f64,
    pub verdict: Verdict,
    /// D' (Muennighoff's effective data) and D'/D.
    pub effective_tokens: f64,
    pub effective_fraction: f64,
    /// Predicted loss increase over the same run on unique data (nats; Muennighoff's
    /// law with N = `params`).
    pub loss_penalty: f64,
    /// The largest budget (at this exponent) whose D_opt stays within 4 epochs.
    pub budget_at_4_epochs: f64,
    pub advice: String,
}

/// Repetition for `d` tokens of `unique`, a model of `params` parameters, exponent `a`.
pub fn repetition(d: f64, unique: f64, params: f64, a: f64) -> Repetition {
    let epochs = if unique > 0.0 { d / unique } else { f64::INFINITY };
    let verdict = match epochs {
        e if e <= 1.0 => Verdict::NoRepetition,
        e if e <= 4.0 => Verdict::Fine,
        e if e <= 16.0 => Verdict::Penalty,
        _ => Verdict::TooManyEpochs,
    };
    let effective_tokens = if unique > 0.0 {
        effective(d, unique, R_STAR_D)
    } else {
        0.0
    };
    let loss_penalty = if unique > 0.0 && params > 0.0 {
        loss(params, d, unique) - loss(params, d, d.max(unique))
    } else {
        f64::INFINITY
    };
    let budget_at_4_epochs = budget_for_tokens(4.0 * unique, a);
    let advice = match verdict {
        Verdict::NoRepetition => "every token is unique".to_owned(),
        Verdict::Fine => format!("{epochs:.1} epochs: repeated data is worth about as much as unique (≤ 4)"),
        Verdict::Penalty => format!(
            "{epochs:.1} epochs: the tokens are worth {:.0}% of unique ones (Muennighoff), about +{loss_penalty:.3} nats of loss; a budget of {budget_at_4_epochs:.2e} stays within 4 epochs",
            100.0 * effective_tokens / d
        ),
        Verdict::TooManyEpochs => format!(
            "{epochs:.1} epochs is past 16, where more repetition adds almost nothing: use a budget of at most {budget_at_4_epochs:.2e} (4 epochs) or more data"
        ),
    };
    Repetition {
        tokens: d,
        unique_tokens: unique,
        epochs,
        verdict,
        effective_tokens,
        effective_fraction: if d > 0.0 { effective_tokens / d } else { 0.0 },
        loss_penalty,
        budget_at_4_epochs,
        advice,
    }
}
