//! The scaling laws loam sizes a training run with, as pure functions: DeepSeek LLM §3's
//! hyperparameter laws (η_opt, B_opt) and compute-optimal allocation (M_opt, D_opt), the
//! quality → exponent line of SCALING.md §2 (an **assumption**: a(q) = 0.450 + 0.128·q,
//! calibrated on DeepSeek's Table 4 and testable by the sweep), the shape search that
//! turns an M into layers, width and heads, and Muennighoff et al.'s data-constrained law
//! for repeated tokens.
//!
//! Units: C in FLOPs, M in non-embedding FLOPs per token (PAPER.md's M), D in tokens,
//! C = M·D (no factor 6: it is inside M).
use serde::{Deserialize, Serialize};

use crate::flops;

mod calibration;
pub mod repeat;

pub use calibration::{calibrate, z_score, CalibrationRecord, Design, CALIBRATION_SCHEMA};
pub use repeat::{repetition, Repetition, Verdict};

/// η_opt = 0.3118·C^−0.1250 (peak learning rate; DeepSeek LLM eq. 1).
pub fn eta_opt(c: f64) -> f64 {
    0.3118 * c.powf(-0.1250)
}

/// B_opt = 0.2920·C^0.3271 (batch size in tokens; DeepSeek LLM eq. 1).
pub fn b_opt(c: f64) -> f64 {
    0.2920 * c.powf(0.3271)
}

/// DeepSeek's fitted allocation on their current data: M_opt = 0.1715·C^0.5243.
pub const DEEPSEEK_M_COEF: f64 = 0.1715;
pub const DEEPSEEK_A: f64 = 0.5243;

/// The pivot budget: the geometric middle of DeepSeek's IsoFLOP range, √(1e17·3e20).
pub fn c_ref() -> f64 {
    (1e17f64 * 3e20).sqrt()
}

/// M at the pivot on DeepSeek's fit, ≈ 1.145e9 FLOPs/token. Every exponent's line goes
/// through (C_ref, M_ref), so changing a tilts the line instead of moving it by orders of
/// magnitude.
pub fn m_ref() -> f64 {
    DEEPSEEK_M_COEF * c_ref().powf(DEEPSEEK_A)
}

/// M_opt(C; a) = M_ref·(C/C_ref)^a.
pub fn m_opt(c: f64, a: f64) -> f64 {
    m_ref() * (c / c_ref()).powf(a)
}

/// D_opt(C; a) = C / M_opt(C; a).
pub fn d_opt(c: f64, a: f64) -> f64 {
    c / m_opt(c, a)
}

/// The budget whose D_opt is `d` tokens (the inverse of [`d_opt`] in C):
/// C = (D·M_ref·C_ref^−a)^(1/(1−a)).
pub fn budget_for_tokens(d: f64, a: f64) -> f64 {
    (d * m_ref() * c_ref().powf(-a)).powf(1.0 / (1.0 - a))
}

/// The uncertainty band of M_opt for an exponent known to ±σ_a: M_opt·exp(±σ_a·|ln(C/C_ref)|)
/// (zero width at the pivot, where every line agrees).
pub fn m_band(c: f64, a: f64, sigma_a: f64) -> (f64, f64) {
    let w = (sigma_a * (c / c_ref()).ln().abs()).exp();
    let m = m_opt(c, a);
    (m / w, m * w)
}

/// a as a linear function of the corpus quality score q, with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExponentLine {
    pub intercept: f64,
    pub slope: f64,
    /// σ_a of a prediction on this line.
    pub sigma: f64,
}

impl ExponentLine {
    /// SCALING.md §2's prior: a(0) = 0.450 (DeepSeek's early data), a(1) = 0.578
    /// (OpenWebText2 through DeepSeek's method), σ_a = 0.03.
    pub const PRIOR: Self = Self {
        intercept: 0.450,
        slope: 0.128,
        sigma: 0.03,
    };

