//! Held-out evaluation of a binary scorer: ROC-AUC (the Mann–Whitney statistic, ties
//! counted half), and precision, recall and F1 at a threshold (score ≥ threshold is
//! predicted positive), including the threshold that maximises F1.
use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of "score ≥ threshold" against the labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AtThreshold {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Share of all examples predicted positive.
    pub predicted_positive: f64,
}

/// ROC-AUC of `scores` (`true` = positive); `None` without both classes.
pub fn roc_auc(scored: &[(f32, bool)]) -> Option<f64> {
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let mut v: Vec<(f32, bool)> = scored.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' ranks (1-based), tied scores sharing their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg * v[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Precision/recall/F1 at `threshold`.
pub fn at_threshold(scored: &[(f32, bool)], threshold: f64) -> AtThreshold {
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    for &(s, y) in scored {
        match (f64::from(s) >= threshold, y) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    AtThreshold {
        threshold,
        precision,
        recall,
        f1,
        predicted_positive: ratio(tp + fp, scored.len() as u64),
    }
}

/// The threshold (one of the scores) with the highest F1; ties go to the higher one.
pub fn best_f1(scored: &[(f32, bool)]) -> Option<AtThreshold> {
    let mut v: Vec<(f32, bool)> = scored.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = v.iter().filter(|s| s.1).count() as f64;
    if pos == 0.0 {
        return None;
    }
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut best: Option<(f64, f32)> = None;
    let mut i = 0;
    while i < v.len() {
        let s = v[i].0;
        while i < v.len() && v[i].0 == s {
            if v[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        let f1 = 2.0 * tp / (tp + fp + pos);
        if best.is_none_or(|(b, _)| f1 > b) {
            best = Some((f1, s));
        }
    }
    best.map(|(_, s)| at_threshold(scored, f64::from(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_tied_scorers() {
        let perfect = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        assert_eq!(roc_auc(&perfect), Some(1.0));
        let inverted = [(0.1, true), (0.2, true), (0.8, false), (0.9, false)];
        assert_eq!(roc_auc(&inverted), Some(0.0));
        let tied = [(0.5, true), (0.5, false)];
        assert_eq!(roc_auc(&tied), Some(0.5));
        // 3 of the 4 (pos, neg) pairs are ordered right.
        let mixed = [(0.9, true), (0.4, true), (0.5, false), (0.1, false)];
        assert_eq!(roc_auc(&mixed), Some(0.75));
        assert_eq!(roc_auc(&[(0.3, true)]), None);
    }

    #[test]
    fn threshold_metrics() {
        let s = [(0.9, true), (0.7, false), (0.6, true), (0.1, false)];
        let m = at_threshold(&s, 0.5);
        assert_eq!((m.precision, m.recall, m.predicted_positive), (2.0 / 3.0, 1.0, 0.75));
        let b = best_f1(&s).expect("positives");
        assert_eq!(b.threshold, f64::from(0.6f32));
        assert!((b.f1 - 0.8).abs() < 1e-12);
    }
}
