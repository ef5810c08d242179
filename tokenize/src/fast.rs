//! A fast encoder for byte-level BPE tokenizers whose pre-tokenizer is a Sequence of
//! simple character-class splits (the DeepSeek LLM shape), giving exactly the ids of the
//! `tokenizers` crate, which stays the reference.
//!
//! Why: with DeepSeek's pre-tokenizer the crate spends most of its time in five regex
//! passes over large Unicode classes and in per-piece allocations (1.1 MB/s per core here;
//! bench/tokenizer.sh). The classes are read from the `tokenizer.json` itself (never
//! retyped), compiled into one lookup table, and each Split runs as a linear scan; BPE
//! merges use a pair→rank map and a per-thread cache of frequent pieces.
//!
//! Supported (anything else makes [`FastEncoder::from_json`] return `None`, and loam uses
//! the crate): no normalizer; pre-tokenizer = Sequence of `Split(Isolated)` with patterns
//! `[C]`, `[C]+`, `\s?[C]+`, `\s+$`, then optionally `Digits(individual)`, ending in
//! `ByteLevel(add_prefix_space=false, use_regex=false)`; a BPE model without dropout,
//! unknown token, byte fallback, prefixes/suffixes or `ignore_merges`; no truncation or
//! padding; added tokens without lstrip/rstrip/single_word.
use std::cell::RefCell;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};

use ahash::AHashMap;
use serde_json::Value;

/// Bits of the per-code-point table: up to six classes from the patterns, then `\s` and
/// `char::is_numeric` (what the `Digits` pre-tokenizer isolates).
const WS: u8 = 1 << 6;
const NUM: u8 = 1 << 7;
const MAX_CLASSES: usize = 6;
/// Pieces up to this many bytes go through the per-thread cache.
const CACHE_PIECE: usize = 48;
const CACHE_ENTRIES: usize = 1 << 17;
/// Above this many symbols the heap merge (O(n log n)) replaces the quadratic scan.
const HEAP_ABOVE: usize = 64;

#[derive(Debug, Clone, Copy)]
enum Step {
    /// `[C]`: each character of the class alone.
    Single(u8),
    /// `[C]+`: maximal runs.
    Run(u8),
    /// `\s?[C]+`: a run, with one whitespace character before it if there is one.
    WsRun(u8),
    /// `\s+$`: the whitespace that ends a piece.
    TrailingWs,
    /// `Digits(individual_digits = true)`.
    Digits,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Per-thread buffers and piece cache, reused across documents (no allocation per call).
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

pub(crate) struct FastEncoder {
    id: u64,
    steps: Vec<Step>,
    /// One byte per code point (0..=0x10FFFF): class bits.
    table: Vec<u8>,
    byte_ids: [u32; 256],
    /// `(left << 32) | right` → (rank, merged id).
    merges: AHashMap<u64, (u32, u32)>,
    /// Added tokens (content, id), matched leftmost-longest before pre-tokenization.
    added: Vec<(Vec<u8>, u32)>,
    added_first: [bool; 256],
}

/// GPT-2's byte ↔ printable-character map that `ByteLevel` uses.
fn byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u32 {
        let printable = (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b);
        let c = if printable {
            b
        } else {
            extra += 1;
            255 + extra
        };
        out[b as usize] = char::from_u32(c).unwrap_or('\0');
    }
    out
}

/// Parses `[...]` (ranges, literal characters, `\r \n \t` and escaped punctuation).
fn parse_class(body: &str) -> Option<Vec<(u32, u32)>> {
    let mut chars = body.chars().peekable();
    let mut items = Vec::new();
    if body.starts_with('^') {
        return None;
    }
    let next_char = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<char> {
        let c = chars.next()?;
        if c != '\\' {
            return Some(c);
        }
        match chars.next()? {
            'r' => Some('\r'),
            'n' => Some('\n'),
            't' => Some('\t'),
            e if e.is_ascii_punctuation() => Some(e),
            _ => None,
        }
    };
    while chars.peek().is_some() {
        let lo = next_char(&mut chars)?;
        if chars.peek() == Some(&'-') {
            chars.next();
            let hi = next_char(&mut chars)?;
            if hi < lo {
                return None;
            }
            items.push((lo as u32, hi as u32));
        } else {
            items.push((lo as u32, lo as u32));
        }
    }
    Some(items)
}

