//! Target mixtures and sampling rates, as pure functions over per-key sizes n_k (in the
//! mixture's unit).
//!
//! - target shares w: `natural` (w ∝ n), `weights` (normalised), `temperature` (w ∝ n^α),
//!   `unimax` (Chung et al. 2023: keys in ascending size each get an equal share of what
//!   is left, at most `max_epochs`·n);
//! - rates r_k = w_k·T / n_k with the epoch cap E: `redistribute` caps a key at E and
//!   gives its excess to the uncapped keys in proportion to their weights, repeating until
//!   no key is over (a fixed point; the total shrinks only when every key with weight is
//!   capped); `shrink_total` lowers T until the largest rate is E (shares kept);
//!   `error` refuses.
use std::collections::BTreeMap;

use super::{OnCap, TargetKind};

/// Relative slack below which a rate counts as at the cap (float noise).
const EPS: f64 = 1e-9;

/// Target shares over `sizes` (every key with n > 0). `weights` must name only keys of
/// `known` with n > 0; the error names the offending key.
pub fn target_shares(
    kind: TargetKind,
    weights: &BTreeMap<String, f64>,
    alpha: f64,
    sizes: &[(String, f64)],
    total: f64,
    max_epochs: f64,
    known: &[String],
) -> Result<Vec<f64>, String> {
    let n_sum: f64 = sizes.iter().map(|s| s.1).sum();
    if n_sum <= 0.0 {
        return Err("the remix input is empty: nothing to mix".into());
    }
    let raw: Vec<f64> = match kind {
        TargetKind::Natural => sizes.iter().map(|s| s.1).collect(),
        TargetKind::Temperature => sizes
            .iter()
            .map(|s| if s.1 > 0.0 { s.1.powf(alpha) } else { 0.0 })
            .collect(),
        TargetKind::Weights => {
            for (k, w) in weights {
                if *w <= 0.0 {
                    continue;
                }
                match sizes.iter().find(|s| &s.0 == k) {
                    Some(s) if s.1 > 0.0 => {}
                    Some(_) => return Err(format!("remix.target.weights names {k:?}, which holds no documents in this run; drop it or give it 0")),
                    None if known.iter().any(|x| x == k) => {
                        return Err(format!("remix.target.weights names {k:?}, which holds no documents in this run; drop it or give it 0"))
                    }
                    None => {
                        return Err(format!(
                            "remix.target.weights names {k:?}, which is not a domain of this run's assignment (known: {}); fix the name or add it to a host table",
                            known.join(", ")
                        ))
                    }
                }
            }
            sizes
                .iter()
                .map(|s| weights.get(&s.0).copied().unwrap_or(0.0))
                .collect()
        }
        TargetKind::Unimax => unimax(&sizes.iter().map(|s| s.1).collect::<Vec<_>>(), total, max_epochs),
    };
    let sum: f64 = raw.iter().sum();
    if sum <= 0.0 {
        return Err("the target gives every domain of this run weight 0".into());
    }
    Ok(raw.iter().map(|w| w / sum).collect())
}

/// UniMax allocations (amounts, not shares) of `total` over keys of sizes `n`.
pub fn unimax(n: &[f64], total: f64, max_epochs: f64) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..n.len()).filter(|&i| n[i] > 0.0).collect();
    // Ascending size, ties by index: a deterministic order.
    idx.sort_by(|&a, &b| n[a].total_cmp(&n[b]).then(a.cmp(&b)));
    let mut left = total;
    let mut out = vec![0.0; n.len()];
    for (j, &i) in idx.iter().enumerate() {
        let share = left / (idx.len() - j) as f64;
        out[i] = share.min(max_epochs * n[i]);
        left -= out[i];
    }
    out
}

/// Rates and what the cap did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// Per key: copies per unit of input (r_k), ≤ max_epochs.
    pub rates: Vec<f64>,
    /// Per key: the target was over the cap.
    pub capped: Vec<bool>,
    /// Per key: share of the planned output (a_k / Σ a).
    pub planned_share: Vec<f64>,
    /// Σ r_k n_k: the planned output size.
    pub total: f64,
    /// Keys that received redistributed excess.
    pub received: Vec<bool>,
}

