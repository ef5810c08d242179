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
    /// Writes the normalised form of `s` into `out` (cleared first) as UTF-8 bytes.
    pub fn apply(&self, s: &str, out: &mut Vec<u8>) {
        out.clear();
        if self.nfc && !s.is_ascii() && is_nfc_quick(s.chars()) != IsNormalized::Yes {
            let composed: String = s.nfc().collect();
            self.fold(&composed, out);
        } else {
            self.fold(s, out);
        }
    }

    fn fold(&self, s: &str, out: &mut Vec<u8>) {
        let mut pending_space = false;
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                // ASCII fast path, a run at a time: most web text is ASCII, and per-char
                // decoding dominated this step.
                if self.collapse_whitespace && ASCII_SPACE[b as usize] {
                    pending_space = !out.is_empty();
                    i += 1;
                    continue;
                }
                let start = i;
                while i < bytes.len()
                    && bytes[i] < 0x80
                    && !(self.collapse_whitespace && ASCII_SPACE[bytes[i] as usize])
                {
                    i += 1;
                }
                if pending_space {
                    out.push(b' ');
                    pending_space = false;
                }
                let at = out.len();
                out.extend_from_slice(&bytes[start..i]);
                if self.lowercase {
                    out[at..].make_ascii_lowercase();
                }
                continue;
            }
            let c = s[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
            let len = c.len_utf8();
            i += len;
            if self.collapse_whitespace && c.is_whitespace() {
                pending_space = !out.is_empty();
                continue;
            }
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            if self.lowercase && c.is_uppercase() {
                let mut tmp = [0u8; 4];
                for l in c.to_lowercase() {
                    out.extend_from_slice(l.encode_utf8(&mut tmp).as_bytes());
                }
            } else {
                out.extend_from_slice(&bytes[i - len..i]);
            }
        }
    }

    /// xxh3-128 of the normalised text.
    pub fn exact_hash(&self, text: &str, buf: &mut Vec<u8>) -> u128 {
        self.apply(text, buf);
        xxh3_128(buf)
    }

    /// Hash of one line for string-level dedup; `None` for a line that is blank once
    /// normalised (blank lines are layout, never boilerplate to remove).
    pub fn line_hash(&self, line: &str, buf: &mut Vec<u8>) -> Option<u64> {
        self.apply(line, buf);
        let t = buf.trim_ascii();
        (!t.is_empty()).then(|| xxh3_64(t))
    }

    /// Distinct hashes of `text`'s units (lines or paragraphs), sorted: a unit counts once
    /// per document.
    pub fn unit_hashes(&self, text: &str, unit: Unit, buf: &mut Vec<u8>, out: &mut Vec<u64>) {
        out.clear();
        for (content, _) in segments(text, unit) {
            if let Some(h) = self.line_hash(content, buf) {
                out.push(h);
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// What string-level dedup counts and removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Each line (CCNet's unit).
    Line,
    /// Blocks of lines separated by blank lines.
    Paragraph,
}

/// `text` cut into units: `(content, full)` where `full` is the exact slice the unit
/// occupies (with its line ends, and for a paragraph the blank lines after it), so the
/// text is the concatenation of the `full` slices and removing a unit removes `full`.
pub fn segments(text: &str, unit: Unit) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    match unit {
        Unit::Line => {
            for l in text.split_inclusive('\n') {
                out.push((l.trim_end_matches(['\r', '\n']), l));
            }
        }
        Unit::Paragraph => {
            // [start, content_end, end) per paragraph, in bytes.
            let (mut start, mut content_end, mut at) = (0usize, None::<usize>, 0usize);
            for l in text.split_inclusive('\n') {
                let blank = l.trim().is_empty();
                if blank {
                    if content_end.is_none() && at > start {
                        content_end = Some(at);
                    }
                } else if let Some(ce) = content_end {
                    out.push((&text[start..ce], &text[start..at]));
                    start = at;
                    content_end = None;
                }
                at += l.len();
            }
            if at > start {
                let ce = content_end.unwrap_or(at);
                out.push((&text[start..ce], &text[start..at]));
            }
        }
    }
    out
}

/// ASCII bytes `char::is_whitespace` accepts: tab, LF, VT, FF, CR, space.
const ASCII_SPACE: [bool; 128] = {
    let mut t = [false; 128];
    t[9] = true;
    t[10] = true;
    t[11] = true;
    t[12] = true;
    t[13] = true;
    t[32] = true;
    t
};

/// Han, Kana, Hangul and other scripts written without spaces: each character is a word,
/// as in the filter stage's rules, so Chinese text still yields n-gram shingles.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF | 0x3040..=0x30FF | 0x3100..=0x312F | 0x3190..=0x31FF
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F | 0x0E00..=0x0E7F)
}

