//! C4 quality (Raffel et al. 2020, as datatrove implements it), line level.
//!
//! **What it does**: removes lines with a word over 1,000 characters, strips citation
//! marks, removes lines without terminal punctuation (off by default, as FineWeb runs
//! it), lines under 3 words, lines mentioning "javascript" and cookie/policy lines;
//! drops the document for "lorem ipsum", a `{`, or fewer than 5 sentences left.
//! **Edits**: the kept lines become the new text; [`TextDoc::lines_removed`] and
//! [`TextDoc::edited`] record it.
//! **Per language**: Chinese lines end in `。！？`; those count as terminal punctuation,
//! and a line's words are its characters (so "3 words" means 3 characters).
use serde::{Deserialize, Serialize};

use super::{py_space, py_splitlines, Rule, TextDoc, Verdict};
use crate::words::{count_sentences_in, words, WordMode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C4Config {
    pub enabled: bool,
    pub remove_citations: bool,
    pub filter_no_terminal_punct: bool,
    /// 0 turns it off.
    pub min_num_sentences: u64,
    pub min_words_per_line: u64,
    pub max_word_length: u64,
    pub filter_lorem_ipsum: bool,
    pub filter_javascript: bool,
    pub filter_curly_bracket: bool,
    pub filter_policy: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        Self {
            enabled: true,
            remove_citations: true,
            filter_no_terminal_punct: false,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

const POLICY: &[&str] = &[
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// Removes `[12]`, `[]`, `[edit]` and `[citation needed]` (datatrove's CITATION_REGEX).
fn strip_citations(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let digits = tail[1..].bytes().take_while(u8::is_ascii_digit).count();
        let skip = if tail[1 + digits..].starts_with(']') {
            2 + digits
        } else if tail.starts_with("[edit]") {
            6
        } else if tail.starts_with("[citation needed]") {
            17
        } else {
            0
        };
        if skip == 0 {
            out.push('[');
            rest = &tail[1..];
        } else {
            rest = &tail[skip..];
        }
    }
    out.push_str(rest);
    out
}

pub struct C4Quality {
    cfg: C4Config,
}

impl C4Quality {
    pub fn new(cfg: C4Config) -> Self {
        Self { cfg }
    }
}

impl Rule for C4Quality {
    fn name(&self) -> &'static str {
        "c4_quality"
    }

    fn check(&self, doc: &mut TextDoc) -> Verdict<'_> {
        let c = &self.cfg;
        let mode = doc.mode();
        // Tokens never span lines, so each line's tokens are a run of the document's:
        // one split serves every line (a line whose citations are stripped is re-split).
        let (text, spans) = doc.text_and_words();
        let base = text.as_ptr() as usize;
        let mut sentences = 0u64;
        let mut kept_words = 0usize;
        let mut kept: Vec<String> = Vec::new();
        let lines = py_splitlines(text);
        let total = lines.len();
        for raw in lines {
            let trimmed = raw.trim_matches(py_space);
            let n_words = match mode {
                WordMode::Spaced => trimmed.split(py_space).filter(|w| !w.is_empty()).count(),
                WordMode::Cjk => crate::words::words(trimmed, mode).len(),
            };
            if c.max_word_length > 0
                && trimmed
                    .split(py_space)
                    .any(|w| w.chars().count() as u64 > c.max_word_length)
            {
                continue;
            }
            let stripped = if c.remove_citations {
                strip_citations(trimmed)
            } else {
                trimmed.to_owned()
            };
            let line = stripped.as_str();
            if c.filter_no_terminal_punct {
                let terminal = line.ends_with(['.', '?', '!', '"', '\''])
                    || (mode == WordMode::Cjk && line.ends_with(['。', '！', '？', '”', '」']));
                if !terminal || line.ends_with("...") {
                    continue;
                }
            }
            if (n_words as u64) < c.min_words_per_line {
                continue;
            }
            let lower = line.to_lowercase();
            if c.filter_lorem_ipsum && lower.contains("lorem ipsum") {
                return Verdict::Drop("c4_lorem_ipsum");
            }
            if c.filter_javascript && lower.contains("javascript") {
                continue;
            }
            if c.filter_curly_bracket && line.contains('{') {
                return Verdict::Drop("c4_curly_bracket");
            }
            if c.filter_policy && POLICY.iter().any(|p| lower.contains(p)) {
                continue;
            }
            let (line_words, line_sentences) = if line.len() == trimmed.len() {
                let start = trimmed.as_ptr() as usize - base;
                let lo = spans.partition_point(|r| r.start < start);
                let hi = spans.partition_point(|r| r.start < start + trimmed.len());
                (hi - lo, count_sentences_in(text, &spans[lo..hi]))
            } else {
                let own = words(line, mode);
                (own.len(), count_sentences_in(line, &own))
            };
            kept_words += line_words;
            if c.min_num_sentences > 0 {
                sentences += line_sentences as u64;
            }
            kept.push(stripped);
        }
        if sentences < c.min_num_sentences {
            return Verdict::Drop("c4_too_few_sentences");
        }
        doc.lines_removed += (total - kept.len()) as u32;
        let text = kept.join("\n").trim_matches(py_space).to_owned();
        doc.replace_text(text, Some(kept_words));
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_stripped() {
        assert_eq!(
            strip_citations("Rome[1] fell[edit] late[citation needed]. [x] [12a]"),
            "Rome fell late. [x] [12a]"
        );
    }
}
