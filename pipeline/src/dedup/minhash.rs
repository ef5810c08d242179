//! MinHash signatures and LSH band keys. Each shingle is hashed once (xxh3-64); the
//! `bands × rows` permutations are derived from its low 32 bits `x` arithmetically with
//! Dietzfelbinger's multiply-add-shift, `(a·x + b) >> 32` for random 64-bit `a`, `b` — a
//! strongly universal family costing one multiply per permutation instead of one hash
//! call. The permutation loop is the stage's hot spot; on CPUs with AVX2 it runs in a
//! copy compiled for AVX2 (same arithmetic, same results, ~4× faster).
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::text::{for_each_shingle, words};

/// splitmix64: the permutation parameters from a seed, the same on every machine.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Computes signatures for one setting (n-gram size, bands, rows, seed).
#[derive(Debug, Clone)]
pub struct MinHasher {
    ngram: usize,
    bands: usize,
    rows: usize,
    a: Vec<u64>,
    b: Vec<u64>,
}

/// Reusable buffers for one thread.
#[derive(Debug, Default)]
pub struct Scratch {
    words: Vec<u8>,
    spans: Vec<(u32, u32)>,
    hashes: Vec<u32>,
    mins: Vec<u32>,
}

/// Folds every shingle key into the per-permutation minima.
fn fold_minima(keys: &[u32], a: &[u64], b: &[u64], mins: &mut [u32]) {
    for &x in keys {
        let x = u64::from(x);
        // Written as a flat loop over equal-length slices so it vectorises.
        for ((m, &a), &b) in mins.iter_mut().zip(a).zip(b) {
            let v = (a.wrapping_mul(x).wrapping_add(b) >> 32) as u32;
            *m = (*m).min(v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fold_minima_avx2(keys: &[u32], a: &[u64], b: &[u64], mins: &mut [u32]) {
    fold_minima(keys, a, b, mins);
}

/// [`fold_minima`], in its AVX2 build when the CPU has AVX2.
#[allow(unsafe_code)]
fn fold_minima_fast(keys: &[u32], a: &[u64], b: &[u64], mins: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the AVX2 instructions it may use exist on this CPU (checked just above);
        // the function itself is safe Rust.
        unsafe { fold_minima_avx2(keys, a, b, mins) };
        return;
    }
    fold_minima(keys, a, b, mins);
}

impl MinHasher {
    pub fn new(ngram: usize, bands: usize, rows: usize, seed: u64) -> Self {
        let mut state = seed ^ 0x6C6F_616D_6D68_0001; // "loammh" + version
        let perms = bands * rows;
        let a = (0..perms).map(|_| splitmix(&mut state) | 1).collect();
        let b = (0..perms).map(|_| splitmix(&mut state)).collect();
        Self {
            ngram,
            bands,
            rows,
            a,
            b,
        }
    }

    pub fn bands(&self) -> usize {
        self.bands
    }

    /// The `bands × rows` minimum values of `text`'s shingles; `false` when the text has
    /// no word (such a document has no signature and joins no bucket).
    pub fn signature(&self, text: &str, s: &mut Scratch) -> bool {
        words(text, &mut s.words, &mut s.spans);
        s.hashes.clear();
        let hashes = &mut s.hashes;
        for_each_shingle(&s.words, &s.spans, self.ngram, |h| hashes.push(h as u32));
        s.mins.clear();
        s.mins.resize(self.a.len(), u32::MAX);
        fold_minima_fast(&s.hashes, &self.a, &self.b, &mut s.mins);
        !s.hashes.is_empty()
    }

    /// The last signature's shingle keys (low 32 bits of each shingle's xxh3-64), in text
    /// order, repeats included.
    pub fn shingle_keys<'s>(&self, s: &'s Scratch) -> &'s [u32] {
        &s.hashes
    }

    /// The last signature's minima (after [`signature`](Self::signature)).
    pub fn mins<'s>(&self, s: &'s Scratch) -> &'s [u32] {
        &s.mins
    }

    /// One 64-bit key per band: xxh3 of the band's rows, seeded by the band index so equal
    /// rows in different bands never share a bucket.
    pub fn band_keys(&self, s: &Scratch, out: &mut Vec<u64>) {
        out.clear();
        let mut bytes = [0u8; 4 * 64];
        for (band, rows) in s.mins.chunks(self.rows).enumerate() {
            let n = rows.len() * 4;
            let buf = if n <= bytes.len() {
                &mut bytes[..n]
            } else {
                // More than 64 rows per band: rare, allocate.
                return self.band_keys_slow(s, out);
            };
            for (i, r) in rows.iter().enumerate() {
                buf[i * 4..i * 4 + 4].copy_from_slice(&r.to_le_bytes());
            }
            out.push(xxh3_64_with_seed(buf, band as u64));
        }
    }

    fn band_keys_slow(&self, s: &Scratch, out: &mut Vec<u64>) {
        out.clear();
        for (band, rows) in s.mins.chunks(self.rows).enumerate() {
            let buf: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
            out.push(xxh3_64_with_seed(&buf, band as u64));
        }
    }
}

