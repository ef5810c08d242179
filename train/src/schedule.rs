//! The paper's multi-step learning-rate schedule: linear warmup over `warmup_steps` to the
//! peak, then the peak until 80% of the training tokens, 31.6% of it until 90%, and 10%
//! after. The drops are placed by tokens, as the paper states them; warmup by steps.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    pub peak_lr: f64,
    pub warmup_steps: u64,
    /// `(fraction of training tokens, multiple of the peak)`, in increasing order.
    pub drops: Vec<(f64, f64)>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            peak_lr: 4.2e-4,
            warmup_steps: 2000,
            drops: vec![(0.8, 0.316), (0.9, 0.1)],
        }
    }
}

impl Schedule {
    /// Learning rate for optimizer step `step` (0-based) when `tokens_done` of
    /// `tokens_total` training tokens have been consumed before it.
    pub fn lr(&self, step: u64, tokens_done: u64, tokens_total: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let frac = tokens_done as f64 / tokens_total.max(1) as f64;
        let mult = self
            .drops
            .iter()
            .filter(|(at, _)| frac >= *at)
            .map(|(_, m)| *m)
            .next_back()
            .unwrap_or(1.0);
        self.peak_lr * mult
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.peak_lr > 0.0 && self.peak_lr.is_finite()) {
            return Err(format!("train.schedule.peak_lr = {} must be positive", self.peak_lr));
        }
        let ordered = self.drops.windows(2).all(|w| w[0].0 < w[1].0);
        if !ordered || self.drops.iter().any(|(f, m)| !(0.0..=1.0).contains(f) || *m <= 0.0) {
            return Err(
                "train.schedule.drops must be (token fraction in [0,1], multiple > 0) in increasing order".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_of_the_paper_schedule() {
        let s = Schedule::default();
        let total = 1_000_000;
        assert!((s.lr(0, 0, total) - 4.2e-4 / 2000.0).abs() < 1e-15);
        assert!((s.lr(999, 0, total) - 4.2e-4 * 0.5).abs() < 1e-15);
        assert_eq!(s.lr(1999, 0, total), 4.2e-4);
        assert_eq!(s.lr(2000, 100, total), 4.2e-4);
        assert_eq!(s.lr(5000, 799_999, total), 4.2e-4);
        assert!((s.lr(5000, 800_000, total) - 4.2e-4 * 0.316).abs() < 1e-15);
        assert!((s.lr(5000, 899_999, total) - 4.2e-4 * 0.316).abs() < 1e-15);
        assert!((s.lr(5000, 900_000, total) - 4.2e-5).abs() < 1e-15);
        assert!((s.lr(9000, total, total) - 4.2e-5).abs() < 1e-15);
    }
}
