//! A structural check of fastText's binary model format (version 12) before the C++
//! library reads it: fastText trusts every size it reads, so a truncated or damaged file
//! can make it allocate without bound or read garbage instead of failing. Here every
//! section's size is checked against the bytes that remain, and the file must end exactly
//! where the last matrix does.
//!
//! ```text
//! i32 magic 793712314, i32 version 12
//! args:  dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate (i32), t (f64)
//! dict:  size nwords nlabels (i32), ntokens pruneidx_size (i64), size × (word NUL, count i64, type i8),
//!        pruneidx_size × (i32, i32)
//! bool quant_input, input matrix; bool qout, output matrix
//! dense: m n (i64), m·n f32
//! quant: bool qnorm, m n (i64), codesize i32, codes u8 × codesize, PQ, [qnorm: m u8, norm PQ]
//! PQ:    dim nsubq dsub lastdsub (i32), dim·256 f32 centroids
//! ```
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

const MAGIC: i32 = 793_712_314;
const VERSION: i32 = 12;
/// fastText's product quantizer has 2^8 centroids per sub-quantizer.
const KSUB: u64 = 256;

/// What the file says about the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub dim: i32,
    pub word_ngrams: i32,
    /// fastText's loss code: 1 hs, 2 ns, 3 softmax, 4 one-vs-all.
    pub loss: i32,
    /// fastText's model code: 1 cbow, 2 skipgram, 3 supervised.
    pub model: i32,
    pub bucket: i32,
    pub minn: i32,
    pub maxn: i32,
    pub nwords: i32,
    /// The labels in the dictionary's order (the output matrix's rows).
    pub labels: Vec<String>,
    pub quantized: bool,
    pub bytes: u64,
}

/// Where a product quantizer's centroids are, and its shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PqLayout {
    pub offset: u64,
    pub dim: usize,
    pub nsubq: usize,
    pub dsub: usize,
    pub lastdsub: usize,
}

/// Where a matrix's data is in the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MatrixLayout {
    /// `rows × cols` little-endian f32 at `offset`.
    Dense { offset: u64, rows: u64, cols: u64 },
    /// Product-quantized: `nsubq` codes per row at `codes`, norms (one code per row) at
    /// `norm_codes` with their own quantizer when `norm` is set.
    Quant {
        rows: u64,
        cols: u64,
        codes: u64,
        pq: PqLayout,
        norm: Option<(u64, PqLayout)>,
    },
}

impl MatrixLayout {
    pub fn rows(&self) -> u64 {
        match *self {
            Self::Dense { rows, .. } | Self::Quant { rows, .. } => rows,
        }
    }
}

/// A checked model file: its header, dictionary, and where its matrices are.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub info: ModelInfo,
    /// Dictionary entries in id order: the word's bytes and whether it is a label.
    pub entries: Vec<(Vec<u8>, bool)>,
    /// Bucket id → row (after `nwords`) of a pruned model; empty when not pruned.
    pub pruneidx: Vec<(i32, i32)>,
    pub pruned: bool,
    pub input: MatrixLayout,
    pub output: MatrixLayout,
}

struct Cursor {
    r: BufReader<File>,
    at: u64,
    len: u64,
}

impl Cursor {
    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|_| format!("truncated in the {what} (at byte {})", self.at))?;
        self.at += N as u64;
        Ok(b)
    }
    fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.bytes::<4>(what).map(i32::from_le_bytes)
    }
    fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.bytes::<8>(what).map(i64::from_le_bytes)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        self.bytes::<1>(what).map(|b| b[0])
    }
    fn flag(&mut self, what: &str) -> Result<bool, String> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(format!("bad {what} flag {v} at byte {}", self.at - 1)),
        }
    }
    /// Skips `n` bytes that must exist.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.len.saturating_sub(self.at) {
            return Err(format!(
                "truncated: the {what} needs {n} bytes at byte {}, {} remain",
                self.at,
                self.len.saturating_sub(self.at)
            ));
        }
        self.r
            .seek_relative(n as i64)
            .map_err(|e| format!("seek in the {what}: {e}"))?;
        self.at += n;
        Ok(())
    }
    fn count(&mut self, v: i64, what: &str) -> Result<u64, String> {
        u64::try_from(v).map_err(|_| format!("negative {what} size ({v}) at byte {}", self.at))
    }
    fn matrix(&mut self, quant: bool, what: &str) -> Result<MatrixLayout, String> {
        if !quant {
            let rows = self.i64(what)?;
            let rows = self.count(rows, what)?;
            let cols = self.i64(what)?;
            let cols = self.count(cols, what)?;
            let bytes = rows
                .checked_mul(cols)
                .and_then(|x| x.checked_mul(4))
                .ok_or("matrix size overflows")?;
            let offset = self.at;
            self.skip(bytes, what)?;
            return Ok(MatrixLayout::Dense { offset, rows, cols });
        }
        let qnorm = self.flag(what)?;
        let rows = self.i64(what)?;
        let rows = self.count(rows, what)?;
        let cols = self.i64(what)?;
        let cols = self.count(cols, what)?;
        let codesize = self.i32(what)?;
        let codesize = self.count(i64::from(codesize), what)?;
        let codes = self.at;
        self.skip(codesize, what)?;
        let pq = self.pq(what)?;
        if pq.dim as u64 != cols || Some(codesize) != rows.checked_mul(pq.nsubq as u64) {
            return Err(format!(
                "the {what}'s quantizer ({} dims, {} codes per row, {codesize} codes) does not fit its {rows}×{cols} shape",
                pq.dim, pq.nsubq
            ));
        }
        let norm = if qnorm {
            let at = self.at;
            self.skip(rows, what)?;
            let npq = self.pq(what)?;
            if npq.dim != 1 || npq.nsubq != 1 {
                return Err(format!("the {what}'s norm quantizer is not one-dimensional"));
            }
            Some((at, npq))
        } else {
            None
        };
        Ok(MatrixLayout::Quant {
            rows,
            cols,
            codes,
            pq,
            norm,
        })
    }
    fn pq(&mut self, what: &str) -> Result<PqLayout, String> {
        let mut v = [0usize; 4];
        for x in &mut v {
            let n = self.i32(what)?;
            *x = usize::try_from(n).map_err(|_| format!("negative quantizer size {n} in the {what}"))?;
        }
        let [dim, nsubq, dsub, lastdsub] = v;
        if nsubq == 0 || dsub == 0 || lastdsub == 0 || (nsubq - 1) * dsub + lastdsub != dim {
            return Err(format!(
                "inconsistent quantizer in the {what} (dim {dim}, {nsubq} sub-quantizers of {dsub}, last {lastdsub})"
            ));
        }
        let offset = self.at;
        self.skip(dim as u64 * KSUB * 4, what)?;
        Ok(PqLayout {
            offset,
            dim,
            nsubq,
            dsub,
            lastdsub,
        })
    }
}

