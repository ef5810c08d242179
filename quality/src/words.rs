//! Word and sentence splitting as the reference filters see text.
//!
//! datatrove's English rules count words with spaCy's rule-based English tokenizer:
//! whitespace-separated chunks, then punctuation, quotes, currency and symbols split off
//! the front and back, contractions split (`ca n't`, `it 's`), then infixes split
//! (`well - known`, `3 - 4`, `km / h`). The counts the rules take (punctuation tokens
//! count as words, `the` ≠ `The`) depend on that, so this module reproduces its
//! behaviour — written from its documented rules and checked token by token against
//! spaCy 3.8 on real text (bench/filters). It is not a full port: spaCy's long list of
//! special cases is reduced to the ones that change counts on web text (abbreviations,
//! single initials, contractions).
//!
//! Chinese and Japanese have no spaces between words: there every Han, Kana or Hangul
//! character counts as one word, and runs of other characters are split as English.
use std::ops::Range;

/// How a language's text is split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordMode {
    /// Space-separated scripts: spaCy-style English rules.
    Spaced,
    /// Chinese/Japanese: one word per CJK character.
    Cjk,
}

impl WordMode {
    pub fn for_language(lang: &str) -> Self {
        match lang {
            "zh" | "ja" | "wuu" | "yue" => Self::Cjk,
            _ => Self::Spaced,
        }
    }
}

/// Word spans of `text` (byte ranges).
pub fn words(text: &str, mode: WordMode) -> Vec<Range<usize>> {
    let mut out = Vec::with_capacity(text.len() / 5);
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                chunk(text, s, i, mode, &mut out);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        chunk(text, s, text.len(), mode, &mut out);
    }
    out
}

fn chunk(text: &str, s: usize, e: usize, mode: WordMode, out: &mut Vec<Range<usize>>) {
    if mode == WordMode::Cjk {
        // Split into CJK characters and non-CJK runs; the runs go through the English rules.
        let mut run = None;
        for (i, c) in text[s..e].char_indices() {
            let at = s + i;
            if is_cjk(c) {
                if let Some(r) = run.take() {
                    spaced(text, r, at, out);
                }
                out.push(at..at + c.len_utf8());
            } else if run.is_none() {
                run = Some(at);
            }
        }
        if let Some(r) = run {
            spaced(text, r, e, out);
        }
    } else {
        spaced(text, s, e, out);
    }
}

pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
        | 0xAC00..=0xD7AF | 0x20000..=0x2FA1F)
}

/// Abbreviations spaCy keeps whole with their trailing period.
const ABBREVIATIONS: &[&str] = &[
    "Mr.", "Mrs.", "Ms.", "Dr.", "St.", "Jr.", "Mt.", "vs.", "e.g.", "i.e.", "a.m.", "p.m.", "Inc.", "Ltd.", "Co.",
    "Corp.", "Bros.", "Gov.", "Gen.", "Rep.", "Sen.", "Rev.", "Messrs.", "Jan.", "Feb.", "Mar.", "Apr.", "Jun.",
    "Jul.", "Aug.", "Sep.", "Sept.", "Oct.", "Nov.", "Dec.", "Ph.D.", "Adm.", "Prof.", "Ala.", "Ariz.", "Ark.",
    "Calif.", "Colo.", "Conn.", "Del.", "Fla.", "Ga.", "Ill.", "Ind.", "Kan.", "Kans.", "Ky.", "La.", "Md.", "Mass.",
    "Mich.", "Minn.", "Miss.", "Mo.", "Mont.", "Neb.", "Nebr.", "Nev.", "Okla.", "Ore.", "Pa.", "Tenn.", "Va.",
    "Wash.", "Wis.", "'em", "'cause", "'bout", "ma'am", "o'clock", // Emoticons.
    ":)", ":-)", ";)", ";-)", ":(", ":-(", ":D", ":-D", "xD", "XD", "=)", "=(", ":P", ":p", ":-P", ":/", ":-/", ":o",
    ":O", "<3", "</3", "8)", "8-)", "(:", "):", ":'(", "^_^", "-_-", "o_O", "O_o", ":3", ":]", ":|", ":-|", "=D", ";D",
    "(-:", ")-:", ":X", ":x",
];

