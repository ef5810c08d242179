//! `loam tokenizer encode/decode` with the released DeepSeek LLM tokenizer.json: ids
//! identical to Python `tokenizers` on real English, Chinese, code-like and number-heavy
//! text from ../shared/data, and decoding gives the bytes back.
mod common;
use common::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn deepseek() -> PathBuf {
    shared().join("tokenizers/deepseek-llm/tokenizer.json")
}

fn pipe(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = loam()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(input).expect("write");
    child.wait_with_output().expect("wait")
}

fn python_ids(tokenizer: &Path, text_file: &Path) -> Vec<u32> {
    let script = "import json, sys, tokenizers; t = tokenizers.Tokenizer.from_file(sys.argv[1]); \
                  print(json.dumps(t.encode(open(sys.argv[2], encoding='utf-8').read(), add_special_tokens=False).ids))";
    let o = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(tokenizer)
        .arg(text_file)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "Python tokenizers (pip install tokenizers==0.22.2; .ci/run does): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("ids")
}

fn texts() -> Vec<(&'static str, String)> {
    let read = |p: &str| std::fs::read_to_string(shared().join(p)).expect("shared data");
    let english = read("text/sotu/2015_barack_obama_d.txt") + &read("text/moby-dick/chapter_1.txt");
    let mut chinese = String::new();
    let poems = std::process::Command::new("gzip")
        .args(["-dc"])
        .arg(shared().join("text/chinese-poetry/poems-40k.jsonl.gz"))
        .output()
        .expect("gzip");
    for line in String::from_utf8_lossy(&poems.stdout).lines().take(300) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        chinese += v["text"].as_str().unwrap_or_default();
        chinese.push('\n');
    }
    let code = read("html/debian-handbook/en-US/apt.html");
    let numbers: String = std::fs::read_dir(shared().join("text/sotu"))
        .expect("sotu")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("19"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.chars().filter(char::is_ascii_digit).count() >= 6)
                .map(|l| format!("{l}\n"))
                .collect::<Vec<_>>()
        })
        .collect();
    vec![
        ("english", english),
        ("chinese", chinese),
        ("code", code),
        ("numbers", numbers),
    ]
}

#[test]
fn deepseek_tokenizer_matches_python_and_round_trips() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let tok = deepseek();
    let tok_s = tok.to_str().ok_or("path")?;
    for (name, text) in texts() {
        assert!(text.len() > 5_000, "{name}: {} bytes of real text", text.len());
        let file = tmp.path().join(format!("{name}.txt"));
        std::fs::write(&file, &text)?;
        let o = pipe(&["tokenizer", "encode", "--tokenizer", tok_s], text.as_bytes());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ids: Vec<u32> = serde_json::from_slice(&o.stdout)?;
        assert_eq!(
            ids,
            python_ids(&tok, &file),
            "{name}: loam and Python tokenizers disagree"
        );
        let o = pipe(&["tokenizer", "decode", "--tokenizer", tok_s], &o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout == text.as_bytes(), "{name}: decode(encode(text)) != text");
    }
    Ok(())
}

#[test]
fn bad_tokenizer_file_or_ids_fail_clearly() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let bogus = tmp.path().join("tokenizer.json");
    std::fs::write(&bogus, "{\"not\": \"a tokenizer\"}")?;
    let o = pipe(
        &["tokenizer", "encode", "--tokenizer", bogus.to_str().ok_or("path")?],
        b"hi",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("tokenizer.json"), "{}", stderr(&o));
    let tok = deepseek();
    let o = pipe(
        &["tokenizer", "decode", "--tokenizer", tok.to_str().ok_or("path")?],
        b"[1, 2, 9999999]",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("9999999"), "{}", stderr(&o));
    let o = pipe(
        &["tokenizer", "decode", "--tokenizer", tok.to_str().ok_or("path")?],
        b"not json",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("JSON array"), "{}", stderr(&o));
    Ok(())
}