/// Checks the structure of the model file at `path` and reads its header and labels.
pub fn inspect(path: &Path) -> Result<ModelInfo, String> {
    read(path).map(|m| m.info)
}

/// Checks the structure of the model file at `path`; reads its header and dictionary and
/// locates its matrices.
pub fn read(path: &Path) -> Result<ModelFile, String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut c = Cursor {
        r: BufReader::with_capacity(1 << 16, f),
        at: 0,
        len,
    };
    let magic = c.i32("header")?;
    let version = c.i32("header")?;
    if magic != MAGIC || version != VERSION {
        return Err(format!(
            "not a fastText 0.9 model (magic {magic}, version {version}; expected {MAGIC}, {VERSION})"
        ));
    }
    let mut a = [0i32; 12];
    for v in &mut a {
        *v = c.i32("arguments")?;
    }
    c.skip(8, "arguments")?;
    let [dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn, _lr_update] = a;
    if !(1..=1 << 16).contains(&dim) {
        return Err(format!("implausible dimension {dim}"));
    }
    let size = c.i32("dictionary")?;
    let nwords = c.i32("dictionary")?;
    let nlabels = c.i32("dictionary")?;
    let _ntokens = c.i64("dictionary")?;
    let pruneidx = c.i64("dictionary")?;
    if size < 0 || nwords < 0 || nlabels < 0 || i64::from(nwords) + i64::from(nlabels) != i64::from(size) {
        return Err(format!(
            "inconsistent dictionary sizes (size {size}, words {nwords}, labels {nlabels})"
        ));
    }
    let mut entries = Vec::with_capacity(size.min(1 << 24) as usize);
    let mut labels = Vec::new();
    for i in 0..size {
        let mut word = Vec::new();
        loop {
            let b = c.u8("dictionary")?;
            if b == 0 {
                break;
            }
            word.push(b);
            if word.len() > 1 << 20 {
                return Err(format!("dictionary entry {i} has no end (at byte {})", c.at));
            }
        }
        c.skip(8, "dictionary")?;
        let kind = c.u8("dictionary")?;
        match kind {
            0 => entries.push((word, false)),
            1 => {
                labels.push(String::from_utf8_lossy(&word).into_owned());
                entries.push((word, true));
            }
            k => return Err(format!("dictionary entry {i} has type {k} (at byte {})", c.at - 1)),
        }
    }
    if labels.len() != nlabels as usize {
        return Err(format!("dictionary lists {} labels but says {nlabels}", labels.len()));
    }
    // -1 marks a dictionary that was never pruned.
    let pruned = pruneidx >= 0;
    let n_prune = if pruneidx == -1 {
        0
    } else {
        c.count(pruneidx, "prune index")?
    };
    let mut prune = Vec::with_capacity(n_prune.min(1 << 24) as usize);
    for _ in 0..n_prune {
        let from = c.i32("prune index")?;
        let to = c.i32("prune index")?;
        prune.push((from, to));
    }
    let quant_input = c.flag("input matrix")?;
    let input = c.matrix(quant_input, "input matrix")?;
    let cols = match input {
        MatrixLayout::Dense { cols, .. } | MatrixLayout::Quant { cols, .. } => cols,
    };
    if cols != dim as u64 {
        return Err(format!("input matrix has {cols} columns, the arguments say dim {dim}"));
    }
    let qout = c.flag("output matrix")?;
    let output = c.matrix(qout, "output matrix")?;
    let (m_out, n_out) = match output {
        MatrixLayout::Dense { rows, cols, .. } | MatrixLayout::Quant { rows, cols, .. } => (rows, cols),
    };
    if model == 3 && (m_out != nlabels as u64 || n_out != dim as u64) {
        return Err(format!(
            "output matrix is {m_out}×{n_out}, expected {nlabels} labels × {dim}"
        ));
    }
    if c.at != len {
        return Err(format!(
            "{} bytes follow the last matrix (at byte {})",
            len - c.at,
            c.at
        ));
    }
    Ok(ModelFile {
        info: ModelInfo {
            dim,
            word_ngrams,
            loss,
            model,
            bucket,
            minn,
            maxn,
            nwords,
            labels,
            quantized: quant_input,
            bytes: len,
        },
        entries,
        pruneidx: prune,
        pruned,
        input,
        output,
    })
}