/// Estimated Jaccard similarity: the share of equal minima.
pub fn estimate_jaccard(a: &[u32], b: &[u32]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// Probability that two documents of Jaccard similarity `j` share at least one band.
pub fn collision_probability(j: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - j.powi(rows as i32)).powi(bands as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn shingle_set(text: &str, n: usize) -> HashSet<u64> {
        let (mut buf, mut spans) = (Vec::new(), Vec::new());
        words(text, &mut buf, &mut spans);
        let mut set = HashSet::new();
        for_each_shingle(&buf, &spans, n, |h| {
            set.insert(h);
        });
        set
    }

    /// A pseudo-random text of distinct-ish words, and a copy with every k-th word changed.
    fn texts(words: usize, every: usize) -> (String, String) {
        let mut st = 7u64;
        let base: Vec<String> = (0..words).map(|_| format!("w{}", splitmix(&mut st) % 5000)).collect();
        let edited: Vec<String> = base
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if every > 0 && i % every == 0 {
                    format!("x{i}")
                } else {
                    w.clone()
                }
            })
            .collect();
        (base.join(" "), edited.join(" "))
    }

    #[test]
    fn estimate_tracks_true_jaccard() {
        let h = MinHasher::new(5, 32, 8, 1);
        for every in [0, 50, 20, 10, 5] {
            let (a, b) = texts(2000, every);
            let (sa, sb) = (shingle_set(&a, 5), shingle_set(&b, 5));
            let truth = sa.intersection(&sb).count() as f64 / sa.union(&sb).count() as f64;
            let (mut x, mut y) = (Scratch::default(), Scratch::default());
            assert!(h.signature(&a, &mut x) && h.signature(&b, &mut y));
            let est = estimate_jaccard(h.mins(&x), h.mins(&y));
            // 256 permutations: standard error ≤ 0.5/16 ≈ 0.031.
            assert!(
                (est - truth).abs() < 0.1,
                "every {every}: true {truth:.3}, estimated {est:.3}"
            );
        }
    }

    #[test]
    fn identical_texts_share_every_band_and_unrelated_share_none() {
        let h = MinHasher::new(5, 14, 8, 1);
        let (a, _) = texts(500, 0);
        let (mut x, mut y) = (Scratch::default(), Scratch::default());
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        h.signature(&a, &mut x);
        h.band_keys(&x, &mut ka);
        h.signature(&a.to_uppercase(), &mut y);
        h.band_keys(&y, &mut kb);
        assert_eq!(ka, kb);
        assert_eq!(ka.len(), 14);
        h.signature("an entirely different text about whales and the sea and ships", &mut y);
        h.band_keys(&y, &mut kb);
        assert!(ka.iter().zip(&kb).all(|(p, q)| p != q));
    }

    #[test]
    fn avx2_and_portable_builds_agree() {
        let h = MinHasher::new(5, 14, 8, 3);
        let keys: Vec<u32> = (0..1000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let (mut x, mut y) = (vec![u32::MAX; 112], vec![u32::MAX; 112]);
        fold_minima(&keys, &h.a, &h.b, &mut x);
        fold_minima_fast(&keys, &h.a, &h.b, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn no_words_no_signature() {
        let h = MinHasher::new(5, 14, 8, 1);
        assert!(!h.signature(" -- ... !!", &mut Scratch::default()));
    }

    #[test]
    fn fineweb_setting_s_curve() {
        // 14 × 8: a pair at J = 0.8 is found ~92% of the time, at 0.5 ~5%.
        assert!(collision_probability(0.8, 14, 8) > 0.9);
        assert!(collision_probability(0.5, 14, 8) < 0.06);
    }
}
