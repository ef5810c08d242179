//! The heuristic document rules, with the definitions and defaults of datatrove 0.10.1
//! (the FineWeb recipe): [`GopherRepetition`], [`GopherQuality`], [`C4Quality`],
//! [`FineWebQuality`]. Each is its own type implementing [`Rule`]; each drop has a named
//! reason (`gopher_short_doc`, `c4_too_few_sentences`, …); thresholds come from the
//! rule's config, where 0 turns a check off, as in datatrove.
//!
//! Python semantics are kept where they change decisions: lengths in code points,
//! `str.splitlines` line breaks, `Counter.most_common` tie order, `"".join` n-grams.
mod c4;
mod fineweb;
mod gopher_quality;
mod gopher_repetition;

use std::collections::HashSet;
use std::ops::{ControlFlow, Range};

pub use c4::{C4Config, C4Quality};
pub use fineweb::{FineWebConfig, FineWebQuality};
pub use gopher_quality::{GopherQuality, GopherQualityConfig};
pub use gopher_repetition::{GopherRepetition, GopherRepetitionConfig};

use crate::words::{words, WordMode};

/// A document's text as the rules see it, with its word split cached.
#[derive(Debug, Clone)]
pub struct TextDoc {
    text: String,
    /// Language code from language id (`en`, `zh`…); selects stop words and word mode.
    pub lang: String,
    mode: WordMode,
    words: Option<Vec<Range<usize>>>,
    /// Word count of the current text when known without its spans (after a C4 edit).
    word_count: Option<usize>,
    /// Lines the C4 rule removed.
    pub lines_removed: u32,
    /// True once a rule changed the text (lines removed or citations stripped).
    pub edited: bool,
}

impl TextDoc {
    pub fn new(text: String, lang: &str) -> Self {
        Self {
            text,
            mode: WordMode::for_language(lang),
            lang: lang.to_owned(),
            words: None,
            word_count: None,
            lines_removed: 0,
            edited: false,
        }
    }
    pub fn text(&self) -> &str {
        &self.text
    }
    pub fn into_text(self) -> String {
        self.text
    }
    pub fn mode(&self) -> WordMode {
        self.mode
    }
    /// Word spans, computed once per text version.
    pub fn words(&mut self) -> &[Range<usize>] {
        self.text_and_words().1
    }
    /// The text and its word spans, borrowed together (rules need both at once).
    pub fn text_and_words(&mut self) -> (&str, &[Range<usize>]) {
        if self.words.is_none() {
            self.words = Some(words(&self.text, self.mode));
        }
        (&self.text, self.words.as_deref().unwrap_or_default())
    }
    /// Number of words of the current text.
    pub fn word_count(&mut self) -> usize {
        match self.word_count {
            Some(n) => n,
            None => self.words().len(),
        }
    }
    /// Replaces the text; `word_count` is the new text's word count when the caller
    /// knows it (C4 does: words never span lines), which spares a second split.
    fn replace_text(&mut self, text: String, word_count: Option<usize>) {
        if text != self.text {
            self.edited = true;
            self.text = text;
            self.words = None;
            self.word_count = word_count;
        }
    }
}

/// A rule's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    Keep,
    /// Dropped, with the reason (borrowed from the rule: some names depend on its config).
    Drop(&'a str),
}

/// One thresholded quantity of a rule, as the rule computed it for one document: the
/// report's per-rule histograms are drawn from these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure<'a> {
    /// The drop reason this quantity decides (`gopher_short_doc`, …).
    pub reason: &'a str,
    /// What the value counts, for a chart's axis.
    pub what: &'static str,
    pub value: f64,
    pub limit: f64,
    /// True when values above `limit` drop the document, false when values below do.
    pub drop_above: bool,
}

impl Measure<'_> {
    pub fn drops(&self) -> bool {
        if self.drop_above {
            self.value > self.limit
        } else {
            self.value < self.limit
        }
    }
}

