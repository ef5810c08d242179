//! Byte-level BPE for loam: loading any HF `tokenizer.json` (the released DeepSeek LLM
//! one included) and encoding/decoding with it. Training with the DeepSeek pre-tokenizer
//! and the packed token shards the trainer memory-maps come next (issue 5).
//!
//! The `tokenizers` crate is built with its pure-Rust regex engine (`fancy-regex`), not
//! onig: on the DeepSeek pre-tokenizer both give ids identical to Python `tokenizers`
//! 0.22.2 on English, Chinese and HTML text, and fancy-regex encoded about twice as fast
//! here, with no C library to build.
use std::path::{Path, PathBuf};

/// What can go wrong loading or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("{path}: cannot load tokenizer: {why}. Give the path of a Hugging Face tokenizer.json")]
    Load { path: PathBuf, why: String },
    #[error("{path}: encoding failed: {why}")]
    Encode { path: PathBuf, why: String },
    #[error("{path}: decoding failed: {why} (are the ids from this tokenizer? its vocabulary has {vocab} entries)")]
    Decode { path: PathBuf, why: String, vocab: usize },
}

pub type Result<T, E = TokenizeError> = std::result::Result<T, E>;

/// A loaded tokenizer and the file it came from (for messages).
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    /// Cached: the crate rebuilds its whole vocabulary map to count it.
    vocab_size: usize,
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
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizeError::Load {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        let vocab_size = inner.get_vocab_size(true);
        Ok(Self {
            inner,
            path: path.to_owned(),
            vocab_size,
        })
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Token ids of `text`, without special tokens (no BOS/EOS added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
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
