//! What dedup hashes: normalised text for exact matches, word n-gram shingles for MinHash
//! and normalised lines for string-level dedup. One normaliser serves all three so a
//! line removed in `apply` is the line counted in `cluster`.
use serde::{Deserialize, Serialize};
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// How text is normalised before exact and line hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Normalize {
    /// Unicode NFC, so composed and decomposed accents hash alike.
    pub nfc: bool,
    pub lowercase: bool,
    /// Runs of whitespace become one space; leading and trailing whitespace goes.
    pub collapse_whitespace: bool,
}

impl Default for Normalize {
    fn default() -> Self {
        Self {
            nfc: true,
            lowercase: true,
            collapse_whitespace: true,
        }
    }
}

impl Normalize {
    /// Writes the normalised form of `s` into `out` (cleared first).
    pub fn apply(&self, s: &str, out: &mut String) {
        out.clear();
        if self.nfc && is_nfc_quick(s.chars()) != IsNormalized::Yes {
            let composed: String = s.nfc().collect();
            self.fold(&composed, out);
        } else {
            self.fold(s, out);
        }
    }

    fn fold(&self, s: &str, out: &mut String) {
        let mut pending_space = false;
        for c in s.chars() {
            if self.collapse_whitespace && c.is_whitespace() {
                pending_space = !out.is_empty();
                continue;
            }
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            if self.lowercase && !c.is_lowercase() && c.is_alphabetic() {
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
        }
    }

    /// xxh3-128 of the normalised text.
    pub fn exact_hash(&self, text: &str, buf: &mut String) -> u128 {
        self.apply(text, buf);
        xxh3_128(buf.as_bytes())
    }

    /// Hash of one line for string-level dedup; `None` for a line that is blank once
    /// normalised (blank lines are layout, never boilerplate to remove).
    pub fn line_hash(&self, line: &str, buf: &mut String) -> Option<u64> {
        self.apply(line, buf);
        let t = buf.trim();
        (!t.is_empty()).then(|| xxh3_64(t.as_bytes()))
    }

    /// Distinct line hashes of `text`, sorted: a line counts once per document.
    pub fn line_hashes(&self, text: &str, buf: &mut String, out: &mut Vec<u64>) {
        out.clear();
        out.extend(text.lines().filter_map(|l| self.line_hash(l, buf)));
        out.sort_unstable();
        out.dedup();
    }
}

/// Han, Kana, Hangul and other scripts written without spaces: each character is a word,
/// as in the filter stage's rules, so Chinese text still yields n-gram shingles.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF | 0x3040..=0x30FF | 0x3100..=0x312F | 0x3190..=0x31FF
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F | 0x0E00..=0x0E7F)
}

/// Lower-cased words of `text` joined by single spaces into `buf`, with the byte span of
/// each word in `spans`. Words are runs of letters, digits and marks; punctuation and
/// whitespace only separate them (so "word," and "word" shingle alike, as datatrove's
/// `simplify_text` intends).
pub fn words(text: &str, buf: &mut String, spans: &mut Vec<(u32, u32)>) {
    buf.clear();
    spans.clear();
    let mut start: Option<usize> = None;
    let close = |buf: &mut String, spans: &mut Vec<(u32, u32)>, start: &mut Option<usize>| {
        if let Some(s) = start.take() {
            spans.push((s as u32, buf.len() as u32));
        }
    };
    for c in text.chars() {
        if is_unspaced(c) {
            close(buf, spans, &mut start);
            if !buf.is_empty() {
                buf.push(' ');
            }
            let s = buf.len();
            buf.push(c);
            spans.push((s as u32, buf.len() as u32));
        } else if c.is_alphanumeric() || (start.is_some() && is_mark(c)) {
            if start.is_none() {
                if !buf.is_empty() {
                    buf.push(' ');
                }
                start = Some(buf.len());
            }
            if c.is_uppercase() {
                buf.extend(c.to_lowercase());
            } else {
                buf.push(c);
            }
        } else {
            close(buf, spans, &mut start);
        }
    }
    close(buf, spans, &mut start);
}

/// Combining marks continue a word (Devanagari vowel signs, Arabic harakat...).
fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05C7 | 0x0610..=0x061A
        | 0x064B..=0x065F | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0951..=0x0957 | 0x0962..=0x0963
        | 0x0981..=0x0983 | 0x09BC..=0x09D7 | 0x0E31..=0x0E3A | 0x0E47..=0x0E4E)
}

/// Calls `f` with the xxh3-64 of every word `n`-gram (words joined by one space). A text
/// of fewer than `n` words (but at least one) is one shingle, as in datatrove; a text
/// without words has none.
pub fn for_each_shingle(buf: &str, spans: &[(u32, u32)], n: usize, mut f: impl FnMut(u64)) {
    if spans.is_empty() || n == 0 {
        return;
    }
    let bytes = buf.as_bytes();
    if spans.len() < n {
        f(xxh3_64(bytes));
        return;
    }
    for w in spans.windows(n) {
        f(xxh3_64(&bytes[w[0].0 as usize..w[n - 1].1 as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_folds_case_space_and_composition() {
        let n = Normalize::default();
        let (mut a, mut b) = (String::new(), String::new());
        // "é" precomposed vs e + combining acute; tabs and double spaces.
        n.apply("  Caf\u{e9}\tAU  lait \n", &mut a);
        n.apply("cafe\u{301} au lait", &mut b);
        assert_eq!(a, "café au lait");
        assert_eq!(a, b);
        let raw = Normalize {
            nfc: false,
            lowercase: false,
            collapse_whitespace: false,
        };
        raw.apply("A  b", &mut a);
        assert_eq!(a, "A  b");
    }

    #[test]
    fn words_split_on_punctuation_and_cjk_characters() {
        let (mut buf, mut spans) = (String::new(), Vec::new());
        words("Hello, World! It's 2024 — 我们是人", &mut buf, &mut spans);
        assert_eq!(buf, "hello world it s 2024 我 们 是 人");
        let w: Vec<&str> = spans.iter().map(|&(s, e)| &buf[s as usize..e as usize]).collect();
        assert_eq!(w, ["hello", "world", "it", "s", "2024", "我", "们", "是", "人"]);
    }

    #[test]
    fn shingles_are_word_ngrams() {
        let (mut buf, mut spans) = (String::new(), Vec::new());
        words("a b c d e f", &mut buf, &mut spans);
        let mut got = Vec::new();
        for_each_shingle(&buf, &spans, 5, |h| got.push(h));
        assert_eq!(got, [xxh3_64(b"a b c d e"), xxh3_64(b"b c d e f")]);
        got.clear();
        words("only three words", &mut buf, &mut spans);
        for_each_shingle(&buf, &spans, 5, |h| got.push(h));
        assert_eq!(got, [xxh3_64(b"only three words")]);
        got.clear();
        words(" ... ", &mut buf, &mut spans);
        for_each_shingle(&buf, &spans, 5, |h| got.push(h));
        assert!(got.is_empty());
    }

    #[test]
    fn line_hashes_skip_blank_lines_and_repeat_once() {
        let n = Normalize::default();
        let (mut buf, mut out) = (String::new(), Vec::new());
        n.line_hashes("Home\n\n  home \nAbout us\n\t\n", &mut buf, &mut out);
        assert_eq!(out.len(), 2);
    }
}