/// Contractions without apostrophe that spaCy splits, with the split point (bytes).
const BARE_CONTRACTIONS: &[(&str, usize)] = &[
    ("dont", 2),
    ("cant", 2),
    ("wont", 2),
    ("im", 1),
    ("ive", 1),
    ("youre", 3),
    ("theyre", 4),
    ("isnt", 2),
    ("didnt", 3),
    ("doesnt", 4),
    ("aint", 2),
    ("hes", 2),
    ("shes", 3),
    ("whats", 4),
    ("id", 1),
    ("cannot", 3),
    ("gonna", 3),
    ("gotta", 3),
    ("couldnt", 5),
    ("shouldnt", 6),
    ("wouldnt", 5),
    ("havent", 4),
    ("hasnt", 3),
    ("hadnt", 3),
    ("wasnt", 3),
    ("werent", 4),
    ("arent", 3),
    ("mustnt", 4),
    ("neednt", 4),
    ("youll", 3),
    ("youve", 3),
    ("youd", 3),
    ("theyll", 4),
    ("theyve", 4),
    ("theyd", 4),
    ("weve", 2),
    ("wed", 2),
    ("hed", 2),
    ("itll", 2),
    ("thats", 4),
    ("theres", 5),
    ("whos", 3),
    ("wheres", 5),
    ("whered", 5),
    ("hows", 3),
    ("mightnt", 5),
    ("mightve", 5),
    ("mustve", 4),
    ("shouldve", 6),
    ("wouldve", 5),
    ("couldve", 5),
    ("whatll", 4),
    ("whod", 3),
    ("whove", 3),
    ("itd", 2),
    ("thatd", 4),
    ("thered", 5),
    ("yall", 1),
];

fn is_special(s: &str) -> bool {
    // Every special case holds a '.', an apostrophe or an emoticon's punctuation: plain
    // words (the vast majority) skip the lookups.
    if s.chars().all(char::is_alphanumeric) {
        return false;
    }
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> = std::sync::OnceLock::new();
    if SET.get_or_init(|| ABBREVIATIONS.iter().copied().collect()).contains(s) {
        return true;
    }
    // Initials and upper-case dotted acronyms: "A.", "b.", "U.S.", "N.Y.C." (not "a.k.a.").
    let b = s.as_bytes();
    b.len() >= 2
        && b.len().is_multiple_of(2)
        && b.chunks(2).all(|p| p[0].is_ascii_alphabetic() && p[1] == b'.')
        && (b.len() == 2 || b.chunks(2).all(|p| p[0].is_ascii_uppercase()))
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '\'' | '"'
            | '”'
            | '“'
            | '`'
            | '‘'
            | '´'
            | '’'
            | '‚'
            | '„'
            | '»'
            | '«'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '〔'
            | '〕'
            | '【'
            | '】'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '⟦'
            | '⟧'
    )
}

fn is_punct_affix(c: char) -> bool {
    matches!(
        c,
        '…' | ','
            | ':'
            | ';'
            | '!'
            | '?'
            | '¿'
            | '؟'
            | '¡'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '<'
            | '>'
            | '_'
            | '#'
            | '*'
            | '&'
            | '。'
            | '？'
            | '！'
            | '，'
            | '、'
            | '；'
            | '：'
            | '～'
            | '·'
            | '।'
            | '،'
            | '۔'
            | '؛'
            | '٪'
    )
}

fn is_currency(c: char) -> bool {
    matches!(
        c,
        '$' | '£' | '€' | '¥' | '฿' | '₽' | '﷼' | '₴' | '₹' | '₩' | '₪' | '₫' | '₱' | '₺' | '₿'
    ) || ('\u{20A0}'..='\u{20C0}').contains(&c)
}

/// Unicode "Symbol, other" (emoji, dingbats, arrows…), without the degree sign.
fn is_icon(c: char) -> bool {
    let u = c as u32;
    c != '°'
        && (matches!(u, 0x00A6 | 0x00A9 | 0x00AE | 0x2100..=0x214F | 0x2190..=0x21FF | 0x2300..=0x23FF | 0x2400..=0x24FF
            | 0x2500..=0x27BF | 0x2B00..=0x2BFF | 0x1F000..=0x1FAFF))
}

/// spaCy's ALPHA_LOWER / ALPHA_UPPER include scripts without case (Arabic, Hebrew, …).
fn lowerish(c: char) -> bool {
    c.is_lowercase() || (c.is_alphabetic() && !c.is_uppercase())
}

