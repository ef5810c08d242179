//! A fastText predictor for what quality models are: supervised, softmax, no character
//! n-grams (DCLM's recipe and loam's default). It gives fastText's probabilities (within
//! float rounding, |Δ| ≤ 1e-6, tested against Python's `fasttext`) at a fraction of the
//! cost, because a softmax classifier's logits are linear in the input rows:
//!
//! ```text
//! logits = W_out · (1/n) Σ_i W_in[f_i]  =  (1/n) Σ_i (W_out · W_in[f_i])
//! ```
//!
//! and with two labels only their difference matters to a softmax, so each input row is
//! projected once, at load, onto `W_out[hq] − W_out[cc]`: scoring a document then reads one
//! float per feature instead of `dim`, and the model needs (words + bucket) floats of
//! memory instead of (words + bucket) × dim — 8 MB instead of 800 MB at DCLM's 2M buckets
//! × 100 dimensions. Features are exactly
//! fastText's: FNV-1a word hashes (bytes as signed chars), the dictionary's ids for known
//! words, `</s>` at the end of the line, word n-gram hashes `h·116049371 + h'` modulo the
//! bucket count (through the prune index of a cut-off model).
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::model_file::{MatrixLayout, ModelFile, PqLayout};

/// fastText's end-of-line token.
const EOS: &[u8] = b"</s>";
const KSUB: usize = 256;

/// A loaded two-label softmax classifier with its input rows projected onto the
/// difference of the labels' output rows.
pub struct FastClassifier {
    nwords: usize,
    /// Index of the label `predict` reports (its row of the output matrix).
    label: usize,
    bucket: u64,
    word_ngrams: usize,
    /// Open-addressing table over dictionary entries: entry index + 1, 0 = empty.
    slots: Vec<u32>,
    mask: usize,
    /// Entry `i`'s bytes are `arena[offsets[i]..offsets[i + 1]]`.
    arena: Vec<u8>,
    offsets: Vec<u32>,
    is_label: Vec<bool>,
    /// A pruned model's bucket → row map (`None`: not pruned).
    prune: Option<HashMap<i32, i32>>,
    /// Per input row: its contribution to logit(label) − logit(other label).
    proj: Vec<f32>,
}

/// Per-thread scratch for [`FastClassifier::predict`].
#[derive(Default)]
pub struct Scratch {
    hashes: Vec<i32>,
}

