//! Gopher repetition (Rae et al. 2021, Table A1, as datatrove implements it).
//!
//! **What it does**: drops documents whose paragraphs or lines repeat (by count or by
//! characters), whose most frequent 2/3/4-gram covers too many characters, or whose
//! repeated 5…10-grams cover too many characters.
//! **Why**: repetition marks spam, boilerplate-heavy pages and generated text.
//! **Exactness**: n-grams are compared by word sequence, through rolling 64-bit hashes of
//! per-word xxh3 hashes (one hash per word, O(1) per n-gram). For the top n-grams, which
//! datatrove joins with spaces, that is the same equality (words hold no spaces). For the
//! duplicated n-grams datatrove joins with nothing, so `ab c` and `a bc` collide there and
//! not here — a quirk, not a design, and rare in practice (bench/filters measures it).
//! Ties for the top n-gram go to the first seen, as `Counter.most_common`.
//! **Per language**: in Chinese (one word per character, no spaces) an n-gram's length
//! is its characters alone, without the joining spaces datatrove counts for English.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use std::ops::ControlFlow;

use super::{find_duplicates, py_len, Measure, Sink, TextDoc, Thresholds};
use crate::words::WordMode;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetitionConfig {
    pub enabled: bool,
    pub dup_line_frac: f64,
    pub dup_para_frac: f64,
    pub dup_line_char_frac: f64,
    pub dup_para_char_frac: f64,
    /// `[n, max fraction]` pairs for the most frequent n-gram.
    pub top_n_grams: Vec<(usize, f64)>,
    /// `[n, max fraction]` pairs for all duplicated n-grams.
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dup_line_frac: 0.3,
            dup_para_frac: 0.3,
            dup_line_char_frac: 0.2,
            dup_para_char_frac: 0.2,
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        }
    }
}

pub struct GopherRepetition {
    cfg: GopherRepetitionConfig,
    top_reasons: Vec<String>,
    dup_reasons: Vec<String>,
}

impl GopherRepetition {
    pub fn new(cfg: GopherRepetitionConfig) -> Self {
        let top_reasons = cfg
            .top_n_grams
            .iter()
            .map(|(n, _)| format!("gopher_rep_top_{n}_gram"))
            .collect();
        let dup_reasons = cfg
            .dup_n_grams
            .iter()
            .map(|(n, _)| format!("gopher_rep_duplicated_{n}_n_grams"))
            .collect();
        Self {
            cfg,
            top_reasons,
            dup_reasons,
        }
    }
}

/// An open-addressing table of n-gram hashes (already uniformly random, so used as
/// they are), with per-entry values; `clear` is O(1) through a generation stamp, so one
/// table serves all nine n-gram passes of a document.
struct NgramTable {
    keys: Vec<u64>,
    gens: Vec<u32>,
    /// (count, first index, characters) for the top-n-gram pass; unused for duplicates.
    vals: Vec<(u32, u32, u32)>,
    gen: u32,
    mask: usize,
}

impl NgramTable {
    fn with_capacity(n: usize) -> Self {
        let cap = (n.max(8) * 2).next_power_of_two();
        Self {
            keys: vec![0; cap],
            gens: vec![0; cap],
            vals: vec![(0, 0, 0); cap],
            gen: 1,
            mask: cap - 1,
        }
    }

    fn clear(&mut self) {
        self.gen += 1;
    }

