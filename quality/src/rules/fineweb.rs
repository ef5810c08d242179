//! FineWeb quality (Penedo et al. 2024, as datatrove implements it), over non-empty lines.
//!
//! **What it does**: drops documents where under 12% of lines end in terminal
//! punctuation, over 67% of lines are 30 characters or shorter, over 1% of characters
//! sit in duplicated lines, or there are more than 0.3 newlines per word.
//! **Why**: FineWeb's ablations found these catch lists, navigation and boilerplate that
//! the Gopher and C4 rules let through.
use serde::{Deserialize, Serialize};

use std::ops::ControlFlow;

use super::{find_duplicates, py_len, share, Measure, Sink, TextDoc, Thresholds};
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

impl Thresholds for FineWebQuality {
    const NAME: &'static str = "fineweb_quality";

    /// The four ratios in datatrove's order, each handed to `sink` (which may stop); an
    /// empty document breaks at once.
    fn eval<'a>(&'a self, doc: &mut TextDoc, sink: Sink<'_, 'a>) -> ControlFlow<&'a str> {
        let c = &self.cfg;
        let n_words = doc.word_count();
        let text = doc.text();
        let lines: Vec<&str> = text
            .split('\n')
            .filter(|l| !l.trim_matches(super::py_space).is_empty())
            .collect();
        if lines.is_empty() {
            return ControlFlow::Break("fineweb_empty");
        }
        let punct = share(&lines, |l| l.chars().next_back().is_some_and(is_terminal_punct));
        if !(punct == 0.0 && c.line_punct_exclude_zero) {
            sink(Measure {
                reason: "fineweb_line_punct_ratio",
                what: "share of lines ending in terminal punctuation",
                value: punct,
                limit: c.line_punct_thr,
                drop_above: false,
            })?;
        }
        sink(Measure {
            reason: "fineweb_short_line_ratio",
            what: "share of short lines",
            value: share(&lines, |l| py_len(l) <= c.short_line_length),
            limit: c.short_line_thr,
            drop_above: true,
        })?;
        let newlines = text.matches('\n').count();
        let non_newline = py_len(text) - newlines;
        let dup_chars = find_duplicates(lines.iter().copied()).1;
        sink(Measure {
            reason: "fineweb_char_dup_ratio",
            what: "share of characters in duplicated lines",
            value: dup_chars as f64 / non_newline.max(1) as f64,
            limit: c.char_duplicates_ratio,
            drop_above: true,
        })?;
        sink(Measure {
            reason: "fineweb_list_ratio",
            what: "newlines per word",
            value: newlines as f64 / n_words.max(1) as f64,
            limit: c.new_line_ratio,
            drop_above: true,
        })
    }
}