fn parse_step(p: &Value, classes: &mut Vec<Vec<(u32, u32)>>) -> Option<Step> {
    match p.get("type")?.as_str()? {
        "Digits" => p.get("individual_digits")?.as_bool()?.then_some(Step::Digits),
        "Split" => {
            if p.get("behavior")?.as_str()? != "Isolated" || p.get("invert")?.as_bool()? {
                return None;
            }
            let re = p.get("pattern")?.get("Regex")?.as_str()?;
            if re == r"\s+$" {
                return Some(Step::TrailingWs);
            }
            let (ws, rest) = match re.strip_prefix(r"\s?") {
                Some(r) => (true, r),
                None => (false, re),
            };
            let (plus, rest) = match rest.strip_suffix('+') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let body = rest.strip_prefix('[')?.strip_suffix(']')?;
            // A `]` or `[` inside would mean nesting or an escape we do not parse.
            if body.contains(['[', ']']) || classes.len() >= MAX_CLASSES {
                return None;
            }
            classes.push(parse_class(body)?);
            let bit = 1u8 << (classes.len() - 1);
            match (ws, plus) {
                (false, false) => Some(Step::Single(bit)),
                (false, true) => Some(Step::Run(bit)),
                (true, true) => Some(Step::WsRun(bit)),
                (true, false) => None,
            }
        }
        _ => None,
    }
}

fn is_null_or_empty_sequence(v: Option<&Value>, key: &str) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(v) => {
            v.get("type").and_then(Value::as_str) == Some("Sequence")
                && v.get(key).and_then(Value::as_array).is_some_and(Vec::is_empty)
        }
    }
}