/// fastText's `Dictionary::hash`: FNV-1a over the bytes taken as signed chars.
fn fnv(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in bytes {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

fn slot_of(h: u32, mask: usize) -> usize {
    (h.wrapping_mul(0x9E37_79B1) as usize) & mask
}

fn read_f32s(r: &mut impl Read, out: &mut [f32]) -> std::io::Result<()> {
    let mut buf = vec![0u8; out.len() * 4];
    r.read_exact(&mut buf)?;
    le_f32s(&buf, out);
    Ok(())
}

fn le_f32s(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

/// `a · b` in eight f32 lanes (vectorised), summed in f64.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + tail
}

/// A product quantizer's centroids, read.
struct Pq {
    layout: PqLayout,
    centroids: Vec<f32>,
}

impl Pq {
    fn load(f: &mut File, layout: PqLayout) -> std::io::Result<Self> {
        f.seek(SeekFrom::Start(layout.offset))?;
        let mut centroids = vec![0f32; layout.dim * KSUB];
        read_f32s(f, &mut centroids)?;
        Ok(Self { layout, centroids })
    }

    /// fastText's `get_centroids(m, i)`.
    fn centroid(&self, m: usize, i: u8) -> &[f32] {
        let l = &self.layout;
        let i = usize::from(i);
        if m == l.nsubq - 1 {
            let at = m * KSUB * l.dsub + i * l.lastdsub;
            &self.centroids[at..at + l.lastdsub]
        } else {
            let at = (m * KSUB + i) * l.dsub;
            &self.centroids[at..at + l.dsub]
        }
    }

    /// Writes `norm ×` the decoded row of `code` into `out`.
    fn decode(&self, code: &[u8], norm: f32, out: &mut [f32]) {
        let l = &self.layout;
        for (m, &c) in code.iter().enumerate().take(l.nsubq) {
            for (n, v) in self.centroid(m, c).iter().enumerate() {
                out[m * l.dsub + n] = norm * v;
            }
        }
    }
}

/// Streams a matrix's rows, decoding quantized ones, calling `f(row_index, row)`.
fn for_each_row(f: &mut File, m: &MatrixLayout, mut each: impl FnMut(usize, &[f32])) -> std::io::Result<()> {
    match *m {
        MatrixLayout::Dense { offset, rows, cols } => {
            f.seek(SeekFrom::Start(offset))?;
            let cols = cols as usize;
            // Rows are read in blocks of about 4 MB (no per-row read or allocation).
            let per = ((4 << 20) / (cols * 4).max(1)).max(1);
            let mut bytes = vec![0u8; per * cols * 4];
            let mut block = vec![0f32; per * cols];
            let mut i = 0usize;
            while i < rows as usize {
                let n = per.min(rows as usize - i);
                f.read_exact(&mut bytes[..n * cols * 4])?;
                le_f32s(&bytes[..n * cols * 4], &mut block[..n * cols]);
                for (j, row) in block[..n * cols].chunks_exact(cols.max(1)).enumerate() {
                    each(i + j, row);
                }
                i += n;
            }
        }
        MatrixLayout::Quant {
            rows,
            cols,
            codes,
            pq,
            norm,
        } => {
            let pq = Pq::load(f, pq)?;
            let norms = match norm {
                Some((at, layout)) => {
                    let npq = Pq::load(f, layout)?;
                    f.seek(SeekFrom::Start(at))?;
                    let mut c = vec![0u8; rows as usize];
                    f.read_exact(&mut c)?;
                    c.iter().map(|&k| npq.centroid(0, k)[0]).collect()
                }
                None => vec![1.0; rows as usize],
            };
            f.seek(SeekFrom::Start(codes))?;
            let mut r = BufReader::with_capacity(1 << 20, &mut *f);
            let mut code = vec![0u8; pq.layout.nsubq];
            let mut row = vec![0f32; cols as usize];
            for (i, &norm) in norms.iter().enumerate() {
                r.read_exact(&mut code)?;
                pq.decode(&code, norm, &mut row);
                each(i, &row);
            }
        }
    }
    Ok(())
}

impl FastClassifier {
    /// Loads `path` (already checked into `file`) if the fast path applies: supervised,
    /// softmax over two labels, no character n-grams; `predict` reports label `label`.
    /// `Ok(None)` otherwise.
    pub fn load(path: &Path, file: &ModelFile, label: usize) -> Result<Option<Self>, String> {
        let info = &file.info;
        if info.model != 3 || info.loss != 3 || info.maxn > 0 || info.labels.len() != 2 || label > 1 {
            return Ok(None);
        }
        let nwords = info.nwords as usize;
        let nlabels = 2;
        let rows = file.input.rows() as usize;
        let bucket = info.bucket.max(0) as u64;
        let prune: Option<HashMap<i32, i32>> = file.pruned.then(|| file.pruneidx.iter().copied().collect());
        let needed = match &prune {
            None if info.word_ngrams > 1 => nwords as u64 + bucket,
            None => nwords as u64,
            Some(p) => nwords as u64 + p.values().map(|&v| v as u64 + 1).max().unwrap_or(0),
        };
        if (rows as u64) < needed {
            return Err(format!(
                "the input matrix has {rows} rows; {nwords} words and {bucket} buckets need {needed}"
            ));
        }
        if info.word_ngrams > 1 && bucket == 0 && prune.is_none() {
            return Err("word n-grams with 0 buckets".into());
        }
        // Dictionary.
        let mut arena = Vec::new();
        let mut offsets = Vec::with_capacity(file.entries.len() + 1);
        let mut is_label = Vec::with_capacity(file.entries.len());
        offsets.push(0u32);
        for (w, label) in &file.entries {
            arena.extend_from_slice(w);
            offsets.push(u32::try_from(arena.len()).map_err(|_| "dictionary over 4 GB")?);
            is_label.push(*label);
        }
        let cap = (file.entries.len() * 2).next_power_of_two().max(16);
        let mask = cap - 1;
        let mut slots = vec![0u32; cap];
        for (i, (w, _)) in file.entries.iter().enumerate() {
            let mut s = slot_of(fnv(w), mask);
            while slots[s] != 0 {
                s = (s + 1) & mask;
            }
            slots[s] = i as u32 + 1;
        }
        // Output matrix, dense: nlabels × dim.
        let io = |e: std::io::Error| format!("reading {}: {e}", path.display());
        let mut f = File::open(path).map_err(io)?;
        let dim = info.dim as usize;
        let mut w_out = vec![0f32; nlabels * dim];
        for_each_row(&mut f, &file.output, |i, row| {
            w_out[i * dim..(i + 1) * dim].copy_from_slice(row);
        })
        .map_err(io)?;
        // Input rows projected onto W_out[label] − W_out[other].
        let (mine, other) = (
            &w_out[label * dim..(label + 1) * dim],
            &w_out[(1 - label) * dim..(2 - label) * dim],
        );
        let mut proj = vec![0f32; rows];
        for_each_row(&mut f, &file.input, |i, row| {
            proj[i] = (dot(row, mine) - dot(row, other)) as f32;
        })
        .map_err(io)?;
        Ok(Some(Self {
            nwords,
            label,
            bucket,
            word_ngrams: info.word_ngrams.max(1) as usize,
            slots,
            mask,
            arena,
            offsets,
            is_label,
            prune,
            proj,
        }))
    }

    fn lookup(&self, word: &[u8], h: u32) -> Option<usize> {
        let mut s = slot_of(h, self.mask);
        loop {
            let e = self.slots[s];
            if e == 0 {
                return None;
            }
            let i = (e - 1) as usize;
            if &self.arena[self.offsets[i] as usize..self.offsets[i + 1] as usize] == word {
                return Some(i);
            }
            s = (s + 1) & self.mask;
        }
    }

    fn add_row(&self, row: usize, sum: &mut f64) -> bool {
        match self.proj.get(row) {
            Some(p) => {
                *sum += f64::from(*p);
                true
            }
            None => false,
        }
    }

    /// The index of the label [`predict`](Self::predict) reports.
    pub fn label(&self) -> usize {
        self.label
    }

    /// The probability of the label for a normalised line — words separated by single
    /// spaces, no newline — as fastText's `predict` reports it for the line plus `\n`:
    /// softmax, then exp(log(p + 1e-5)). `None` when the line has no feature fastText
    /// knows (it then predicts nothing).
    pub fn predict(&self, line: &str, scratch: &mut Scratch) -> Option<f32> {
        let hashes = &mut scratch.hashes;
        hashes.clear();
        let mut sum = 0f64;
        let mut n = 0u64;
        let tokens = line.split(' ').filter(|t| !t.is_empty()).map(str::as_bytes);
        for token in tokens.chain(std::iter::once(EOS)) {
            let h = fnv(token);
            match self.lookup(token, h) {
                Some(id) if self.is_label[id] => {}
                Some(id) => {
                    n += u64::from(self.add_row(id, &mut sum));
                    hashes.push(h as i32);
                }
                // Unknown words add no row (no character n-grams) but take part in word n-grams.
                None if token.starts_with(b"__label__") => {}
                None => hashes.push(h as i32),
            }
        }
        for i in 0..hashes.len() {
            let mut h = hashes[i] as i64 as u64;
            for &hj in hashes.iter().take((i + self.word_ngrams).min(hashes.len())).skip(i + 1) {
                h = h.wrapping_mul(116_049_371).wrapping_add(hj as i64 as u64);
                let id = (h % self.bucket) as i32;
                let row = match &self.prune {
                    None => Some(id),
                    Some(p) => p.get(&id).copied(),
                };
                if let Some(r) = row {
                    n += u64::from(self.add_row(self.nwords + r as usize, &mut sum));
                }
            }
        }
        if n == 0 {
            return None;
        }
        // fastText's float softmax over the mean, max subtracted: with two labels whose
        // logits differ by d, exp(0) for the larger and exp(-|d|) for the other.
        let d = (sum / n as f64) as f32;
        let (e_mine, e_other) = if d >= 0.0 { (1f32, (-d).exp()) } else { (d.exp(), 1f32) };
        let p = e_mine / (e_mine + e_other);
        Some(((f64::from(p) + 1e-5).ln() as f32).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_takes_bytes_as_signed_chars() {
        // Reference values from fastText's Dictionary::hash.
        assert_eq!(fnv(b""), 2_166_136_261);
        assert_eq!(fnv(b"a"), 0xe40c_292c);
        // A byte ≥ 0x80 is sign-extended before the xor.
        let signed = (2_166_136_261u32 ^ 0xffff_ffc3).wrapping_mul(16_777_619);
        assert_eq!(fnv(&[0xc3]), signed);
    }
}
