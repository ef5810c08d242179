//! Training data from token shards: every `*.tokens` file of a `tokenize` folder,
//! memory-mapped. Documents are assigned to the held-out split by a hash of (seed, shard,
//! document) — the same split on every run — and each split is one virtual stream of its
//! documents' tokens (EOS-separated, as stored). Training windows of `seq_len + 1` tokens
//! start at multiples of `seq_len` and are visited in a seeded pseudo-random permutation,
//! so the data position is one integer (windows consumed) and resuming is exact.
use std::path::{Path, PathBuf};

use loam_tokenize::shards::TokenShard;

use crate::TrainError;

/// A contiguous run of one shard's tokens in a split's stream.
#[derive(Debug, Clone)]
struct Segment {
    shard: usize,
    start: u64,
    len: u64,
    /// Offset of this segment in the split's stream.
    at: u64,
}

/// One split (train or validation) as a stream of tokens.
#[derive(Debug, Default)]
pub struct Stream {
    segments: Vec<Segment>,
    len: u64,
    /// Text bytes of the documents in this split (for bits per byte).
    pub text_bytes: u64,
}

impl Stream {
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Debug)]
pub struct TokenData {
    shards: Vec<TokenShard>,
    pub train: Stream,
    pub val: Stream,
    pub vocab_size: usize,
    pub padded_vocab_size: usize,
    pub tokenizer_sha256: String,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl TokenData {
    /// Opens every `*.tokens` file in `dir` (sorted), checking they share one tokenizer.
    pub fn open(dir: &Path, val_fraction: f64, seed: u64) -> Result<Self, TrainError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| TrainError::Data(format!("{}: {e}; run `loam tokenize` first", dir.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "tokens"))
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(TrainError::Data(format!(
                "{} holds no token shards (*.tokens); run `loam tokenize` first",
                dir.display()
            )));
        }
        let shards = files
            .iter()
            .map(|f| TokenShard::open(f))
            .collect::<Result<Vec<_>, _>>()?;
        let h0 = shards[0].header().clone();
        if let Some(other) = shards
            .iter()
            .find(|s| s.header().tokenizer_sha256 != h0.tokenizer_sha256)
        {
            return Err(TrainError::Data(format!(
                "{} was made with another tokenizer than {} ({} vs {}); re-run `loam tokenize --force`",
                other.path().display(),
                shards[0].path().display(),
                other.header().tokenizer_sha256,
                h0.tokenizer_sha256
            )));
        }
        let threshold = (val_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        let (mut train, mut val) = (Stream::default(), Stream::default());
        for (si, s) in shards.iter().enumerate() {
            let h = s.header();
            // Bytes per document are not stored; spread the shard's text bytes by tokens.
            let bytes_per_token = h.text_bytes as f64 / h.n_tokens.max(1) as f64;
            for d in 0..h.n_docs {
                let Some(r) = s.doc_range(d) else { continue };
                let held_out = mix(seed ^ mix((si as u64) << 40 ^ d)) < threshold;
                let stream = if held_out { &mut val } else { &mut train };
                let len = r.end - r.start;
                match stream.segments.last_mut() {
                    Some(last) if last.shard == si && last.start + last.len == r.start => last.len += len,
                    _ => stream.segments.push(Segment {
                        shard: si,
                        start: r.start,
                        len,
                        at: stream.len,
                    }),
                }
                stream.len += len;
                stream.text_bytes += (len as f64 * bytes_per_token).round() as u64;
            }
        }
        Ok(Self {
            vocab_size: h0.vocab_size,
            padded_vocab_size: h0.padded_vocab_size,
            tokenizer_sha256: h0.tokenizer_sha256,
            shards,
            train,
            val,
        })
    }

    /// Appends tokens `[from, from + n)` of `stream` to `out`.
    pub fn read(&self, stream: &Stream, from: u64, n: u64, out: &mut Vec<u32>) {
        let mut pos = from;
        let end = (from + n).min(stream.len);
        // First segment containing `pos`.
        let mut i = stream.segments.partition_point(|s| s.at + s.len <= pos);
        while pos < end {
            let Some(seg) = stream.segments.get(i) else { break };
            let off = pos - seg.at;
            let take = (seg.len - off).min(end - pos);
            self.shards[seg.shard].read_tokens(seg.start + off..seg.start + off + take, out);
            pos += take;
            i += 1;
        }
    }

    /// Number of training windows of `seq_len + 1` tokens.
    pub fn windows(&self, stream: &Stream, seq_len: usize) -> u64 {
        stream.len.saturating_sub(1) / seq_len as u64
    }
}

/// A seeded bijection on `0..n` (cycle-walking a 4-round Feistel network over the next
/// power of four), so window order is pseudo-random yet needs no table.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = 64 - n.max(2).saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let keys = [mix(seed ^ 1), mix(seed ^ 2), mix(seed ^ 3), mix(seed ^ 4)];
        Self { n, half_bits, keys }
    }

    pub fn get(&self, i: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let mut x = i;
        loop {
            let (mut l, mut r) = (x >> self.half_bits, x & mask);
            for k in self.keys {
                let f = mix(r ^ k) & mask;
                (l, r) = (r, l ^ f);
            }
            x = (l << self.half_bits) | r;
            if x < self.n {
                return x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 7, 100, 1000] {
            let p = Permutation::new(n, 42);
            let mut seen: Vec<u64> = (0..n).map(|i| p.get(i)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
        let (a, b) = (Permutation::new(1000, 1), Permutation::new(1000, 2));
        assert_ne!(
            (0..10).map(|i| a.get(i)).collect::<Vec<_>>(),
            (0..10).map(|i| b.get(i)).collect::<Vec<_>>()
        );
    }
}