impl FastEncoder {
    /// Builds the fast path for `tokenizer.json`, or `None` when it has a feature the fast
    /// path does not implement.
    pub(crate) fn from_json(j: &Value) -> Option<Self> {
        if !is_null_or_empty_sequence(j.get("normalizer"), "normalizers")
            || !j.get("truncation").is_none_or(Value::is_null)
            || !j.get("padding").is_none_or(Value::is_null)
        {
            return None;
        }
        let pre = j.get("pre_tokenizer")?;
        let list = match pre.get("type")?.as_str()? {
            "Sequence" => pre.get("pretokenizers")?.as_array()?.clone(),
            _ => vec![pre.clone()],
        };
        let (last, splits) = list.split_last()?;
        if last.get("type")?.as_str()? != "ByteLevel"
            || last.get("add_prefix_space")?.as_bool()?
            || last.get("use_regex")?.as_bool()?
        {
            return None;
        }
        let mut classes = Vec::new();
        let steps = splits
            .iter()
            .map(|p| parse_step(p, &mut classes))
            .collect::<Option<Vec<_>>>()?;

        let m = j.get("model")?;
        let null = |k: &str| m.get(k).is_none_or(Value::is_null);
        if m.get("type")?.as_str()? != "BPE"
            || !null("dropout")
            || !null("unk_token")
            || !null("continuing_subword_prefix")
            || !null("end_of_word_suffix")
            || m.get("byte_fallback").and_then(Value::as_bool).unwrap_or(false)
            || m.get("ignore_merges").and_then(Value::as_bool).unwrap_or(false)
        {
            return None;
        }
        let vocab = m.get("vocab")?.as_object()?;
        let id_of = |s: &str| vocab.get(s).and_then(Value::as_u64).map(|v| v as u32);
        let chars = byte_chars();
        let mut byte_ids = [u32::MAX; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_ids[b] = id_of(&c.to_string()).unwrap_or(u32::MAX);
        }
        let list = m.get("merges")?.as_array()?;
        let mut merges = AHashMap::with_capacity(list.len());
        for (rank, mg) in list.iter().enumerate() {
            let (a, b) = match mg {
                Value::String(s) => s.split_once(' ')?,
                Value::Array(v) => (v.first()?.as_str()?, v.get(1)?.as_str()?),
                _ => return None,
            };
            let (ia, ib, iab) = (id_of(a)?, id_of(b)?, id_of(&format!("{a}{b}"))?);
            // A repeated pair takes its last rank, as the crate's map `collect` does.
            merges.insert((u64::from(ia) << 32) | u64::from(ib), (rank as u32, iab));
        }
        let mut added = Vec::new();
        let mut added_first = [false; 256];
        for t in j.get("added_tokens").and_then(Value::as_array).into_iter().flatten() {
            let flag = |k: &str| t.get(k).and_then(Value::as_bool).unwrap_or(false);
            if flag("lstrip") || flag("rstrip") || flag("single_word") {
                return None;
            }
            let content = t.get("content")?.as_str()?.as_bytes().to_vec();
            if content.is_empty() {
                return None;
            }
            added_first[content[0] as usize] = true;
            added.push((content, t.get("id")?.as_u64()? as u32));
        }

        let mut table = vec![0u8; 0x11_0000];
        for (i, ranges) in classes.iter().enumerate() {
            for &(lo, hi) in ranges {
                for c in lo..=hi.min(0x10_FFFF) {
                    table[c as usize] |= 1 << i;
                }
            }
        }
        for (c, bits) in table.iter_mut().enumerate() {
            if let Some(ch) = char::from_u32(c as u32) {
                if ch.is_whitespace() {
                    *bits |= WS;
                }
                if ch.is_numeric() {
                    *bits |= NUM;
                }
            }
        }
        Some(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            steps,
            table,
            byte_ids,
            merges,
            added,
            added_first,
        })
    }

    /// The ids of `text`, as `tokenizers`' `encode_fast(text, false)` gives them.
    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            if s.owner != self.id {
                s.owner = self.id;
                s.cache.clear();
            }
            self.encode_with(text, &mut s)
        })
    }

    fn encode_with(&self, text: &str, scratch: &mut Scratch) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if self.added_first[bytes[i] as usize] {
                if let Some((len, id)) = self.added_at(&bytes[i..]) {
                    self.encode_plain(&text[start..i], scratch, &mut out);
                    out.push(id);
                    i += len;
                    start = i;
                    continue;
                }
            }
            i += 1;
        }
        self.encode_plain(&text[start..], scratch, &mut out);
        out
    }

    /// The longest added token at the start of `rest`.
    fn added_at(&self, rest: &[u8]) -> Option<(usize, u32)> {
        self.added
            .iter()
            .filter(|(c, _)| rest.starts_with(c))
            .max_by_key(|(c, _)| c.len())
            .map(|(c, id)| (c.len(), *id))
    }

    fn encode_plain(&self, text: &str, s: &mut Scratch, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        // chars[i] = (byte offset, class bits); one extra entry marks the end.
        s.chars.clear();
        for (off, c) in text.char_indices() {
            s.chars.push((off as u32, self.table[c as usize]));
        }
        s.chars.push((text.len() as u32, 0));
        let n = s.chars.len() - 1;
        s.pieces.clear();
        s.pieces.push((0, n as u32));
        for step in &self.steps {
            s.next.clear();
            for &(a, b) in &s.pieces {
                split(&s.chars, a as usize, b as usize, *step, &mut s.next);
            }
            std::mem::swap(&mut s.pieces, &mut s.next);
        }
        let bytes = text.as_bytes();
        let pieces = std::mem::take(&mut s.pieces);
        for &(a, b) in &pieces {
            let piece = &bytes[s.chars[a as usize].0 as usize..s.chars[b as usize].0 as usize];
            self.bpe(piece, s, out);
        }
        s.pieces = pieces;
    }

    fn rank(&self, a: u32, b: u32) -> Option<(u32, u32)> {
        self.merges.get(&((u64::from(a) << 32) | u64::from(b))).copied()
    }

    fn bpe(&self, piece: &[u8], s: &mut Scratch, out: &mut Vec<u32>) {
        if piece.len() == 1 {
            let id = self.byte_ids[piece[0] as usize];
            if id != u32::MAX {
                out.push(id);
            }
            return;
        }
        if piece.len() <= CACHE_PIECE {
            if let Some(ids) = s.cache.get(piece) {
                out.extend_from_slice(ids);
                return;
            }
        }
        s.syms.clear();
        // Bytes the vocabulary lacks are dropped, as the crate does without an unknown token.
        s.syms.extend(
            piece
                .iter()
                .map(|&b| self.byte_ids[b as usize])
                .filter(|&id| id != u32::MAX),
        );
        if s.syms.len() > HEAP_ABOVE {
            self.merge_heap(s);
        } else {
            self.merge_scan(&mut s.syms);
        }
        out.extend_from_slice(&s.syms);
        if piece.len() <= CACHE_PIECE {
            if s.cache.len() >= CACHE_ENTRIES {
                s.cache.clear();
            }
            s.cache.insert(piece.into(), s.syms.as_slice().into());
        }
    }

    /// Merges the lowest-ranked adjacent pair (leftmost on ties) until none is left.
    fn merge_scan(&self, syms: &mut Vec<u32>) {
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                if let Some((rank, id)) = self.rank(syms[i], syms[i + 1]) {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, id));
                    }
                }
            }
            let Some((_, i, id)) = best else { return };
            syms[i] = id;
            syms.remove(i + 1);
        }
    }

    /// The same merges for long pieces: a heap of (rank, position) over a linked list, as
    /// the crate's `Word::merge_all` does.
    fn merge_heap(&self, s: &mut Scratch) {
        let n = s.syms.len();
        s.next_of.clear();
        s.next_of.extend((1..=n).map(|i| i as u32));
        s.prev_of.clear();
        s.prev_of.extend((0..n).map(|i| i as u32 - u32::from(i > 0)));
        s.alive.clear();
        s.alive.resize(n, true);
        let mut heap = BinaryHeap::new();
        let end = n as u32;
        for i in 0..n - 1 {
            if let Some((rank, id)) = self.rank(s.syms[i], s.syms[i + 1]) {
                heap.push(std::cmp::Reverse((rank, i as u32, id)));
            }
        }
        while let Some(std::cmp::Reverse((rank, pos, id))) = heap.pop() {
            let p = pos as usize;
            let nx = s.next_of[p];
            if !s.alive[p] || nx == end {
                continue;
            }
            // Stale entry: the pair at `pos` changed since it was pushed.
            if self.rank(s.syms[p], s.syms[nx as usize]) != Some((rank, id)) {
                continue;
            }
            s.syms[p] = id;
            s.alive[nx as usize] = false;
            let after = s.next_of[nx as usize];
            s.next_of[p] = after;
            if after != end {
                s.prev_of[after as usize] = pos;
                if let Some((r, m)) = self.rank(id, s.syms[after as usize]) {
                    heap.push(std::cmp::Reverse((r, pos, m)));
                }
            }
            if p > 0 {
                let pv = s.prev_of[p];
                if let Some((r, m)) = self.rank(s.syms[pv as usize], id) {
                    heap.push(std::cmp::Reverse((r, pv, m)));
                }
            }
        }
        let mut k = 0;
        let mut i = 0u32;
        while i != end {
            s.syms[k] = s.syms[i as usize];
            k += 1;
            i = s.next_of[i as usize];
        }
        s.syms.truncate(k);
    }
}

