//! spaCy's English tokenizer rules, as datatrove's word counts depend on them: special
//! cases (abbreviations, initials, emoticons, bare contractions), prefixes, suffixes,
//! contractions, URLs, infixes — checked token by token against spaCy 3.8 (bench/filters).
use std::ops::Range;

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

pub(super) fn spaced(text: &str, s: usize, e: usize, out: &mut Vec<Range<usize>>) {
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
