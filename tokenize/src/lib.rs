//! Byte-level BPE for loam: loading any HF `tokenizer.json` (the released DeepSeek LLM
//! one included) and encoding/decoding with it; training with a pre-tokenizer read from
//! such a file ([`train`]); the packed token shards the trainer memory-maps ([`shards`]).
//!
//! The `tokenizers` crate is built with its pure-Rust regex engine (`fancy-regex`), not
//! onig: on the DeepSeek pre-tokenizer both give ids identical to Python `tokenizers`
//! 0.22.2 on English, Chinese and HTML text, and fancy-regex encoded about twice as fast
//! here, with no C library to build.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenizers::PreTokenizer;

mod fast;
pub mod shards;
pub mod train;

/// What can go wrong loading or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("{path}: cannot load tokenizer: {why}. Give the path of a Hugging Face tokenizer.json")]
    Load { path: PathBuf, why: String },
    #[error("{path}: encoding failed: {why}")]
    Encode { path: PathBuf, why: String },
    #[error("{path}: decoding failed: {why} (are the ids from this tokenizer? its vocabulary has {vocab} entries)")]
    Decode { path: PathBuf, why: String, vocab: usize },
    #[error("{0}")]
    Config(String),
    #[error("tokenizer training failed: {0}")]
    Train(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: bad token shard: {why}")]
    BadShard { path: PathBuf, why: String },
}

pub type Result<T, E = TokenizeError> = std::result::Result<T, E>;

/// A loaded tokenizer and the file it came from (for messages).
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    /// Cached: the crate rebuilds its whole vocabulary map to count it.
    vocab_size: usize,
    sha256: String,
    /// The fast path, when the tokenizer's shape allows it (see `fast`).
    fast: Option<fast::FastEncoder>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TokenizeError::Load {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| TokenizeError::Load {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        let vocab_size = inner.get_vocab_size(true);
        let fast = serde_json::from_slice(&bytes)
            .ok()
            .and_then(|j| fast::FastEncoder::from_json(&j));
        Ok(Self {
            inner,
            path: path.to_owned(),
            vocab_size,
            sha256: sha256_hex(&bytes),
            fast,
        })
    }

    /// SHA-256 (hex) of the `tokenizer.json` bytes: the name token shards record.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Id of a token (e.g. a special token's string), if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Byte ranges of `text` that the pre-tokenizer cuts it into (no BPE merge ever
    /// crosses one of these boundaries).
    pub fn pre_token_spans(&self, text: &str) -> Result<Vec<std::ops::Range<usize>>> {
        let Some(pre) = self.inner.get_pre_tokenizer() else {
            return Ok(std::iter::once(0..text.len()).collect());
        };
        let mut p = tokenizers::PreTokenizedString::from(text);
        pre.pre_tokenize(&mut p).map_err(|e| TokenizeError::Encode {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        Ok(
            p.get_splits(tokenizers::OffsetReferential::Original, tokenizers::OffsetType::Byte)
                .into_iter()
                .map(|(_, (a, b), _)| a..b)
                .collect(),
        )
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Token ids of `text`, without special tokens (no BOS/EOS added). Added tokens that
    /// occur in the text (e.g. a literal EOS string) become their ids, as in `tokenizers`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.fast {
            Some(f) => Ok(f.encode(text)),
            None => self.encode_reference(text),
        }
    }

    /// Whether [`encode`](Self::encode) takes loam's fast path for this tokenizer.
    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Ids from the `tokenizers` crate itself: the reference the fast path must equal.
    pub fn encode_reference(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizeError::Encode {
                path: self.path.clone(),
                why: e.to_string(),
            })
    }

    /// The text of `ids` (special tokens kept, so decode(encode(t)) == t).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.vocab_size) {
            return Err(TokenizeError::Decode {
                path: self.path.clone(),
                why: format!("id {bad} is out of range"),
                vocab: self.vocab_size(),
            });
        }
        self.inner.decode(ids, false).map_err(|e| TokenizeError::Decode {
            path: self.path.clone(),
            why: e.to_string(),
            vocab: self.vocab_size(),
        })
    }
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Lets the `tokenizers` crate use its thread pool in training (or not: `--threads 1`).
/// Results are the same either way.
pub fn set_parallel(enabled: bool) {
    tokenizers::utils::parallelism::set_parallelism(enabled);
}