/// Rates r_k = w_k·T/n_k under the epoch cap.
pub fn rates(shares: &[f64], n: &[f64], total: f64, max_epochs: f64, on_cap: OnCap) -> Result<Rates, String> {
    let k = n.len();
    let mut alloc: Vec<f64> = shares.iter().map(|w| w * total).collect();
    let mut capped = vec![false; k];
    let mut received = vec![false; k];
    let over = |a: f64, n: f64| n > 0.0 && a > max_epochs * n * (1.0 + EPS);
    match on_cap {
        OnCap::Error => {
            if let Some(i) = (0..k).find(|&i| over(alloc[i], n[i])) {
                return Err(format!(
                    "key {i} needs {:.2} epochs, over remix.max_epochs = {max_epochs}",
                    alloc[i] / n[i]
                ));
            }
        }
        OnCap::ShrinkTotal => {
            let worst = (0..k)
                .filter(|&i| n[i] > 0.0 && alloc[i] > 0.0)
                .map(|i| alloc[i] / (max_epochs * n[i]))
                .fold(0.0, f64::max);
            if worst > 1.0 {
                for (i, a) in alloc.iter_mut().enumerate() {
                    *a /= worst;
                    capped[i] = n[i] > 0.0 && (*a / n[i] - max_epochs).abs() <= max_epochs * 1e-9;
                }
            }
        }
        OnCap::Redistribute => loop {
            let mut excess = 0.0;
            for i in 0..k {
                if over(alloc[i], n[i]) {
                    excess += alloc[i] - max_epochs * n[i];
                    alloc[i] = max_epochs * n[i];
                    capped[i] = true;
                }
            }
            if excess <= 0.0 {
                break;
            }
            let free: Vec<usize> = (0..k)
                .filter(|&i| !capped[i] && shares[i] > 0.0 && n[i] > 0.0)
                .collect();
            let w: f64 = free.iter().map(|&i| shares[i]).sum();
            if free.is_empty() || w <= 0.0 {
                break; // every weighted key is capped: the total shrinks
            }
            for &i in &free {
                alloc[i] += excess * shares[i] / w;
                received[i] = true;
            }
        },
    }
    let sum: f64 = alloc.iter().sum();
    Ok(Rates {
        rates: (0..k).map(|i| if n[i] > 0.0 { alloc[i] / n[i] } else { 0.0 }).collect(),
        capped,
        planned_share: alloc.iter().map(|a| if sum > 0.0 { a / sum } else { 0.0 }).collect(),
        total: sum,
        received,
    })
}