    /// Slot of `key`, and whether it was already present (else it is claimed now).
    fn slot(&mut self, key: u64) -> (usize, bool) {
        let mut i = (key as usize) & self.mask;
        loop {
            if self.gens[i] != self.gen {
                self.gens[i] = self.gen;
                self.keys[i] = key;
                return (i, false);
            }
            if self.keys[i] == key {
                return (i, true);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// Splits on runs of at least `min` newlines (`re.split(r"\n{min,}", s)`).
fn split_newline_runs(s: &str, min: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if b[i] == b'\n' {
            let run = b[i..].iter().take_while(|&&c| c == b'\n').count();
            if run >= min {
                out.push(&s[start..i]);
                start = i + run;
            }
            i += run;
        } else {
            i += 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Rolling hashes of word sequences: `hash(i, n)` identifies words `i..i+n` in O(1).
struct NgramHashes {
    prefix: Vec<u64>,
    powers: Vec<u64>,
}

/// Odd 64-bit multiplier for the polynomial hash.
const BASE: u64 = 0x9E37_79B9_7F4A_7C15;

impl NgramHashes {
    fn new(words: &[&str]) -> Self {
        let mut prefix = Vec::with_capacity(words.len() + 1);
        let mut powers = Vec::with_capacity(words.len() + 1);
        prefix.push(0u64);
        powers.push(1u64);
        for w in words {
            let h = xxh3_64(w.as_bytes()) | 1;
            let last = prefix[prefix.len() - 1];
            prefix.push(last.wrapping_mul(BASE).wrapping_add(h));
            let p = powers[powers.len() - 1];
            powers.push(p.wrapping_mul(BASE));
        }
        Self { prefix, powers }
    }

    fn hash(&self, i: usize, n: usize) -> u64 {
        let h = self.prefix[i + n].wrapping_sub(self.prefix[i].wrapping_mul(self.powers[n]));
        // Mix the length in (all bits), so n-grams of different n never meet and the
        // hash table's low bits stay uniform.
        h ^ (n as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }
}

/// Characters of the most frequent n-gram times its count (first seen wins ties).
fn top_ngram_chars(
    h: &NgramHashes,
    lens: &[usize],
    n: usize,
    sep_chars: usize,
    table: &mut NgramTable,
) -> Option<usize> {
    if lens.len() < n {
        return None;
    }
    table.clear();
    let mut chars: usize = lens[..n].iter().sum();
    // (count, first index, chars) of the best so far; a later n-gram wins only with a
    // strictly higher count, so ties go to the first seen.
    let mut best = (0u32, 0u32, 0u32);
    for i in 0..=lens.len() - n {
        if i > 0 {
            chars = chars + lens[i + n - 1] - lens[i - 1];
        }
        let (slot, present) = table.slot(h.hash(i, n));
        if !present {
            table.vals[slot] = (0, i as u32, (chars + (n - 1) * sep_chars) as u32);
        }
        let v = &mut table.vals[slot];
        v.0 += 1;
        if v.0 > best.0 || (v.0 == best.0 && v.1 < best.1) {
            best = *v;
        }
    }
    Some(best.0 as usize * best.2 as usize)
}

/// datatrove's `find_all_duplicate`: characters in repeated n-grams, skipping past each
/// repeat.
fn duplicated_ngram_chars(h: &NgramHashes, lens: &[usize], n: usize, seen: &mut NgramTable) -> usize {
    seen.clear();
    let (mut repeated, mut i) = (0, 0);
    while lens.len() >= n && i < lens.len() - n + 1 {
        if !seen.slot(h.hash(i, n)).1 {
            i += 1;
        } else {
            repeated += lens[i..i + n].iter().sum::<usize>();
            i += n;
        }
    }
    repeated
}

impl Thresholds for GopherRepetition {
    const NAME: &'static str = "gopher_repetition";

    /// Datatrove's checks in its order, each handed to `sink` (which may stop); a limit
    /// of 0 turns its check off; an empty document breaks at once.
    fn eval<'a>(&'a self, doc: &mut TextDoc, sink: Sink<'_, 'a>) -> ControlFlow<&'a str> {
        let c = &self.cfg;
        if doc.text().is_empty() {
            return ControlFlow::Break("gopher_rep_empty");
        }
        let doc_mode = doc.mode();
        let (text, ranges) = doc.text_and_words();
        let text_len = py_len(text) as f64;
        let mut m = |reason, what, value, limit: f64| {
            if limit > 0.0 {
                sink(Measure {
                    reason,
                    what,
                    value,
                    limit,
                    drop_above: true,
                })
            } else {
                ControlFlow::Continue(())
            }
        };
        let paragraphs = split_newline_runs(text.trim_matches(super::py_space), 2);
        let (dup, chars) = find_duplicates(paragraphs.iter().copied());
        let n = paragraphs.len() as f64;
        m(
            "gopher_rep_dup_para_frac",
            "share of duplicated paragraphs",
            dup as f64 / n,
            c.dup_para_frac,
        )?;
        let what = "share of characters in duplicated paragraphs";
        m(
            "gopher_rep_dup_para_char_frac",
            what,
            chars as f64 / text_len,
            c.dup_para_char_frac,
        )?;
        let lines = split_newline_runs(text, 1);
        let (dup, chars) = find_duplicates(lines.iter().copied());
        let n = lines.len() as f64;
        m(
            "gopher_rep_dup_line_frac",
            "share of duplicated lines",
            dup as f64 / n,
            c.dup_line_frac,
        )?;
        let what = "share of characters in duplicated lines";
        m(
            "gopher_rep_dup_line_char_frac",
            what,
            chars as f64 / text_len,
            c.dup_line_char_frac,
        )?;
        let words: Vec<&str> = ranges.iter().map(|r| &text[r.clone()]).collect();
        let lens: Vec<usize> = words.iter().map(|w| py_len(w)).collect();
        let hashes = NgramHashes::new(&words);
        let mut table = NgramTable::with_capacity(words.len());
        // Chinese text has no spaces between words: an n-gram covers only its characters.
        let sep_chars = usize::from(doc_mode == WordMode::Spaced);
        for ((n, frac), reason) in c.top_n_grams.iter().zip(&self.top_reasons) {
            if let Some(top) = top_ngram_chars(&hashes, &lens, *n, sep_chars, &mut table) {
                // Not gated on the limit: datatrove checks top n-grams whatever it is.
                sink(Measure {
                    reason,
                    what: "share of characters in the top n-gram",
                    value: top as f64 / text_len,
                    limit: *frac,
                    drop_above: true,
                })?;
            }
        }
        for ((n, frac), reason) in c.dup_n_grams.iter().zip(&self.dup_reasons) {
            sink(Measure {
                reason,
                what: "share of characters in duplicated n-grams",
                value: duplicated_ngram_chars(&hashes, &lens, *n, &mut table) as f64 / text_len,
                limit: *frac,
                drop_above: true,
            })?;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_runs_split_like_re_split() {
        assert_eq!(split_newline_runs("a\n\nb\n\n\nc\nd", 2), ["a", "b", "c\nd"]);
        assert_eq!(split_newline_runs("\na\n\nb\n", 1), ["", "a", "b", ""]);
    }

    #[test]
    fn duplicated_ngrams_match_datatrove() {
        let w = ["a", "b", "c", "a", "b", "c", "d"];
        let lens = [1; 7];
        let h = NgramHashes::new(&w);
        let mut table = NgramTable::with_capacity(w.len());
        // n=3: "abc" seen at 0, again at 3 -> 3 chars, skip to 6; stop.
        assert_eq!(duplicated_ngram_chars(&h, &lens, 3, &mut table), 3);
        // Most frequent bigram "a b" (2x, first seen) -> 3 chars * 2.
        assert_eq!(top_ngram_chars(&h, &lens, 2, 1, &mut table), Some(6));
        // Equal n-grams hash equal, different ones not.
        assert_eq!(h.hash(0, 3), h.hash(3, 3));
        assert_ne!(h.hash(0, 3), h.hash(1, 3));
    }
}
