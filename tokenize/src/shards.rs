//! Packed token shards: the file format the `tokenize` stage writes and the trainer
//! memory-maps. One file per input shard, self-describing:
//!
//! ```text
//! 0      "LOAMTOK1"                      magic (8 bytes)
//! 8      u32 LE  header length L
//! 12     L bytes of JSON (ShardHeader)   zero-padded to 4096
//! 4096   tokens: n_tokens × u16|u32 LE   every document's ids, each followed by EOS
//! I      (n_docs + 1) × u64 LE           index: where document i starts; the last = n_tokens
//! ```
//!
//! Tokens start at 4096 so a page-aligned map of the file has them aligned for any width;
//! the index starts at the next multiple of 8 (`index_offset` in the header). The header
//! names the tokenizer by the SHA-256 of its `tokenizer.json`, so a trainer can refuse
//! shards made with another tokenizer.
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Result, TokenizeError};

pub const MAGIC: &[u8; 8] = b"LOAMTOK1";
pub const HEADER_BYTES: u64 = 4096;
pub const FORMAT_VERSION: u32 = 1;

/// Integer width of the stored ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    U16,
    U32,
}

impl Dtype {
    /// The narrowest width that holds every id below `padded_vocab_size`.
    pub fn for_vocab(padded_vocab_size: usize) -> Self {
        if padded_vocab_size <= 1 << 16 {
            Self::U16
        } else {
            Self::U32
        }
    }
    pub fn width(self) -> u64 {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }
}

/// The JSON header of a token shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShardHeader {
    pub format: String,
    pub version: u32,
    pub dtype: Dtype,
    /// SHA-256 (hex) of the `tokenizer.json` the ids come from.
    pub tokenizer_sha256: String,
    /// Ids in the tokenizer (ordinary + special).
    pub vocab_size: usize,
    /// Embedding rows the model needs (vocabulary padded to a multiple).
    pub padded_vocab_size: usize,
    pub eos_id: u32,
    /// Set when each document also starts with BOS.
    pub bos_id: Option<u32>,
    pub n_docs: u64,
    /// Every stored id, EOS (and BOS) included.
    pub n_tokens: u64,
    /// UTF-8 bytes of the documents' text: `text_bytes / (n_tokens - n_docs)` is bytes per
    /// token, which turns a loss in nats per token into bits per byte.
    pub text_bytes: u64,
    pub tokens_offset: u64,
    pub index_offset: u64,
    /// The document file this shard encodes, rows in order.
    pub source: String,
}

/// What a new shard is made with.
#[derive(Debug, Clone)]
pub struct ShardSpec {
    pub tokenizer_sha256: String,
    pub vocab_size: usize,
    pub padded_vocab_size: usize,
    pub eos_id: u32,
    pub bos_id: Option<u32>,
    pub source: String,
}

/// Streams documents' ids into a temporary file; [`commit`](Self::commit) writes the
/// index and header, fsyncs and renames it into place.
pub struct ShardWriter {
    dest: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    spec: ShardSpec,
    dtype: Dtype,
    /// Start of each document, in tokens (8 bytes per document while the shard is open).
    starts: Vec<u64>,
    n_tokens: u64,
    text_bytes: u64,
}

impl std::fmt::Debug for ShardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardWriter").field("dest", &self.dest).finish()
    }
}

fn io(path: &Path, e: std::io::Error) -> TokenizeError {
    TokenizeError::Io {
        path: path.to_owned(),
        source: e,
    }
}