/// Lower-cased words of `text` joined by single spaces into `buf` (UTF-8), with the
/// byte span of each word in `spans`. Words are runs of letters, digits and marks;
/// punctuation and whitespace only separate them (so "word," and "word" shingle alike,
/// as datatrove's `simplify_text` intends).
pub fn words(text: &str, buf: &mut Vec<u8>, spans: &mut Vec<(u32, u32)>) {
    buf.clear();
    spans.clear();
    let mut start: Option<usize> = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut tmp = [0u8; 4];
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            // ASCII fast path, a run of letters and digits at a time.
            if !b.is_ascii_alphanumeric() {
                if let Some(s) = start.take() {
                    spans.push((s as u32, buf.len() as u32));
                }
                i += 1;
                continue;
            }
            let from = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if start.is_none() {
                if !buf.is_empty() {
                    buf.push(b' ');
                }
                start = Some(buf.len());
            }
            let at = buf.len();
            buf.extend_from_slice(&bytes[from..i]);
            buf[at..].make_ascii_lowercase();
            continue;
        }
        let c = text[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
        i += c.len_utf8();
        if is_unspaced(c) {
            if let Some(s) = start.take() {
                spans.push((s as u32, buf.len() as u32));
            }
            if !buf.is_empty() {
                buf.push(b' ');
            }
            let s = buf.len();
            buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            spans.push((s as u32, buf.len() as u32));
        } else if c.is_alphanumeric() || (start.is_some() && is_mark(c)) {
            if start.is_none() {
                if !buf.is_empty() {
                    buf.push(b' ');
                }
                start = Some(buf.len());
            }
            if c.is_uppercase() {
                for l in c.to_lowercase() {
                    buf.extend_from_slice(l.encode_utf8(&mut tmp).as_bytes());
                }
            } else {
                buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        } else if let Some(s) = start.take() {
            spans.push((s as u32, buf.len() as u32));
        }
    }
    if let Some(s) = start {
        spans.push((s as u32, buf.len() as u32));
    }
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
pub fn for_each_shingle(bytes: &[u8], spans: &[(u32, u32)], n: usize, mut f: impl FnMut(u64)) {
    if spans.is_empty() || n == 0 {
        return;
    }
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
        let (mut a, mut b) = (Vec::new(), Vec::new());
        // "é" precomposed vs e + combining acute; tabs and double spaces.
        n.apply("  Caf\u{e9}\tAU  lait \n", &mut a);
        n.apply("cafe\u{301} au lait", &mut b);
        assert_eq!(a, "café au lait".as_bytes());
        assert_eq!(a, b);
        let raw = Normalize {
            nfc: false,
            lowercase: false,
            collapse_whitespace: false,
        };
        raw.apply("A  b", &mut a);
        assert_eq!(a, b"A  b");
    }

    #[test]
    fn words_split_on_punctuation_and_cjk_characters() {
        let (mut buf, mut spans) = (Vec::new(), Vec::new());
        words("Hello, World! It's 2024 — 我们是人 ÉTÉ", &mut buf, &mut spans);
        let buf = String::from_utf8(buf).unwrap_or_default();
        assert_eq!(buf, "hello world it s 2024 我 们 是 人 été");
        let w: Vec<&str> = spans.iter().map(|&(s, e)| &buf[s as usize..e as usize]).collect();
        assert_eq!(w, ["hello", "world", "it", "s", "2024", "我", "们", "是", "人", "été"]);
    }

    #[test]
    fn shingles_are_word_ngrams() {
        let (mut buf, mut spans) = (Vec::new(), Vec::new());
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
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        n.unit_hashes("Home\n\n  home \nAbout us\n\t\n", Unit::Line, &mut buf, &mut out);
        assert_eq!(out.len(), 2);
        n.unit_hashes("Home\n\n  home \nAbout us\n\t\n", Unit::Paragraph, &mut buf, &mut out);
        assert_eq!(out.len(), 2, "`Home` and `home / About us`");
    }

    #[test]
    fn segments_cover_the_text_exactly() {
        let t = "Title\n\nFirst para\nstill first\n\n\nSecond\r\nend";
        for unit in [Unit::Line, Unit::Paragraph] {
            let segs = segments(t, unit);
            assert_eq!(segs.iter().map(|s| s.1).collect::<String>(), t);
        }
        let p: Vec<&str> = segments(t, Unit::Paragraph).iter().map(|s| s.0).collect();
        assert_eq!(p, ["Title\n", "First para\nstill first\n", "Second\r\nend"]);
    }
}