#[derive(Default)]
struct Scratch {
    /// The encoder the cache belongs to (`FastEncoder::id`).
    owner: u64,
    /// Piece bytes → ids for pieces up to `CACHE_PIECE` bytes.
    cache: AHashMap<Box<[u8]>, Box<[u32]>>,
    chars: Vec<(u32, u8)>,
    pieces: Vec<(u32, u32)>,
    next: Vec<(u32, u32)>,
    syms: Vec<u32>,
    next_of: Vec<u32>,
    prev_of: Vec<u32>,
    alive: Vec<bool>,
}

/// Splits chars `a..b` by `step` (Isolated: matches and the gaps between them are pieces).
fn split(chars: &[(u32, u8)], a: usize, b: usize, step: Step, out: &mut Vec<(u32, u32)>) {
    let bits = |i: usize| chars[i].1;
    let mut gap = a;
    let mut emit = |ms: usize, me: usize, gap: &mut usize| {
        if *gap < ms {
            out.push((*gap as u32, ms as u32));
        }
        out.push((ms as u32, me as u32));
        *gap = me;
    };
    let run_end = |mut i: usize, c: u8| {
        while i < b && bits(i) & c != 0 {
            i += 1;
        }
        i
    };
    match step {
        Step::Single(c) => {
            for i in a..b {
                if bits(i) & c != 0 {
                    emit(i, i + 1, &mut gap);
                }
            }
        }
        Step::Digits => {
            for i in a..b {
                if bits(i) & NUM != 0 {
                    emit(i, i + 1, &mut gap);
                }
            }
        }
        Step::Run(c) => {
            let mut i = a;
            while i < b {
                if bits(i) & c != 0 {
                    let e = run_end(i, c);
                    emit(i, e, &mut gap);
                    i = e;
                } else {
                    i += 1;
                }
            }
        }
        Step::WsRun(c) => {
            let mut i = a;
            while i < b {
                if bits(i) & WS != 0 && i + 1 < b && bits(i + 1) & c != 0 {
                    let e = run_end(i + 1, c);
                    emit(i, e, &mut gap);
                    i = e;
                } else if bits(i) & c != 0 {
                    let e = run_end(i, c);
                    emit(i, e, &mut gap);
                    i = e;
                } else {
                    i += 1;
                }
            }
        }
        Step::TrailingWs => {
            let mut t = b;
            while t > a && bits(t - 1) & WS != 0 {
                t -= 1;
            }
            if t < b {
                emit(t, b, &mut gap);
            }
        }
    }
    if gap < b {
        out.push((gap as u32, b as u32));
    }
}
