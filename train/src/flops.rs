//! Compute accounting from the DeepSeek LLM paper (§3): M, the non-embedding FLOPs per
//! token of training (forward + backward, attention included), and the two parameter-count
//! proxies 6N1 (non-embedding) and 6N2 (all parameters). C = M · D for D training tokens.

/// `M = 72·n_layer·d_model² + 12·n_layer·d_model·l_seq`.
pub fn m(n_layer: usize, d_model: usize, l_seq: usize) -> f64 {
    let (n, d, l) = (n_layer as f64, d_model as f64, l_seq as f64);
    72.0 * n * d * d + 12.0 * n * d * l
}

/// `6N1 = 72·n_layer·d_model²`.
pub fn six_n1(n_layer: usize, d_model: usize) -> f64 {
    72.0 * n_layer as f64 * (d_model as f64).powi(2)
}

/// `6N2 = 72·n_layer·d_model² + 6·n_vocab·d_model`.
pub fn six_n2(n_layer: usize, d_model: usize, n_vocab: usize) -> f64 {
    six_n1(n_layer, d_model) + 6.0 * n_vocab as f64 * d_model as f64
}

/// Model FLOPs utilisation: `M · tokens/s` over the hardware's peak FLOP/s.
pub fn mfu(m: f64, tokens_per_s: f64, peak_flops: f64) -> f64 {
    if peak_flops > 0.0 {
        m * tokens_per_s / peak_flops
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PAPER.md's Table 3 rows (n_vocab 102,400, l_seq 4096): M, 6N1/M and 6N2/M to the
    /// precision the paper prints.
    #[test]
    fn reproduces_table_3() {
        let rows: [(usize, usize, f64, f64, f64); 7] = [
            (8, 512, 352e6, 0.43, 1.32),
            (12, 768, 963e6, 0.53, 1.02),
            (24, 1024, 3.02e9, 0.60, 0.81),
            (24, 2048, 9.66e9, 0.75, 0.88),
            (32, 4096, 45.1e9, 0.857, 0.91),
            (40, 5120, 85.6e9, 0.88, 0.92),
            (80, 8192, 419e9, 0.92, 0.94),
        ];
        for (n, d, m_paper, r1, r2) in rows {
            let mm = m(n, d, 4096);
            assert!(
                (mm / m_paper - 1.0).abs() < 0.005,
                "M({n},{d}) = {mm:.4e}, paper {m_paper:.3e}"
            );
            let (q1, q2) = (six_n1(n, d) / mm, six_n2(n, d, 102_400) / mm);
            // The paper rounds to two decimals (three for 0.857).
            let tol = if r1 == 0.857 { 0.0005 } else { 0.005 };
            assert!((q1 - r1).abs() <= tol + 1e-9, "6N1/M({n},{d}) = {q1:.4}, paper {r1}");
            assert!((q2 - r2).abs() <= 0.005 + 1e-9, "6N2/M({n},{d}) = {q2:.4}, paper {r2}");
        }
    }

    #[test]
    fn mfu_is_a_fraction_of_peak() {
        assert!((mfu(1e9, 1000.0, 1e13) - 0.1).abs() < 1e-12);
        assert_eq!(mfu(1e9, 1000.0, 0.0), 0.0);
    }
}