fn upperish(c: char) -> bool {
    c.is_uppercase() || (c.is_alphabetic() && !c.is_lowercase())
}

fn prefix_len(s: &str) -> usize {
    let mut it = s.chars();
    let Some(c) = it.next() else { return 0 };
    if c == '.' {
        let dots = s.bytes().take_while(|&b| b == b'.').count();
        return if dots >= 2 { dots } else { 0 };
    }
    if c == '+' {
        return if it.next().is_some_and(|d| d.is_ascii_digit()) {
            0
        } else {
            1
        };
    }
    for cur in ["US$", "C$", "A$"] {
        if s.starts_with(cur) {
            return cur.len();
        }
    }
    if matches!(c, '§' | '%' | '=' | '—' | '–') || is_punct_affix(c) || is_quote(c) || is_currency(c) || is_icon(c)
    {
        return c.len_utf8();
    }
    0
}

const UNITS: &[&str] = &[
    "km", "km²", "km³", "m", "m²", "m³", "dm", "dm²", "dm³", "cm", "cm²", "cm³", "mm", "mm²", "mm³", "ha", "µm", "nm",
    "yd", "in", "ft", "kg", "g", "mg", "µg", "t", "lb", "oz", "m/s", "km/h", "kmh", "mph", "hPa", "Pa", "mbar", "mb",
    "MB", "kb", "KB", "gb", "GB", "tb", "TB", "T", "G", "M", "K", "%", "км", "км²", "км³", "м", "м²", "м³", "дм", "см",
    "мм", "нм", "кг", "г", "мг", "м/с", "км/ч", "кПа", "Па", "мбар", "Кб", "КБ", "кб", "Мб", "МБ", "мб", "Гб", "ГБ",
    "гб", "Тб", "ТБ", "тб",
];

fn suffix_len(s: &str) -> usize {
    let Some(last) = s.chars().next_back() else { return 0 };
    for q in ["'s", "'S", "’s", "’S"] {
        if s.len() > q.len() && s.ends_with(q) {
            return q.len();
        }
    }
    if last == '.' || last == '…' {
        let dots = s.bytes().rev().take_while(|&b| b == b'.').count();
        if dots >= 2 {
            return dots;
        }
    }
    if last == '…' || is_punct_affix(last) || is_quote(last) || is_icon(last) || matches!(last, '—' | '–') {
        return last.len_utf8();
    }
    let before: Vec<char> = s[..s.len() - last.len_utf8()].chars().rev().take(2).collect();
    let prev = before.first().copied();
    if last == '+' && prev.is_some_and(|p| p.is_ascii_digit()) {
        return 1;
    }
    if last == '.' {
        let p = prev.unwrap_or(' ');
        if p.is_ascii_digit() || lowerish(p) || matches!(p, '%' | '²' | '-' | '+') || is_quote(p) || is_punct_affix(p)
        {
            return 1;
        }
        if upperish(p) && before.get(1).is_some_and(|q| upperish(*q)) {
            return 1;
        }
        return 0;
    }
    // Currency or unit glued to a number: "10km", "5€".
    let digits_end = s
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i + 1);
    if let Some(d) = digits_end {
        let tail = &s[d..];
        if !tail.is_empty() && (UNITS.contains(&tail) || tail.chars().count() == 1 && is_currency(last)) {
            return tail.len();
        }
    }
    0
}

/// Contractions spaCy splits: "can't" → "ca" "n't", "I'm" → "I" "'m", "we'll" → "we" "'ll".
fn contraction(s: &str) -> Option<usize> {
    if let Some(cut) = bare_contraction(s) {
        return Some(cut);
    }
    // "5pm", "11a.m.": hours 1-12 with am/pm.
    for suf in ["am", "pm", "a.m.", "p.m."] {
        if let Some(h) = s.strip_suffix(suf) {
            if h.parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)) && !h.starts_with('0') {
                return Some(h.len());
            }
        }
    }
    for suf in ["n't", "n’t"] {
        if s.len() > suf.len() && s.ends_with(suf) && s[..s.len() - suf.len()].chars().all(char::is_alphabetic) {
            return Some(s.len() - suf.len());
        }
    }
    for suf in ["'m", "'re", "'ve", "'ll", "'d", "’m", "’re", "’ve", "’ll", "’d"] {
        if s.len() > suf.len() && s.ends_with(suf) && s[..s.len() - suf.len()].chars().all(char::is_alphabetic) {
            return Some(s.len() - suf.len());
        }
    }
    None
}