/// Copies of a document with rate `r` and draw `u ∈ [0, 1)` in Bernoulli mode.
pub fn bernoulli_copies(r: f64, u: f64) -> u32 {
    let base = r.floor();
    (base as u32) + u32::from(u < r - base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    fn sizes(n: &[f64]) -> Vec<(String, f64)> {
        n.iter().enumerate().map(|(i, &v)| (format!("d{i}"), v)).collect()
    }

    #[test]
    fn temperature_by_hand() {
        // n = 100, 25, 1 and α = 0.5: √n = 10, 5, 1 → 10/16, 5/16, 1/16.
        let s = target_shares(
            TargetKind::Temperature,
            &BTreeMap::new(),
            0.5,
            &sizes(&[100.0, 25.0, 1.0]),
            126.0,
            4.0,
            &[],
        )
        .expect("shares");
        assert!(close(&s, &[10.0 / 16.0, 5.0 / 16.0, 1.0 / 16.0]), "{s:?}");
        let s = target_shares(
            TargetKind::Temperature,
            &BTreeMap::new(),
            0.0,
            &sizes(&[100.0, 25.0, 1.0]),
            126.0,
            4.0,
            &[],
        )
        .expect("shares");
        assert!(close(&s, &[1.0 / 3.0; 3]), "α = 0 is uniform: {s:?}");
    }

    #[test]
    fn unimax_by_hand() {
        // n = 1, 10, 100, total 60, E = 4: the smallest takes min(20, 4) = 4; then
        // 56 / 2 = 28 each, min(28, 40) = 28 and min(28, 400) = 28.
        let a = unimax(&[100.0, 1.0, 10.0], 60.0, 4.0);
        assert!(close(&a, &[28.0, 4.0, 28.0]), "{a:?}");
        // Total larger than everything at the cap: each key at E·n.
        let a = unimax(&[1.0, 2.0], 100.0, 4.0);
        assert!(close(&a, &[4.0, 8.0]), "{a:?}");
    }

    #[test]
    fn cap_redistributes_excess_to_a_fixed_point() {
        // n = 10, 10, 80; weights 0.5, 0.3, 0.2 of T = 100 → 50, 30, 20: rates 5, 3, 0.25.
        // Key 0 is capped at 40 (4 epochs); its 10 go to keys 1 and 2 as 0.3 : 0.2 →
        // 36 and 24. Key 1 (3.6) is under the cap, so the point is fixed.
        let r = rates(&[0.5, 0.3, 0.2], &[10.0, 10.0, 80.0], 100.0, 4.0, OnCap::Redistribute).expect("rates");
        assert!(close(&r.rates, &[4.0, 3.6, 0.3]), "{:?}", r.rates);
        assert_eq!(r.capped, vec![true, false, false]);
        assert_eq!(r.received, vec![false, true, true]);
        assert!((r.total - 100.0).abs() < 1e-9);
        // A second round: key 1 now also goes over. w = 0.45, 0.45, 0.1 of 100 over
        // n = 10, 10, 80 → 45, 45, 10 → both capped at 40, 10 excess to key 2 → 20.
        let r = rates(&[0.45, 0.45, 0.1], &[10.0, 10.0, 80.0], 100.0, 4.0, OnCap::Redistribute).expect("rates");
        assert!(close(&r.rates, &[4.0, 4.0, 0.25]), "{:?}", r.rates);
        // Every weighted key capped: the total shrinks.
        let r = rates(&[0.5, 0.5, 0.0], &[10.0, 10.0, 80.0], 100.0, 4.0, OnCap::Redistribute).expect("rates");
        assert!(
            close(&r.rates, &[4.0, 4.0, 0.0]) && (r.total - 80.0).abs() < 1e-9,
            "{r:?}"
        );
    }

    #[test]
    fn shrink_total_keeps_shares_and_error_refuses() {
        let r = rates(&[0.5, 0.3, 0.2], &[10.0, 10.0, 80.0], 100.0, 4.0, OnCap::ShrinkTotal).expect("rates");
        // T shrinks to 80 so key 0 is at 4 epochs: 40, 24, 16.
        assert!(
            close(&r.rates, &[4.0, 2.4, 0.2]) && (r.total - 80.0).abs() < 1e-9,
            "{r:?}"
        );
        assert!(close(&r.planned_share, &[0.5, 0.3, 0.2]));
        assert!(rates(&[0.5, 0.3, 0.2], &[10.0, 10.0, 80.0], 100.0, 4.0, OnCap::Error).is_err());
        assert!(rates(&[0.1, 0.1, 0.8], &[10.0, 10.0, 80.0], 100.0, 4.0, OnCap::Error).is_ok());
    }

    #[test]
    fn weights_naming_unknown_or_empty_domains_are_refused() {
        let w: BTreeMap<String, f64> = [("d0".to_owned(), 1.0), ("poetry".to_owned(), 1.0)].into();
        let known = vec!["d0".to_owned(), "d1".to_owned(), "literature".to_owned()];
        let e =
            target_shares(TargetKind::Weights, &w, 0.0, &sizes(&[5.0, 5.0]), 10.0, 4.0, &known).expect_err("unknown");
        assert!(e.contains("\"poetry\"") && e.contains("not a domain"), "{e}");
        let w: BTreeMap<String, f64> = [("literature".to_owned(), 1.0)].into();
        let e = target_shares(TargetKind::Weights, &w, 0.0, &sizes(&[5.0, 5.0]), 10.0, 4.0, &known).expect_err("empty");
        assert!(e.contains("\"literature\"") && e.contains("no documents"), "{e}");
    }

    #[test]
    fn bernoulli_copies_take_the_fraction() {
        assert_eq!(bernoulli_copies(2.25, 0.2), 3);
        assert_eq!(bernoulli_copies(2.25, 0.3), 2);
        assert_eq!(bernoulli_copies(0.0, 0.0), 0);
        assert_eq!(bernoulli_copies(1.0, 0.999), 1);
    }
}