    /// a(q) for q clipped to [0, 1].
    pub fn a(&self, q: f64) -> f64 {
        self.intercept + self.slope * q.clamp(0.0, 1.0)
    }
}

/// What the shape search may return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShapeRules {
    /// Context length l_seq.
    pub seq_len: usize,
    /// Embedding rows (padded vocabulary), for the head's FLOPs.
    pub vocab_size: usize,
    /// d_model / n_layer range (DeepSeek's Table 3 spans 43–128).
    pub min_ratio: f64,
    pub max_ratio: f64,
    pub max_d_model: usize,
    /// Key/value heads are `gqa_kv_heads` once a model has at least `gqa_from_heads` heads
    /// (DeepSeek: 67B has 64 heads, 8 kv heads; 7B plain multi-head attention).
    pub gqa_from_heads: usize,
    pub gqa_kv_heads: usize,
}

impl Default for ShapeRules {
    fn default() -> Self {
        Self {
            seq_len: 4096,
            vocab_size: 102_400,
            min_ratio: 40.0,
            max_ratio: 130.0,
            max_d_model: 32_768,
            gqa_from_heads: 64,
            gqa_kv_heads: 8,
        }
    }
}

/// A concrete model shape and what it costs per token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    pub n_layer: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub seq_len: usize,
    /// Non-embedding FLOPs per token (what C = M·D counts).
    pub m: f64,
    pub six_n1: f64,
    pub six_n2: f64,
    /// The output head's training FLOPs per token, 6·d_model·vocab (not in M).
    pub head_flops: f64,
    /// M plus the head: what a step really costs per token.
    pub total_flops: f64,
}

impl Shape {
    fn new(n_layer: usize, d_model: usize, rules: &ShapeRules) -> Self {
        // Heads of 64 (DeepSeek's width); 32 or 16 on small widths.
        let head_dim = [64, 32, 16]
            .into_iter()
            .find(|h| d_model.is_multiple_of(*h) && (d_model >= 256 || *h < 64))
            .unwrap_or(16);
        let n_heads = d_model / head_dim;
        let n_kv_heads = if n_heads >= rules.gqa_from_heads && n_heads.is_multiple_of(rules.gqa_kv_heads) {
            rules.gqa_kv_heads
        } else {
            n_heads
        };
        let m = flops::m(n_layer, d_model, rules.seq_len);
        let head_flops = 6.0 * d_model as f64 * rules.vocab_size as f64;
        Self {
            n_layer,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            seq_len: rules.seq_len,
            m,
            six_n1: flops::six_n1(n_layer, d_model),
            six_n2: flops::six_n2(n_layer, d_model, rules.vocab_size),
            head_flops,
            total_flops: m + head_flops,
        }
    }
}

/// The widths searched: multiples of 16 below 256, of 64 from 256.
fn widths(max: usize) -> impl Iterator<Item = usize> {
    (1..16).map(|k| 16 * k).chain((4..=max / 64).map(|k| 64 * k))
}

/// The shape whose M is closest to `m_target` in log space, over every (n_layer, d_model)
/// the rules allow. M alone does not fix a shape (many agree to 0.1%), so among shapes
/// within 0.1% of the best one the width with the largest power-of-two factor wins (what
/// matmul tiles and tensor-parallel splits want), then the closer M, then fewer layers.
/// With this rule the search gives back all seven of DeepSeek's Table 3 shapes from their
/// 3-significant-figure M. `None` when the rules allow no shape at all.
pub fn search_shape(m_target: f64, rules: &ShapeRules) -> Option<Shape> {
    let target = m_target.ln();
    let mut cands: Vec<(f64, usize, usize)> = Vec::new();
    for d in widths(rules.max_d_model) {
        let lo = (d as f64 / rules.max_ratio).ceil().max(1.0) as usize;
        let hi = (d as f64 / rules.min_ratio).floor() as usize;
        for n in lo..=hi {
            cands.push(((flops::m(n, d, rules.seq_len).ln() - target).abs(), n, d));
        }
    }
    let best = cands.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
    cands
        .into_iter()
        .filter(|c| c.0 <= best + 1e-3)
        .min_by(|x, y| {
            y.2.trailing_zeros()
                .cmp(&x.2.trailing_zeros())
                .then(x.0.total_cmp(&y.0))
                .then(x.1.cmp(&y.1))
        })
        .map(|(_, n, d)| Shape::new(n, d, rules))
}

