//! loam's fast encoder against the `tokenizers` crate (the reference) on real text in many
//! scripts, with the released DeepSeek LLM tokenizer and one loam trains: identical ids
//! for every document, whole and in random windows (windows cut words, digits, CJK runs
//! and special-token strings at arbitrary points).
use std::path::{Path, PathBuf};

use loam_tokenize::train::{train, BpeConfig};
use loam_tokenize::Tokenizer;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

fn texts() -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        "text/sotu",
        "text/moby-dick",
        "text/udhr",
        "html/debian-handbook/zh-CN",
        "html/debian-handbook/ja-JP",
        "html/debian-handbook/ru-RU",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(shared(dir))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        // Every 7th file keeps the test quick while covering each script of the UDHR set.
        for f in files.iter().step_by(7) {
            if let Ok(t) = std::fs::read_to_string(f) {
                out.push(t);
            }
        }
    }
    let gz = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(shared("text/chinese-poetry/poems-40k.jsonl.gz"))
        .output()
        .expect("gzip runs");
    out.extend(
        String::from_utf8_lossy(&gz.stdout)
            .lines()
            .take(2000)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["text"].as_str().map(str::to_owned)),
    );
    // Edge cases: special-token strings inside text, long runs, lone digits and spaces.
    out.push("a<｜end▁of▁sentence｜>b <|end_of_text|><|pad|>x\u{3000}y 12\u{0663}4  \r\n\t".into());
    out.push(" ".repeat(5000) + &"ab".repeat(3000) + &"漢".repeat(700));
    out.push(String::new());
    out
}

fn check(tok: &Tokenizer, texts: &[String]) -> Result<usize, Box<dyn std::error::Error>> {
    assert!(
        tok.has_fast_path(),
        "{}: the fast path must apply",
        tok.path().display()
    );
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut checked = 0;
    for (n, t) in texts.iter().enumerate() {
        assert_eq!(
            tok.encode(t)?,
            tok.encode_reference(t)?,
            "document {n} of {}",
            tok.path().display()
        );
        checked += 1;
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut a = (state as usize) % t.len().max(1);
            let mut b = (a + 1 + (state >> 40) as usize % 200).min(t.len());
            while !t.is_char_boundary(a) {
                a -= 1;
            }
            while !t.is_char_boundary(b) {
                b += 1;
            }
            let w = &t[a..b];
            assert_eq!(
                tok.encode(w)?,
                tok.encode_reference(w)?,
                "window {a}..{b} of document {n}: {w:?}"
            );
            checked += 1;
        }
    }
    Ok(checked)
}

#[test]
fn fast_path_equals_the_crate_on_the_deepseek_tokenizer() -> Result<(), Box<dyn std::error::Error>> {
    let tok = Tokenizer::load(&shared("tokenizers/deepseek-llm/tokenizer.json"))?;
    let n = check(&tok, &texts())?;
    assert!(n > 5000, "{n}");
    Ok(())
}

#[test]
fn fast_path_equals_the_crate_on_a_trained_tokenizer() -> Result<(), Box<dyn std::error::Error>> {
    let texts = texts();
    let trained = train(
        &BpeConfig {
            vocab_size: 3000,
            ..BpeConfig::default()
        },
        texts.iter().step_by(3),
    )?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, &trained.tokenizer_json)?;
    check(&Tokenizer::load(&path)?, &texts)?;
    Ok(())
}

#[test]
fn unsupported_shapes_fall_back_to_the_crate() -> Result<(), Box<dyn std::error::Error>> {
    // A normalizer the fast path does not implement: loam must use the crate, not guess.
    let mut j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared("tokenizers/deepseek-llm/tokenizer.json"))?)?;
    j["normalizer"] = serde_json::json!({"type": "Lowercase"});
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, serde_json::to_vec(&j)?)?;
    let tok = Tokenizer::load(&path)?;
    assert!(!tok.has_fast_path());
    assert_eq!(tok.encode("Hello World")?, tok.encode_reference("hello world")?);
    Ok(())
}