impl ShardWriter {
    /// Starts `dest` under the hidden temporary name `tmp` (the caller's naming scheme, so
    /// its crash clean-up finds it).
    pub fn create(dest: &Path, tmp: &Path, spec: ShardSpec) -> Result<Self> {
        let file = File::create(tmp).map_err(|e| io(tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&[0u8; HEADER_BYTES as usize]).map_err(|e| io(tmp, e))?;
        Ok(Self {
            dest: dest.to_owned(),
            tmp: tmp.to_owned(),
            out,
            dtype: Dtype::for_vocab(spec.padded_vocab_size),
            spec,
            starts: Vec::new(),
            n_tokens: 0,
            text_bytes: 0,
        })
    }

    /// Appends one document: (BOS), its ids, EOS.
    pub fn push_doc(&mut self, ids: &[u32], text_bytes: u64) -> Result<()> {
        self.starts.push(self.n_tokens);
        self.text_bytes += text_bytes;
        let bos = self.spec.bos_id;
        let eos = self.spec.eos_id;
        for &id in bos.iter().chain(ids).chain(std::iter::once(&eos)) {
            if id as usize >= self.spec.padded_vocab_size {
                return Err(TokenizeError::Encode {
                    path: self.dest.clone(),
                    why: format!(
                        "id {id} is outside the padded vocabulary of {}",
                        self.spec.padded_vocab_size
                    ),
                });
            }
            let r = match self.dtype {
                Dtype::U16 => self.out.write_all(&(id as u16).to_le_bytes()),
                Dtype::U32 => self.out.write_all(&id.to_le_bytes()),
            };
            r.map_err(|e| io(&self.tmp, e))?;
            self.n_tokens += 1;
        }
        Ok(())
    }

    /// Documents written so far.
    pub fn docs(&self) -> u64 {
        self.starts.len() as u64
    }

    /// Finishes the file and moves it into place; returns its header.
    pub fn commit(mut self) -> Result<ShardHeader> {
        let tmp = self.tmp.clone();
        let end = HEADER_BYTES + self.n_tokens * self.dtype.width();
        let index_offset = end.div_ceil(8) * 8;
        self.out
            .write_all(&vec![0u8; (index_offset - end) as usize])
            .map_err(|e| io(&tmp, e))?;
        for s in self.starts.iter().chain(std::iter::once(&self.n_tokens)) {
            self.out.write_all(&s.to_le_bytes()).map_err(|e| io(&tmp, e))?;
        }
        let header = ShardHeader {
            format: "loam-tokens".into(),
            version: FORMAT_VERSION,
            dtype: self.dtype,
            tokenizer_sha256: self.spec.tokenizer_sha256.clone(),
            vocab_size: self.spec.vocab_size,
            padded_vocab_size: self.spec.padded_vocab_size,
            eos_id: self.spec.eos_id,
            bos_id: self.spec.bos_id,
            n_docs: self.starts.len() as u64,
            n_tokens: self.n_tokens,
            text_bytes: self.text_bytes,
            tokens_offset: HEADER_BYTES,
            index_offset,
            source: self.spec.source.clone(),
        };
        let json = serde_json::to_vec(&header).map_err(|e| TokenizeError::Train(e.to_string()))?;
        if 12 + json.len() as u64 > HEADER_BYTES {
            return Err(TokenizeError::Encode {
                path: self.dest.clone(),
                why: format!(
                    "header of {} bytes does not fit in {HEADER_BYTES}; shorten the source name",
                    json.len()
                ),
            });
        }
        let mut file = self.out.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| io(&tmp, e))?;
        file.write_all(MAGIC).map_err(|e| io(&tmp, e))?;
        file.write_all(&(json.len() as u32).to_le_bytes())
            .map_err(|e| io(&tmp, e))?;
        file.write_all(&json).map_err(|e| io(&tmp, e))?;
        file.sync_all().map_err(|e| io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &self.dest).map_err(|e| io(&self.dest, e))?;
        if let Some(dir) = self.dest.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))?;
        }
        Ok(header)
    }
}

/// A committed token shard, memory-mapped and validated.
pub struct TokenShard {
    path: PathBuf,
    map: memmap2::Mmap,
    header: ShardHeader,
}

impl std::fmt::Debug for TokenShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenShard")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish()
    }
}

