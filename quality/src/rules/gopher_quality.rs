//! Gopher quality (Rae et al. 2021, Table A1, as datatrove implements it).
//!
//! **What it does**: drops documents with too few or too many words, extreme mean word
//! length, many `#` or ellipses, mostly bullet lines, many lines ending in an ellipsis,
//! few words with a letter, or fewer than 2 stop words.
//! **Why**: each catches a kind of non-prose page (menus, tag clouds, tables, code).
//! **Per language**: stop words are looked up by language (`en` and `zh` given; others
//! skip the stop-word check rather than fail it). In Chinese, words are characters, so
//! the mean-word-length check does not apply there.
use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use std::ops::ControlFlow;

use super::{py_len, py_space, py_splitlines, share, Measure, Sink, TextDoc, Thresholds};
use crate::words::WordMode;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherQualityConfig {
    pub enabled: bool,
    pub min_doc_words: u64,
    pub max_doc_words: u64,
    pub min_avg_word_length: f64,
    pub max_avg_word_length: f64,
    pub max_symbol_word_ratio: f64,
    pub max_bullet_lines_ratio: f64,
    pub max_ellipsis_lines_ratio: f64,
    /// Minimum share of words containing a letter (datatrove's name kept).
    pub max_non_alpha_words_ratio: f64,
    pub min_stop_words: u64,
    /// Stop words per language code.
    pub stop_words: BTreeMap<String, Vec<String>>,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        let en = ["the", "be", "to", "of", "and", "that", "have", "with"];
        // The most frequent function characters of modern written Chinese.
        let zh = ["的", "了", "是", "在", "和", "有", "不", "这"];
        Self {
            enabled: true,
            min_doc_words: 50,
            max_doc_words: 100_000,
            min_avg_word_length: 3.0,
            max_avg_word_length: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_lines_ratio: 0.9,
            max_ellipsis_lines_ratio: 0.3,
            max_non_alpha_words_ratio: 0.8,
            min_stop_words: 2,
            stop_words: BTreeMap::from([
                ("en".to_owned(), en.iter().map(|s| s.to_string()).collect()),
                ("zh".to_owned(), zh.iter().map(|s| s.to_string()).collect()),
            ]),
        }
    }
}

/// datatrove's `PUNCTUATION_SET`: a word made only of these is a "symbol word".
pub(crate) fn is_symbol_char(c: char) -> bool {
    let u = c as u32;
    (c.is_ascii_punctuation())
        || matches!(u, 0..=8 | 11..=12 | 13..=31 | 127..=159)
        || matches!(
            c,
            '«' | '´'
                | '»'
                | '–'
                | '—'
                | '’'
                | '“'
                | '”'
                | '„'
                | '…'
                | '∶'
                | '━'
                | '►'
                | '、'
                | '。'
                | '〈'
                | '〉'
                | '《'
                | '》'
                | '「'
                | '」'
                | '【'
                | '】'
                | '！'
                | '％'
                | '（'
                | '）'
                | '，'
                | '．'
                | '１'
                | '：'
                | '；'
                | '？'
                | '～'
                | '｡'
        )
        || crate::words::is_terminal_punct(c)
}

pub struct GopherQuality {
    cfg: GopherQualityConfig,
}

impl GopherQuality {
    pub fn new(cfg: GopherQualityConfig) -> Self {
        Self { cfg }
    }
}

impl Thresholds for GopherQuality {
    const NAME: &'static str = "gopher_quality";

    /// Datatrove's checks in its order, each handed to `sink` (which may stop); a limit
    /// of 0 turns its check off.
    fn eval<'a>(&'a self, doc: &mut TextDoc, sink: Sink<'_, 'a>) -> ControlFlow<&'a str> {
        let c = &self.cfg;
        let mode = doc.mode();
        let lang = doc.lang.clone();
        let (text, ranges) = doc.text_and_words();
        let words: Vec<&str> = ranges.iter().map(|r| &text[r.clone()]).collect();
        let nw = words.len() as f64;
        let non_symbol: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| w.chars().any(|ch| !is_symbol_char(ch)))
            .collect();
        let n = non_symbol.len() as f64;
        let mut m = |reason, what, value, limit: f64, drop_above| {
            if limit > 0.0 {
                sink(Measure {
                    reason,
                    what,
                    value,
                    limit,
                    drop_above,
                })
            } else {
                ControlFlow::Continue(())
            }
        };
        m("gopher_short_doc", "words", n, c.min_doc_words as f64, false)?;
        m("gopher_long_doc", "words", n, c.max_doc_words as f64, true)?;
        if mode == WordMode::Spaced {
            let avg = non_symbol.iter().map(|w| py_len(w)).sum::<usize>() as f64 / n.max(1.0);
            let what = "mean word length";
            m("gopher_below_avg_threshold", what, avg, c.min_avg_word_length, false)?;
            m("gopher_above_avg_threshold", what, avg, c.max_avg_word_length, true)?;
        }
        let hashes = text.matches('#').count() as f64 / nw;
        m(
            "gopher_too_many_hashes",
            "'#' per word",
            hashes,
            c.max_symbol_word_ratio,
            true,
        )?;
        let ellipses = (text.matches("...").count() + text.matches('…').count()) as f64 / nw;
        m(
            "gopher_too_many_ellipsis",
            "ellipses per word",
            ellipses,
            c.max_symbol_word_ratio,
            true,
        )?;
        let lines = py_splitlines(text);
        let bullet = |l: &&str| {
            let t = l.trim_start_matches(py_space);
            t.starts_with('•') || t.starts_with('-')
        };
        let bullets = share(&lines, bullet);
        m(
            "gopher_too_many_bullets",
            "share of bullet lines",
            bullets,
            c.max_bullet_lines_ratio,
            true,
        )?;
        let ellipsis_end = |l: &&str| {
            let t = l.trim_end_matches(py_space);
            t.ends_with("...") || t.ends_with('…')
        };
        let end = share(&lines, ellipsis_end);
        m(
            "gopher_too_many_end_ellipsis",
            "share of lines ending in an ellipsis",
            end,
            c.max_ellipsis_lines_ratio,
            true,
        )?;
        if c.max_non_alpha_words_ratio > 0.0 {
            let alpha = words.iter().filter(|w| w.chars().any(char::is_alphabetic)).count() as f64 / nw;
            m(
                "gopher_below_alpha_threshold",
                "share of words with a letter",
                alpha,
                c.max_non_alpha_words_ratio,
                false,
            )?;
        }
        if let Some(stops) = c.stop_words.get(&lang).filter(|_| c.min_stop_words > 0) {
            // A handful of stop words: a linear scan beats hashing every word.
            let found: HashSet<&str> = words.iter().copied().filter(|w| stops.iter().any(|s| s == w)).collect();
            m(
                "gopher_enough_stop_words",
                "distinct stop words",
                found.len() as f64,
                c.min_stop_words as f64,
                false,
            )?;
        }
        ControlFlow::Continue(())
    }
}
