//! Training on real text (Moby-Dick, ../shared/data): the pre-tokenizer is DeepSeek's,
//! read from its tokenizer.json; training is deterministic; the result round-trips.
use std::path::{Path, PathBuf};

use loam_tokenize::train::{train, BpeConfig};
use loam_tokenize::Tokenizer;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

fn moby() -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared("text/moby-dick"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
}

fn cfg(vocab: usize) -> BpeConfig {
    BpeConfig {
        pretokenizer_from: Some(shared("tokenizers/deepseek-llm/tokenizer.json")),
        vocab_size: vocab,
        ..BpeConfig::default()
    }
}

#[test]
fn trained_tokenizer_is_deterministic_and_round_trips() -> Result<(), Box<dyn std::error::Error>> {
    let docs = moby();
    assert!(docs.len() > 100, "Moby-Dick chapters not found under ../shared/data");
    let a = train(&cfg(2000), docs.iter())?;
    let b = train(&cfg(2000), docs.iter())?;
    assert_eq!(a.tokenizer_json, b.tokenizer_json, "training must be deterministic");
    assert_eq!(a.ordinary_tokens, 2000);
    assert_eq!((a.bos_id, a.eos_id, a.pad_id), (2000, 2001, 2002));
    assert_eq!(a.vocab_size, 2015);
    assert_eq!(a.padded_vocab_size, 4096);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, &a.tokenizer_json)?;
    let tok = Tokenizer::load(&path)?;
    let text = "Call me Ishmael. In 1851, 12 whales — 捕鯨 — swam\n\nby.";
    let ids = tok.encode(text)?;
    assert_eq!(tok.decode(&ids)?, text);
    // The text compresses: far fewer tokens than bytes on text like the training sample.
    let chapter = &docs[10];
    let n = tok.encode(chapter)?.len();
    assert!(
        (n as f64) < chapter.len() as f64 / 2.5,
        "{n} tokens for {} bytes",
        chapter.len()
    );
    Ok(())
}

#[test]
fn built_in_pretokenizer_is_the_released_deepseek_one() -> Result<(), Box<dyn std::error::Error>> {
    let released: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared("tokenizers/deepseek-llm/tokenizer.json"))?)?;
    let built_in: serde_json::Value = serde_json::from_str(loam_tokenize::train::DEEPSEEK_PRETOKENIZER)?;
    assert_eq!(built_in["pre_tokenizer"], released["pre_tokenizer"]);
    // And training with it (no file given) gives the same tokenizer as with the file.
    let docs = moby();
    let from_file = train(&cfg(600), docs.iter().take(20))?;
    let default = train(
        &BpeConfig {
            vocab_size: 600,
            ..BpeConfig::default()
        },
        docs.iter().take(20),
    )?;
    assert_eq!(from_file.tokenizer_json, default.tokenizer_json);
    Ok(())
}
