//! FineWeb quality (Penedo et al. 2024, as datatrove implements it), over non-empty lines.
//!
//! **What it does**: drops documents where under 12% of lines end in terminal
//! punctuation, over 67% of lines are 30 characters or shorter, over 1% of characters
//! sit in duplicated lines, or there are more than 0.3 newlines per word.
//! **Why**: FineWeb's ablations found these catch lists, navigation and boilerplate that
//! the Gopher and C4 rules let through.
use serde::{Deserialize, Serialize};

use super::{find_duplicates, py_len, share, Rule, TextDoc, Verdict};
use crate::words::is_terminal_punct;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FineWebConfig {
    pub enabled: bool,
    pub line_punct_thr: f64,
    pub line_punct_exclude_zero: bool,
    pub short_line_thr: f64,
    pub short_line_length: usize,
    pub char_duplicates_ratio: f64,
    pub new_line_ratio: f64,
}

impl Default for FineWebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
        }
    }
}

pub struct FineWebQuality {
    cfg: FineWebConfig,
}

impl FineWebQuality {
    pub fn new(cfg: FineWebConfig) -> Self {
        Self { cfg }
    }
}

impl Rule for FineWebQuality {
    fn name(&self) -> &'static str {
        "fineweb_quality"
    }

    fn check(&self, doc: &mut TextDoc) -> Verdict<'_> {
        let c = &self.cfg;
        let n_words = doc.word_count();
        let text = doc.text();
        let lines: Vec<&str> = text
            .split('\n')
            .filter(|l| !l.trim_matches(super::py_space).is_empty())
            .collect();
        if lines.is_empty() {
            return Verdict::Drop("fineweb_empty");
        }
        let punct = share(&lines, |l| l.chars().next_back().is_some_and(is_terminal_punct));
        if punct < c.line_punct_thr && !(punct == 0.0 && c.line_punct_exclude_zero) {
            return Verdict::Drop("fineweb_line_punct_ratio");
        }
        let short = share(&lines, |l| py_len(l) <= c.short_line_length);
        if short > c.short_line_thr {
            return Verdict::Drop("fineweb_short_line_ratio");
        }
        let non_newline = py_len(text) - text.matches('\n').count();
        let dup_chars = find_duplicates(lines.iter().copied()).1;
        if dup_chars as f64 / non_newline.max(1) as f64 > c.char_duplicates_ratio {
            return Verdict::Drop("fineweb_char_dup_ratio");
        }
        if text.matches('\n').count() as f64 / n_words.max(1) as f64 > c.new_line_ratio {
            return Verdict::Drop("fineweb_list_ratio");
        }
        Verdict::Keep
    }
}