impl TokenShard {
    /// Maps `path` and checks magic, header, sizes and index, so later reads cannot fail.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |why: String| TokenizeError::BadShard {
            path: path.to_owned(),
            why,
        };
        let file = File::open(path).map_err(|e| io(path, e))?;
        // SAFETY: the map is read-only and shards are never modified after the rename
        // that commits them (a rerun writes a new file and renames it over the old one,
        // which leaves this mapping on the old inode).
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io(path, e))?;
        let len = map.len() as u64;
        if len < HEADER_BYTES || &map[..8] != MAGIC {
            return Err(bad(format!(
                "not a loam token shard (no {:?} header; {len} bytes)",
                std::str::from_utf8(MAGIC).unwrap_or_default()
            )));
        }
        let hlen = u32::from_le_bytes([map[8], map[9], map[10], map[11]]) as u64;
        if 12 + hlen > HEADER_BYTES {
            return Err(bad(format!("header length {hlen} is corrupt")));
        }
        let header: ShardHeader = serde_json::from_slice(&map[12..(12 + hlen) as usize])
            .map_err(|e| bad(format!("header is not valid: {e}")))?;
        if header.version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} (this loam reads {FORMAT_VERSION}); re-run `loam tokenize`",
                header.version
            )));
        }
        let tokens_end = header.tokens_offset + header.n_tokens * header.dtype.width();
        let want = header.index_offset + (header.n_docs + 1) * 8;
        if header.tokens_offset != HEADER_BYTES || header.index_offset < tokens_end || len != want {
            return Err(bad(format!(
                "file is {len} bytes but its header describes {want} (truncated or overwritten?); re-run `loam tokenize --force`"
            )));
        }
        let shard = Self {
            path: path.to_owned(),
            map,
            header,
        };
        let mut prev = 0;
        for i in 0..=shard.header.n_docs {
            let s = shard.index_entry(i);
            if s < prev || s > shard.header.n_tokens {
                return Err(bad(format!("index entry {i} ({s}) is out of order or out of range")));
            }
            prev = s;
        }
        if shard.index_entry(shard.header.n_docs) != shard.header.n_tokens {
            return Err(bad("index does not end at n_tokens".into()));
        }
        Ok(shard)
    }

    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn index_entry(&self, i: u64) -> u64 {
        let at = (self.header.index_offset + i * 8) as usize;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.map[at..at + 8]);
        u64::from_le_bytes(b)
    }

    /// Token range of document `i` (its EOS included); `None` past the last document.
    pub fn doc_range(&self, i: u64) -> Option<std::ops::Range<u64>> {
        (i < self.header.n_docs).then(|| self.index_entry(i)..self.index_entry(i + 1))
    }

    /// Appends tokens `range` (clamped to the shard) to `out`.
    pub fn read_tokens(&self, range: std::ops::Range<u64>, out: &mut Vec<u32>) {
        let end = range.end.min(self.header.n_tokens);
        let start = range.start.min(end);
        let w = self.header.dtype.width();
        let bytes = &self.map[(HEADER_BYTES + start * w) as usize..(HEADER_BYTES + end * w) as usize];
        match self.header.dtype {
            Dtype::U16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))),
            ),
            Dtype::U32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(padded: usize) -> ShardSpec {
        ShardSpec {
            tokenizer_sha256: "ab".repeat(32),
            vocab_size: padded - 5,
            padded_vocab_size: padded,
            eos_id: 7,
            bos_id: None,
            source: "dedup/part-00000-of-00001.parquet".into(),
        }
    }

    #[test]
    fn round_trip_both_widths_and_truncation_is_caught() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| io(Path::new("tmp"), e))?;
        for padded in [512, 100_000] {
            let dest = dir.path().join(format!("s{padded}.tokens"));
            let mut w = ShardWriter::create(&dest, &dir.path().join(".tmp"), spec(padded))?;
            w.push_doc(&[1, 2, 3], 10)?;
            w.push_doc(&[], 0)?;
            w.push_doc(&[400, 5], 6)?;
            let h = w.commit()?;
            assert_eq!((h.n_docs, h.n_tokens, h.text_bytes), (3, 8, 16));
            let s = TokenShard::open(&dest)?;
            assert_eq!(s.header(), &h);
            assert_eq!(s.header().dtype, Dtype::for_vocab(padded));
            let mut all = Vec::new();
            s.read_tokens(0..u64::MAX, &mut all);
            assert_eq!(all, [1, 2, 3, 7, 7, 400, 5, 7]);
            assert_eq!(s.doc_range(1), Some(4..5));
            assert_eq!(s.doc_range(3), None);
            // A shard cut short is refused with the file named, never read past its end.
            let bytes = fs::read(&dest).map_err(|e| io(&dest, e))?;
            fs::write(&dest, &bytes[..bytes.len() - 3]).map_err(|e| io(&dest, e))?;
            let err = TokenShard::open(&dest).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains("truncated") && err.contains(&*dest.to_string_lossy()),
                "{err}"
            );
        }
        Ok(())
    }

    #[test]
    fn ids_outside_the_vocabulary_are_refused() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| io(Path::new("tmp"), e))?;
        let dest = dir.path().join("x.tokens");
        let mut w = ShardWriter::create(&dest, &dir.path().join(".tmp"), spec(512))?;
        assert!(w.push_doc(&[600], 3).is_err());
        Ok(())
    }
}