/// The smallest M the rules allow (the budget floor: below it no model fits).
pub fn smallest_m(rules: &ShapeRules) -> Option<f64> {
    widths(rules.max_d_model)
        .filter(|d| (*d as f64 / rules.max_ratio).ceil().max(1.0) <= (*d as f64 / rules.min_ratio).floor())
        .map(|d| flops::m((d as f64 / rules.max_ratio).ceil().max(1.0) as usize, d, rules.seq_len))
        .next()
}

/// One run of an IsoFLOP sweep: a shape trained on whole batches within its budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridRun {
    /// Position in the grid, budget-major: budget index · per_budget + k (stable, so a
    /// scheduler can name one task per slot before the plan exists).
    pub slot: usize,
    pub budget: f64,
    /// The M this run was aimed at (M_opt·span^(k/(n−1) − ½)) and the shape that got nearest.
    pub m_target: f64,
    pub shape: Shape,
    pub peak_lr: f64,
    pub batch_seqs: usize,
    /// Whole steps of the batch within C/M, and the compute they spend (M·tokens).
    pub tokens: u64,
    pub compute: f64,
}

/// A sweep's plan, with what could not be placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub runs: Vec<GridRun>,
    /// (budget, M target) pairs whose nearest shape another target of the budget already
    /// took, or that no shape reaches within a factor of 2: dropped, not run twice.
    pub dropped: Vec<(f64, f64)>,
}

