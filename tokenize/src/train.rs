//! Byte-level BPE training with the `tokenizers` crate and a pre-tokenizer read from an
//! existing `tokenizer.json` (by default the released DeepSeek LLM one: newline, letter,
//! punctuation, CJK splits, single digits, then byte-level). The result is a standard HF
//! `tokenizer.json` plus a `tokenizer_config.json`, so Python `tokenizers` and
//! `transformers` load it as they would any hub tokenizer.
//!
//! Ids follow DeepSeek's layout: the ordinary BPE tokens first (the 256 byte symbols,
//! then one per merge), the special tokens after them, and the model's embedding padded
//! to a multiple (the paper: 100,000 + 15 special → 102,400).
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use crate::{Result, TokenizeError};

/// How to train a tokenizer (the `[tokenizer.bpe]` table of a run config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BpeConfig {
    /// A `tokenizer.json` whose `pre_tokenizer` is used as is; unset: the released
    /// DeepSeek LLM one, built in ([`DEEPSEEK_PRETOKENIZER`]).
    pub pretokenizer_from: Option<PathBuf>,
    /// Ordinary tokens: the 256 byte symbols plus one per merge (DeepSeek: 100,000).
    pub vocab_size: usize,
    /// A pair seen fewer times than this is never merged.
    pub min_frequency: u64,
    /// Longest token, in characters of the byte-level alphabet; `None` for no limit.
    pub max_token_length: Option<usize>,
    pub bos: String,
    pub eos: String,
    pub pad: String,
    /// Extra special tokens `<|reserved_0|>`… kept for later use (3 + 12 = the paper's 15).
    pub reserved_special: usize,
    /// The model's embedding is padded to a multiple of this (4096 gives the paper's 102,400).
    pub pad_multiple: usize,
}

impl Default for BpeConfig {
    fn default() -> Self {
        Self {
            pretokenizer_from: None,
            vocab_size: 100_000,
            min_frequency: 2,
            max_token_length: None,
            bos: "<|begin_of_text|>".into(),
            eos: "<|end_of_text|>".into(),
            pad: "<|pad|>".into(),
            reserved_special: 12,
            pad_multiple: 4096,
        }
    }
}

impl BpeConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(TokenizeError::Config(why));
        if self.vocab_size < 257 {
            return bad(format!(
                "tokenizer.bpe.vocab_size = {} is below the 256 byte symbols + 1 merge; use e.g. 8000",
                self.vocab_size
            ));
        }
        if self.pad_multiple == 0 {
            return bad("tokenizer.bpe.pad_multiple must be at least 1 (1 = no padding)".into());
        }
        let specials = self.special_tokens();
        let unique: HashSet<&String> = specials.iter().collect();
        if unique.len() != specials.len() || specials.iter().any(|s| s.is_empty()) {
            return bad("tokenizer.bpe: bos, eos and pad must be distinct, non-empty strings".into());
        }
        Ok(())
    }

    /// Special tokens in id order: BOS, EOS, PAD, then the reserved ones.
    pub fn special_tokens(&self) -> Vec<String> {
        let mut v = vec![self.bos.clone(), self.eos.clone(), self.pad.clone()];
        v.extend((0..self.reserved_special).map(|i| format!("<|reserved_{i}|>")));
        v
    }
}

/// `n` rounded up to a multiple of `multiple`.
pub fn padded(n: usize, multiple: usize) -> usize {
    n.div_ceil(multiple.max(1)) * multiple.max(1)
}

/// The `pre_tokenizer` of the released DeepSeek LLM `tokenizer.json`, extracted verbatim
/// (see `tokenize/assets/README.md`).
pub const DEEPSEEK_PRETOKENIZER: &str = include_str!("../assets/deepseek-llm-pretokenizer.json");

impl BpeConfig {
    /// The bytes of the file the pre-tokenizer is read from (the built-in one if unset).
    pub fn pretokenizer_source(&self) -> Result<Vec<u8>> {
        match &self.pretokenizer_from {
            None => Ok(DEEPSEEK_PRETOKENIZER.as_bytes().to_vec()),
            Some(p) => std::fs::read(p).map_err(|e| TokenizeError::Load {
                path: p.clone(),
                why: format!("{e} (tokenizer.bpe.pretokenizer_from)"),
            }),
        }
    }

    /// The configured pre-tokenizer.
    pub fn pretokenizer(&self) -> Result<PreTokenizerWrapper> {
        let origin = self
            .pretokenizer_from
            .clone()
            .unwrap_or_else(|| PathBuf::from("<built-in DeepSeek LLM pre-tokenizer>"));
        parse_pretokenizer(&self.pretokenizer_source()?, &origin)
    }
}