/// Where a rule hands its measures: `check` stops at the first that drops, `measure`
/// takes them all.
pub type Sink<'s, 'a> = &'s mut dyn FnMut(Measure<'a>) -> ControlFlow<&'a str>;

/// A rule that is a sequence of thresholded quantities (Gopher, FineWeb): written once as
/// `eval`, it is a [`Rule`] whose `check` stops at the first quantity past its limit and
/// whose `measure` reports them all.
pub trait Thresholds: Send + Sync {
    /// Family name, e.g. `gopher_quality`.
    const NAME: &'static str;
    /// Hands each quantity to `sink` in the rule's order, returning early when it breaks;
    /// a document no quantity applies to (an empty one) breaks with its reason at once.
    fn eval<'a>(&'a self, doc: &mut TextDoc, sink: Sink<'_, 'a>) -> ControlFlow<&'a str>;
}

impl<T: Thresholds> Rule for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn check(&self, doc: &mut TextDoc) -> Verdict<'_> {
        match self.eval(doc, &mut |m| {
            if m.drops() {
                ControlFlow::Break(m.reason)
            } else {
                ControlFlow::Continue(())
            }
        }) {
            ControlFlow::Break(reason) => Verdict::Drop(reason),
            ControlFlow::Continue(()) => Verdict::Keep,
        }
    }

    fn measure(&self, doc: &mut TextDoc) -> Vec<Measure<'_>> {
        let mut out = Vec::new();
        let _ = self.eval(doc, &mut |m| {
            out.push(m);
            ControlFlow::Continue(())
        });
        out
    }
}

/// One heuristic rule. Grows by new implementations, not new methods.
pub trait Rule: Send + Sync {
    /// Family name, e.g. `gopher_quality`.
    fn name(&self) -> &'static str;
    /// Keeps or drops `doc`; a rule may edit the text (C4 removes lines).
    fn check(&self, doc: &mut TextDoc) -> Verdict<'_>;
    /// The rule's thresholded quantities for `doc`, all of them (for reports; the filter
    /// itself calls `check`, which stops at the first drop). Rules whose drops are not
    /// thresholds (C4's line edits) report none.
    fn measure(&self, _doc: &mut TextDoc) -> Vec<Measure<'_>> {
        Vec::new()
    }
}

/// Python's `len(str)`: code points (bytes that do not continue a UTF-8 sequence).
pub(crate) fn py_len(s: &str) -> usize {
    s.bytes().filter(|&b| (b & 0xC0) != 0x80).count()
}

/// Python's `str.splitlines()`.
pub(crate) fn py_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if matches!(
            c,
            '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}'
        ) {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' && matches!(it.peek(), Some((_, '\n'))) {
                it.next();
                end += 1;
            }
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Python's `str.isspace()` per character.
pub(crate) fn py_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\x1c'..='\x1f')
}

/// Share of `items` for which `pred` holds (0 for none).
pub(crate) fn share<T>(items: &[T], pred: impl Fn(&T) -> bool) -> f64 {
    items.iter().filter(|x| pred(x)).count() as f64 / items.len().max(1) as f64
}

/// datatrove's `find_duplicates`: (repeated elements, characters in repeated elements).
pub(crate) fn find_duplicates<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let mut seen: HashSet<&str, xxhash_rust::xxh3::Xxh3Builder> = HashSet::default();
    let (mut n, mut chars) = (0, 0);
    for x in items {
        if !seen.insert(x) {
            n += 1;
            chars += py_len(x);
        }
    }
    (n, chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_string_semantics() {
        assert_eq!(py_splitlines("a\nb\r\nc\rd\n"), ["a", "b", "c", "d"]);
        assert_eq!(py_splitlines("a\n\nb"), ["a", "", "b"]);
        assert_eq!(py_len("héllo…"), 6);
        assert_eq!(find_duplicates(["a", "bb", "a", "bb", "bb"]), (3, 5));
    }
}