/// `per_budget` targets per budget spaced evenly in ln M over ×`span`, centred on the given
/// M (the score's M_opt(C; a)), each given its nearest shape under `rules`, η_opt(C) and
/// B_opt(C) (SCALING.md §4). A shape reached twice in one budget is run once.
pub fn sweep_grid(budgets: &[(f64, f64)], per_budget: usize, span: f64, rules: &ShapeRules) -> Grid {
    let mut grid = Grid {
        runs: Vec::new(),
        dropped: Vec::new(),
    };
    for (i, &(c, centre)) in budgets.iter().enumerate() {
        let batch_seqs = ((b_opt(c) / rules.seq_len as f64).round() as usize).max(1);
        let step = (batch_seqs * rules.seq_len) as u64;
        let mut taken: Vec<(usize, usize)> = Vec::new();
        for k in 0..per_budget {
            let f = if per_budget > 1 {
                k as f64 / (per_budget - 1) as f64 - 0.5
            } else {
                0.0
            };
            let target = centre * span.powf(f);
            let shape = search_shape(target, rules).filter(|s| (s.m / target).max(target / s.m) <= 2.0);
            let Some(shape) = shape.filter(|s| !taken.contains(&(s.n_layer, s.d_model))) else {
                grid.dropped.push((c, target));
                continue;
            };
            taken.push((shape.n_layer, shape.d_model));
            let tokens = ((c / shape.m) / step as f64).floor() as u64 * step;
            grid.runs.push(GridRun {
                slot: i * per_budget + k,
                budget: c,
                m_target: target,
                peak_lr: eta_opt(c),
                batch_seqs,
                tokens,
                compute: shape.m * tokens as f64,
                shape,
            });
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, want: f64, rel: f64) -> bool {
        (x / want - 1.0).abs() <= rel
    }

    #[test]
    fn hyperparameters_at_7b_and_67b() {
        // PAPER.md: the 7B (M ≈ 4.23e10, D = 2e12) gives η ≈ 4.25e-4 and B ≈ 9.2M tokens.
        let c7 = flops::m(30, 4096, 4096) * 2e12;
        assert!(close(c7, 8.46e22, 0.01), "C(7B) = {c7:e}");
        assert!(close(eta_opt(c7), 4.25e-4, 0.005), "η = {}", eta_opt(c7));
        assert!(close(b_opt(c7), 9.2e6, 0.01), "B = {}", b_opt(c7));
        // ≈ 2250 sequences of 4096; the paper used 2304 and 4.2e-4.
        assert!((b_opt(c7) / 4096.0 - 2250.0).abs() < 25.0);
        // 67B: 95 layers, 8192 wide, 8 kv heads of 128, SwiGLU 22016, 2T tokens. With grouped
        // kv its M is 6·(non-embedding params) + attention, not 72·n·d² + …; the paper used
        // LR 3.2e-4 and 4608 sequences, rounded (like the 7B's 2304) to 256 sequences.
        let (n, d, kv, ffn, l) = (95.0, 8192.0, 1024.0, 22016.0, 4096.0);
        let m67 = 6.0 * n * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * ffn) + 12.0 * n * d * l;
        let c67 = m67 * 2e12;
        assert!(close(eta_opt(c67), 3.2e-4, 0.01), "η(67B) = {}", eta_opt(c67));
        assert!(
            (b_opt(c67) / 4096.0 - 4608.0).abs() < 256.0,
            "B(67B) = {} seqs",
            b_opt(c67) / 4096.0
        );
        assert!((b_opt(c7) / 4096.0 - 2304.0).abs() < 256.0);
        // SCALING.md §3's other check values.
        assert!(close(eta_opt(1e12), 9.9e-3, 0.01) && close(b_opt(1e12), 2.5e3, 0.02));
        assert!(close(eta_opt(1e15), 4.2e-3, 0.012) && close(b_opt(1e15), 23.5e3, 0.01));
    }

    #[test]
    fn the_pivot_reproduces_deepseeks_fit_exactly() {
        assert!(close(m_ref(), 1.145e9, 0.002));
        for c in [1e13, 1e17, 3e20, 1e23] {
            let want = DEEPSEEK_M_COEF * f64::powf(c, DEEPSEEK_A);
            assert!(close(m_opt(c, DEEPSEEK_A), want, 1e-12), "C = {c:e}");
            // and D_opt = 5.8316·C^0.4757 to the paper's rounding
            assert!(close(d_opt(c, DEEPSEEK_A), 5.8316 * c.powf(0.4757), 1e-3));
        }
    }

    /// SCALING.md §2's derived table, to its 2 significant figures (3 where it prints 3).
    #[test]
    fn derived_allocation_table() {
        let rows = [
            (0.0, 0.450, 3.0e6, 3.3e6, 2.4e7, 9.5e10),
            (0.578, 0.524, 1.1e6, 8.9e6, 1.3e7, 2.0e11),
            (1.0, 0.578, 5.5e5, 1.8e7, 7.9e6, 3.3e11),
        ];
        let sig2 = |x: f64| {
            let e = x.log10().floor();
            (x / 10f64.powf(e - 1.0)).round() * 10f64.powf(e - 1.0)
        };
        for (q, a, m13, d13, m15, m23) in rows {
            let aq = ExponentLine::PRIOR.a(q);
            assert!((aq - a).abs() < 5e-4, "a({q}) = {aq}");
            for (got, want) in [
                (m_opt(1e13, aq), m13),
                (d_opt(1e13, aq), d13),
                (m_opt(1e15, aq), m15),
                (m_opt(1e23, aq), m23),
            ] {
                assert!((sig2(got) - want).abs() <= want * 1e-9, "q {q}: {got:.3e} vs {want:e}");
            }
        }
    }

    #[test]
    fn budget_for_tokens_inverts_d_opt() {
        for a in [0.45, 0.5243, 0.578] {
            for c in [1e11, 1e15, 1e21] {
                assert!(close(budget_for_tokens(d_opt(c, a), a), c, 1e-9));
            }
        }
    }

    #[test]
    fn band_is_zero_at_the_pivot_and_widens_away() {
        let (lo, hi) = m_band(c_ref(), 0.5, 0.03);
        assert!(close(lo, hi, 1e-12));
        let (lo, hi) = m_band(1e12, 0.5, 0.03);
        let m = m_opt(1e12, 0.5);
        assert!(lo < m && m < hi && close(hi / m, (0.03 * (1e12 / c_ref()).ln().abs()).exp(), 1e-12));
    }

    /// PAPER.md's Table 3 shapes come back (within one grid step) from their rounded M.
    #[test]
    fn shape_search_returns_table_3() {
        let rules = ShapeRules::default();
        for (n, d, m) in [
            (8, 512, 352e6),
            (12, 768, 963e6),
            (24, 1024, 3.02e9),
            (24, 2048, 9.66e9),
            (32, 4096, 45.1e9),
            (40, 5120, 85.6e9),
            (80, 8192, 419e9),
        ] {
            let s = search_shape(m, &rules).expect("a shape");
            assert!(
                s.n_layer.abs_diff(n) <= 1 && s.d_model.abs_diff(d) <= 64,
                "M {m:e}: got ({}, {}), Table 3 ({n}, {d})",
                s.n_layer,
                s.d_model
            );
            assert!((s.m.ln() - m.ln()).abs() < 0.01);
            let r = s.d_model as f64 / s.n_layer as f64;
            assert!((40.0..=130.0).contains(&r));
            assert_eq!(s.head_dim * s.n_heads, s.d_model);
        }
        // Heads of 64 (SCALING.md); from 64 heads on, 8 kv heads (the 67B's grouping).
        let s = Shape::new(30, 4096, &rules);
        assert_eq!((s.n_heads, s.head_dim, s.n_kv_heads), (64, 64, 8));
        let s = search_shape(352e6, &rules).expect("small");
        assert_eq!((s.n_heads, s.n_kv_heads), (8, 8));
    }

    #[test]
    fn tiny_shapes_use_narrow_heads_and_the_floor_is_known() {
        let rules = ShapeRules {
            seq_len: 64,
            vocab_size: 8192,
            ..ShapeRules::default()
        };
        let floor = smallest_m(&rules).expect("a floor");
        assert_eq!(floor, flops::m(1, 48, 64));
        let s = search_shape(3e5, &rules).expect("shape");
        assert!(s.d_model < 256 && s.head_dim <= 32 && s.d_model.is_multiple_of(s.head_dim));
        // The head dominates at this size: SCALING.md's warning, reported as total_flops.
        assert!(s.total_flops > 5.0 * s.m);
    }

    #[test]
    fn muennighoff_check_values() {
        // SCALING.md §3 (datablations README).
        let l1 = repeat::loss(6.34e9, 242e9, 25e9);
        let l2 = repeat::loss(8.67e9, 178e9, 25e9);
        assert!((l1 - 2.2256440889984477).abs() < 1e-12, "{l1:.16}");
        assert!((l2 - 2.2269634075087867).abs() < 1e-12, "{l2:.16}");
        // No repetition: D' = D.
        assert_eq!(repeat::effective(1e9, 2e9, repeat::R_STAR_D), 2e9);
    }

    #[test]
    fn repetition_verdicts_follow_the_epoch_bands() {
        let r = |e: f64| repetition(e * 1e9, 1e9, 1e8, 0.5);
        assert_eq!(r(0.5).verdict, Verdict::NoRepetition);
        assert_eq!(r(3.0).verdict, Verdict::Fine);
        let p = r(10.0);
        assert_eq!(p.verdict, Verdict::Penalty);
        assert!(p.effective_fraction < 1.0 && p.loss_penalty > 0.0);
        let t = r(40.0);
        assert_eq!(t.verdict, Verdict::TooManyEpochs);
        assert!(close(d_opt(t.budget_at_4_epochs, 0.5), 4e9, 1e-9));
        assert!(t.advice.contains("4 epochs"));
    }

    fn record(q: f64, a_hat: f64, s: f64) -> CalibrationRecord {
        let design = Design::loam(64, 8192);
        CalibrationRecord {
            schema: CALIBRATION_SCHEMA.into(),
            q,
            a_hat,
            s,
            design_hash: design.hash(),
            design,
            source: serde_json::Value::Null,
        }
    }

    #[test]
    fn calibration_shifts_then_refits_the_line() {
        let prior = ExponentLine::PRIOR;
        assert_eq!(calibrate(prior, &[]), prior);
        // One record with the prior's own σ: halfway between prediction and measurement.
        let one = calibrate(prior, &[record(0.5, 0.60, 0.03)]);
        assert!((one.a(0.5) - (prior.a(0.5) + 0.60) / 2.0).abs() < 1e-12);
        assert_eq!(one.slope, prior.slope);
        assert!(one.sigma < prior.sigma);
        // Two exact measurements on a known line give that line back.
        let two = calibrate(prior, &[record(0.0, 0.40, 1e-6), record(1.0, 0.70, 1e-6)]);
        assert!((two.intercept - 0.40).abs() < 1e-6 && (two.slope - 0.30).abs() < 1e-6);
        let z = z_score(&prior, 0.5, 0.514 + 0.1, 0.03);
        assert!(z > 2.0, "{z}");
        assert_eq!(Design::loam(64, 8192).hash(), Design::loam(64, 8192).hash());
        assert_ne!(Design::loam(64, 8192).hash(), Design::loam(128, 8192).hash());
    }

    #[test]
    fn a_cpu_sweep_grid_spans_sixteen_fold_around_the_prediction() {
        // 1e12–1e14 at l_seq 256 and an 8k vocabulary needs d/n below DeepSeek's 40: at
        // these widths one layer of 48 is already near M_opt.
        let rules = ShapeRules {
            seq_len: 256,
            vocab_size: 8192,
            min_ratio: 8.0,
            ..ShapeRules::default()
        };
        let budgets = [1e12, 1e13, 1e14];
        let centres: Vec<(f64, f64)> = budgets.iter().map(|&c| (c, m_opt(c, 0.52))).collect();
        let grid = sweep_grid(&centres, 7, 16.0, &rules);
        for &c in &budgets {
            let runs: Vec<&GridRun> = grid.runs.iter().filter(|r| r.budget == c).collect();
            assert!(
                runs.len() >= 5,
                "C = {c:e}: {} runs, dropped {:?}",
                runs.len(),
                grid.dropped
            );
            let ms: Vec<f64> = runs.iter().map(|r| r.shape.m).collect();
            let (lo, hi) = ms
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(a, b), &m| (a.min(m), b.max(m)));
            assert!(hi / lo >= 8.0, "C = {c:e}: M spans only {:.1}×", hi / lo);
            assert!(ms.windows(2).all(|w| w[0] < w[1]), "sizes ascend: {ms:?}");
            let i = budgets.iter().position(|&b| b == c);
            assert!(runs.iter().all(|r| Some(r.slot / 7) == i), "slots are budget-major");
            for r in runs {
                // Whole batches, never over budget, at most one batch short.
                let step = (r.batch_seqs * rules.seq_len) as f64;
                assert!(r.compute <= c && r.compute > c - r.shape.m * step - 1.0, "{r:?}");
                assert_eq!(r.tokens % (r.batch_seqs * rules.seq_len) as u64, 0);
                assert!((r.peak_lr - eta_opt(c)).abs() < 1e-15);
            }
        }
        // Under DeepSeek's own ratio range the small end collapses onto one shape.
        let strict = sweep_grid(
            &[(1e12, m_opt(1e12, 0.52))],
            7,
            16.0,
            &ShapeRules {
                seq_len: 256,
                vocab_size: 8192,
                ..ShapeRules::default()
            },
        );
        assert!(
            !strict.dropped.is_empty(),
            "{:?}",
            strict.runs.iter().map(|r| r.shape.m).collect::<Vec<_>>()
        );
    }
}