/// Reads the `pre_tokenizer` of a `tokenizer.json` (a whole tokenizer file, or an excerpt
/// holding at least that key).
pub fn load_pretokenizer(path: &Path) -> Result<PreTokenizerWrapper> {
    let bytes = std::fs::read(path).map_err(|e| TokenizeError::Load {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    parse_pretokenizer(&bytes, path)
}

fn parse_pretokenizer(bytes: &[u8], path: &Path) -> Result<PreTokenizerWrapper> {
    let bad = |why: String| TokenizeError::Load {
        path: path.to_owned(),
        why,
    };
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let pre = json
        .get("pre_tokenizer")
        .filter(|p| !p.is_null())
        .ok_or_else(|| bad("it has no `pre_tokenizer`".into()))?;
    serde_json::from_value(pre.clone()).map_err(|e| bad(format!("its pre_tokenizer is not one tokenizers knows: {e}")))
}

/// A trained tokenizer, serialised.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The HF `tokenizer.json`.
    pub tokenizer_json: String,
    /// The `tokenizer_config.json` `transformers` reads beside it.
    pub tokenizer_config_json: String,
    /// Ordinary tokens learned (at most `vocab_size`: fewer when the sample runs out of
    /// pairs seen `min_frequency` times).
    pub ordinary_tokens: usize,
    pub merges: usize,
    /// Ordinary + special tokens.
    pub vocab_size: usize,
    /// Embedding rows the model needs: `vocab_size` padded to `pad_multiple`.
    pub padded_vocab_size: usize,
    pub bos_id: u32,
    pub eos_id: u32,
    pub pad_id: u32,
}

/// Trains on `sequences` (one document or line each). Deterministic: the crate counts
/// pre-tokens in parallel but sums them, and breaks ties between equally frequent pairs by
/// symbol id, with the alphabet sorted.
pub fn train<I, S>(cfg: &BpeConfig, sequences: I) -> Result<Trained>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    train_with(cfg, |tk, trainer| tk.train(trainer, sequences).map(|_| ()))
}

/// Trains on text files, line by line (the Python trainer's `train(files)`).
pub fn train_from_files(cfg: &BpeConfig, files: &[PathBuf]) -> Result<Trained> {
    let names = files.iter().map(|p| p.display().to_string()).collect();
    train_with(cfg, |tk, trainer| tk.train_from_files(trainer, names).map(|_| ()))
}

fn train_with(
    cfg: &BpeConfig,
    feed: impl FnOnce(&mut tokenizers::Tokenizer, &mut TrainerWrapper) -> tokenizers::Result<()>,
) -> Result<Trained> {
    cfg.validate()?;
    let pre = cfg.pretokenizer()?;
    let mut tk = tokenizers::Tokenizer::new(BPE::default());
    tk.with_pre_tokenizer(Some(pre));
    // Byte-level decoding and post-processing as in the DeepSeek file: decode maps the
    // byte symbols back to bytes; offsets are trimmed of the leading space.
    tk.with_decoder(Some(ByteLevel::new(true, true, true)));
    tk.with_post_processor(Some(ByteLevel::new(true, false, true)));
    let mut b = BpeTrainerBuilder::new()
        .vocab_size(cfg.vocab_size)
        .min_frequency(cfg.min_frequency)
        .show_progress(false)
        // Every byte is a symbol even if the sample lacks it, so no input is unencodable.
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect());
    if let Some(n) = cfg.max_token_length {
        b = b.max_token_length(Some(n));
    }
    let mut trainer: TrainerWrapper = b.build().into();
    feed(&mut tk, &mut trainer).map_err(|e| TokenizeError::Train(e.to_string()))?;
    let ordinary = tk.get_vocab_size(false);
    let specials: Vec<AddedToken> = cfg
        .special_tokens()
        .into_iter()
        .map(|s| AddedToken::from(s, true))
        .collect();
    tk.add_special_tokens(&specials);
    let id = |s: &str| {
        tk.token_to_id(s)
            .ok_or_else(|| TokenizeError::Train(format!("special token {s} was not added")))
    };
    let (bos_id, eos_id, pad_id) = (id(&cfg.bos)?, id(&cfg.eos)?, id(&cfg.pad)?);
    let vocab_size = tk.get_vocab_size(true);
    let tokenizer_json = tk.to_string(false).map_err(|e| TokenizeError::Train(e.to_string()))?;
    let tokenizer_config_json = serde_json::to_string_pretty(&serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": cfg.bos, "eos_token": cfg.eos, "pad_token": cfg.pad,
        "add_bos_token": false, "add_eos_token": false,
        "clean_up_tokenization_spaces": false,
        "model_max_length": 1_000_000_000_000_000_000u64,
    }))
    .map_err(|e| TokenizeError::Train(e.to_string()))?;
    Ok(Trained {
        tokenizer_json,
        tokenizer_config_json,
        ordinary_tokens: ordinary,
        merges: ordinary.saturating_sub(256),
        vocab_size,
        padded_vocab_size: padded(vocab_size, cfg.pad_multiple),
        bos_id,
        eos_id,
        pad_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_padding() {
        assert_eq!(padded(100_000 + 15, 4096), 102_400);
        assert_eq!(padded(8192, 128), 8192);
        assert_eq!(padded(8003, 128), 8064);
    }
}