/// A word of up to 8 ASCII bytes packed into an integer, for cheap exact lookups.
fn pack(b: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    k[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(k)
}

/// Split point of a contraction written without apostrophe. spaCy lists the lower-case
/// and capitalised forms only ("dont", "Dont", not "DONT").
fn bare_contraction(s: &str) -> Option<usize> {
    static TABLE: std::sync::OnceLock<Vec<(u64, usize)>> = std::sync::OnceLock::new();
    let b = s.as_bytes();
    if !(2..=8).contains(&b.len()) {
        return None;
    }
    // Every entry ends in one of these letters; most words are ruled out here.
    if !matches!(b[b.len() - 1], b't' | b'm' | b'e' | b's' | b'd' | b'l' | b'a') {
        return None;
    }
    if !b[0].is_ascii_alphabetic() || !b[1..].iter().all(u8::is_ascii_lowercase) {
        return None;
    }
    let mut lower = [0u8; 8];
    lower[..b.len()].copy_from_slice(b);
    lower[0] = lower[0].to_ascii_lowercase();
    let table = TABLE.get_or_init(|| {
        let mut t: Vec<(u64, usize)> = BARE_CONTRACTIONS
            .iter()
            .map(|(w, cut)| (pack(w.as_bytes()), *cut))
            .collect();
        t.sort_unstable();
        t
    });
    let key = pack(&lower[..b.len()]);
    table.binary_search_by_key(&key, |e| e.0).ok().map(|i| table[i].1)
}

fn looks_like_url(s: &str) -> bool {
    s.contains("://") || s.starts_with("www.")
}

fn spaced(text: &str, s: usize, e: usize, out: &mut Vec<Range<usize>>) {
    // Fast path: plain letters are one token (no prefix, suffix or infix rule applies),
    // unless they are a contraction written without apostrophe ("dont").
    let bytes = &text.as_bytes()[s..e];
    if bytes.iter().all(u8::is_ascii_alphabetic) && bare_contraction(&text[s..e]).is_none() {
        out.push(s..e);
        return;
    }
    let (mut a, mut b) = (s, e);
    let mut suffixes: Vec<Range<usize>> = Vec::new();
    let mut last = usize::MAX;
    // Strip prefixes and suffixes until nothing changes or a special case is left.
    while a < b && b - a != last {
        let cur = &text[a..b];
        // URLs are recognised only once the affixes are off ("http://x.com/a." ends in ".").
        if is_special(cur) {
            break;
        }
        last = b - a;
        let pre = prefix_len(cur);
        if pre > 0 && pre < cur.len() && is_special(&cur[pre..]) {
            out.push(a..a + pre);
            a += pre;
            break;
        }
        let suf = if pre < cur.len() { suffix_len(&cur[pre..]) } else { 0 };
        if suf > 0 && suf < cur.len() && is_special(&cur[..cur.len() - suf]) {
            suffixes.push(b - suf..b);
            b -= suf;
            break;
        }
        if pre > 0 {
            out.push(a..a + pre);
            a += pre;
        }
        if suf > 0 && a + suf <= b {
            suffixes.push(b - suf..b);
            b -= suf;
        }
    }
    if a < b {
        let core = &text[a..b];
        if is_special(core) || looks_like_url(core) {
            out.push(a..b);
        } else if let Some(cut) = contraction(core) {
            out.push(a..a + cut);
            out.push(a + cut..b);
        } else {
            infixes(text, a, b, out);
        }
    }
    out.extend(suffixes.into_iter().rev());
}

const HYPHENS: &[&str] = &["---", "--", "——", "—", "–", "-", "~"];

/// Splits `text[a..b]` at infixes: ellipses, icons, `3-4`, `word.Word`, `a,b`, `well-known`,
/// `km/h`.
fn infixes(text: &str, a: usize, b: usize, out: &mut Vec<Range<usize>>) {
    let s = &text[a..b];
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut start = 0; // byte offset in s of the current piece
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let prev = if i > 0 { Some(chars[i - 1].1) } else { None };
        let next = chars.get(i + 1).map(|x| x.1);
        let mut len = 0;
        if c == '.' && next == Some('.') {
            len = s[pos..].bytes().take_while(|&x| x == b'.').count();
        } else if c == '…' || c == '°' || is_icon(c) {
            len = c.len_utf8();
        } else if let Some(p) = prev {
            let alpha_next = next.is_some_and(char::is_alphabetic);
            // One-character infixes: `3-4`, `word.Word`, `a,b`, `km/h`.
            let digit_op = matches!(c, '+' | '-' | '*' | '^')
                && p.is_ascii_digit()
                && next.is_some_and(|n| n.is_ascii_digit() || n == '-');
            let sentence_dot =
                c == '.' && (lowerish(p) || is_quote(p)) && next.is_some_and(|n| upperish(n) || is_quote(n));
            let comma = c == ',' && p.is_alphabetic() && alpha_next;
            let operator = p.is_alphanumeric() && matches!(c, ':' | '<' | '>' | '=' | '/') && alpha_next;
            if digit_op || sentence_dot || comma || operator {
                len = 1;
            } else if p.is_alphanumeric() {
                if let Some(h) = HYPHENS.iter().find(|h| s[pos..].starts_with(**h)) {
                    let after = s[pos + h.len()..].chars().next();
                    if after.is_some_and(char::is_alphabetic) {
                        len = h.len();
                    }
                }
            }
        }
        if len > 0 && pos > 0 || (len > 0 && pos == 0 && (c == '…' || c == '.' || c == '°' || is_icon(c))) {
            if pos > start {
                out.push(a + start..a + pos);
            }
            out.push(a + pos..a + pos + len);
            start = pos + len;
            while i < chars.len() && chars[i].0 < start {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    if start < s.len() {
        out.push(a + start..b);
    }
}

/// datatrove's `TERMINAL_PUNCTUATION` (sentence-final marks across scripts), without the
/// rare supplementary-plane ones.
pub fn is_terminal_punct(c: char) -> bool {
    matches!(
        c,
        '!' | '.'
            | '?'
            | '։'
            | '؝'
            | '؞'
            | '؟'
            | '۔'
            | '܀'
            | '܁'
            | '܂'
            | '߹'
            | '࠷'
            | '࠹'
            | '࠽'
            | '࠾'
            | '।'
            | '॥'
            | '၊'
            | '။'
            | '።'
            | '፧'
            | '፨'
            | '᙮'
            | '᜵'
            | '᜶'
            | '។'
            | '៕'
            | '៖'
            | '៙'
            | '៚'
            | '᠃'
            | '᠉'
            | '᥄'
            | '᥅'
            | '᪨'
            | '᪩'
            | '᪪'
            | '᪫'
            | '᭚'
            | '᭛'
            | '᭞'
            | '᭟'
            | '᭽'
            | '᭾'
            | '᰻'
            | '᰼'
            | '᱾'
            | '᱿'
            | '‼'
            | '‽'
            | '⁇'
            | '⁈'
            | '⁉'
            | '⸮'
            | '⸼'
            | '⹓'
            | '⹔'
            | '。'
            | '꓿'
            | '꘎'
            | '꘏'
            | '꛳'
            | '꛷'
            | '꡶'
            | '꡷'
            | '꣎'
            | '꣏'
            | '꤯'
            | '꧈'
            | '꧉'
            | '꩝'
            | '꩞'
            | '꩟'
            | '꫰'
            | '꫱'
            | '꯫'
            | '﹒'
            | '﹖'
            | '﹗'
            | '！'
            | '．'
            | '？'
            | '｡'
    )
}

/// Characters after which spaCy's sentencizer may start a new sentence.
fn is_sentence_end(s: &str) -> bool {
    matches!(
        s,
        "!" | "."
            | "?"
            | "։"
            | "؟"
            | "۔"
            | "܀"
            | "܁"
            | "܂"
            | "߹"
            | "।"
            | "॥"
            | "၊"
            | "။"
            | "።"
            | "፧"
            | "፨"
            | "᙮"
            | "‼"
            | "‽"
            | "⁇"
            | "⁈"
            | "⁉"
            | "⸮"
            | "⸼"
            | "。"
            | "﹒"
            | "﹖"
            | "﹗"
            | "！"
            | "．"
            | "？"
            | "｡"
    )
}

/// Unicode punctuation (general category P*), as spaCy's `is_punct`; ASCII exactly,
/// the common non-ASCII blocks otherwise.
pub fn is_punct_char(c: char) -> bool {
    if c.is_ascii() {
        return matches!(
            c,
            '!' | '"'
                | '#'
                | '%'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | ','
                | '-'
                | '.'
                | '/'
                | ':'
                | ';'
                | '?'
                | '@'
                | '['
                | '\\'
                | ']'
                | '_'
                | '{'
                | '}'
        );
    }
    matches!(c as u32, 0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF | 0x2010..=0x2027 | 0x2030..=0x2043
        | 0x2045..=0x2051 | 0x2053..=0x205E | 0x2E00..=0x2E4F | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F
        | 0xFF01..=0xFF03 | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F | 0xFF1A | 0xFF1B | 0xFF1F | 0xFF20 | 0xFF3B..=0xFF3D
        | 0xFF3F | 0xFF5B | 0xFF5D | 0xFF5F..=0xFF65 | 0x055A..=0x055F | 0x0589 | 0x060C | 0x061B | 0x061F | 0x06D4
        | 0x0964 | 0x0965 | 0x1361..=0x1368)
}

/// Sentences in `text` as spaCy's sentencizer counts them: a new sentence starts at the
/// first non-punctuation token after a sentence-final token.
pub fn count_sentences(text: &str, mode: WordMode) -> usize {
    count_sentences_in(text, &words(text, mode))
}

/// [`count_sentences`] over tokens already split (`toks` index into `text`).
pub fn count_sentences_in(text: &str, toks: &[Range<usize>]) -> usize {
    if toks.is_empty() {
        return 0;
    }
    let mut n = 1;
    let mut seen_end = false;
    for r in toks {
        let t = &text[r.clone()];
        let end = is_sentence_end(t);
        if seen_end && !end && !t.chars().all(is_punct_char) {
            n += 1;
            seen_end = false;
        } else if end {
            seen_end = true;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        words(s, WordMode::Spaced).into_iter().map(|r| &s[r]).collect()
    }

    #[test]
    fn english_like_spacy() {
        // Expected tokens are spaCy 3.8 `spacy.blank("en")` output for the same strings.
        let s = "Hello, world! It's a well-known fact (see U.S. law) that Mr. Smith's dog can't bark... \"Really?\" 3-4 km/h, e.g. 1990-91 and http://x.com/a. U.K.-based etc. Washington. USA.";
        assert_eq!(
            toks(s),
            [
                "Hello",
                ",",
                "world",
                "!",
                "It",
                "'s",
                "a",
                "well",
                "-",
                "known",
                "fact",
                "(",
                "see",
                "U.S.",
                "law",
                ")",
                "that",
                "Mr.",
                "Smith",
                "'s",
                "dog",
                "ca",
                "n't",
                "bark",
                "...",
                "\"",
                "Really",
                "?",
                "\"",
                "3",
                "-",
                "4",
                "km",
                "/",
                "h",
                ",",
                "e.g.",
                "1990",
                "-",
                "91",
                "and",
                "http://x.com/a",
                ".",
                "U.K.-based",
                "etc",
                ".",
                "Washington",
                ".",
                "USA",
                "."
            ]
        );
        assert_eq!(
            toks("co-operation ...and 10km 5%. A. J. Smith"),
            [
                "co",
                "-",
                "operation",
                "...",
                "and",
                "10",
                "km",
                "5",
                "%",
                ".",
                "A.",
                "J.",
                "Smith"
            ]
        );
    }

    #[test]
    fn sentences_like_the_sentencizer() {
        let s = "Hello, world! It's a well-known fact (see U.S. law) that Mr. Smith's dog can't bark... \"Really?\" 3-4 km/h, e.g. 1990-91 and http://x.com/a. U.K.-based etc. Washington. USA.";
        assert_eq!(count_sentences(s, WordMode::Spaced), 6);
        assert_eq!(
            count_sentences("co-operation ...and 10km 5%. A. J. Smith", WordMode::Spaced),
            2
        );
    }

    #[test]
    fn chinese_counts_characters() {
        let s = "床前明月光，疑是地上霜。Hello world";
        let w: Vec<&str> = words(s, WordMode::Cjk).into_iter().map(|r| &s[r]).collect();
        assert_eq!(
            w,
            ["床", "前", "明", "月", "光", "，", "疑", "是", "地", "上", "霜", "。", "Hello", "world"]
        );
    }
}
