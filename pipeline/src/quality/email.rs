//! The body text of an RFC 822 / MIME e-mail, for e-mail corpora used as classifier
//! examples (SpamAssassin's ham and spam): headers dropped; multipart messages walked
//! (text parts joined, `multipart/alternative` preferring `text/plain`, attachments and
//! non-text parts skipped); base64 and quoted-printable decoded; the part's charset
//! decoded (else UTF-8, else windows-1252); HTML parts through ingest's main-text
//! extractor, or stripped of tags when it finds no article.
use base64::Engine as _;
use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

use crate::ingest::main_text;

/// Nesting deeper than this is not walked (a message bomb, or broken boundaries).
const MAX_DEPTH: usize = 8;

struct Part<'a> {
    mime: String,
    boundary: Option<String>,
    charset: Option<String>,
    encoding: String,
    attachment: bool,
    body: &'a [u8],
}

/// Splits at the first empty line; unfolds header continuation lines.
fn parse(raw: &[u8]) -> Part<'_> {
    let (head, body) = match find_blank_line(raw) {
        Some((h, b)) => (&raw[..h], &raw[b..]),
        None => (raw, &raw[raw.len()..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (mime, params) = split_params(get("content-type").unwrap_or("text/plain"));
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Part {
        mime,
        boundary: param("boundary"),
        charset: param("charset"),
        encoding: get("content-transfer-encoding")
            .unwrap_or("7bit")
            .trim()
            .to_ascii_lowercase(),
        attachment: get("content-disposition").is_some_and(|d| d.trim().to_ascii_lowercase().starts_with("attachment")),
        body,
    }
}

fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// `type/subtype; a=b; c="d"` → (lowercase type, [(lowercase name, value)]).
fn split_params(v: &str) -> (String, Vec<(String, String)>) {
    let mut it = v.split(';');
    let mime = it.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = it
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_owned()))
        .collect();
    (mime, params)
}

/// Base64 as mail writes it: padding optional, stray trailing bits allowed.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn decode_transfer(p: &Part<'_>) -> Vec<u8> {
    match p.encoding.as_str() {
        "base64" => {
            let clean: Vec<u8> = p.body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            BASE64.decode(&clean).unwrap_or_else(|_| p.body.to_vec())
        }
        "quoted-printable" => quoted_printable(p.body),
        _ => p.body.to_vec(),
    }
}

fn quoted_printable(b: &[u8]) -> Vec<u8> {
    let hexval = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            // Soft line break.
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hexval(c)),
                b.get(i + 2).and_then(|&c| hexval(c)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn decode_charset(bytes: &[u8], charset: Option<&str>) -> String {
    let enc =
        charset
            .and_then(|c| Encoding::for_label(c.as_bytes()))
            .unwrap_or(if std::str::from_utf8(bytes).is_ok() {
                UTF_8
            } else {
                WINDOWS_1252
            });
    enc.decode(bytes).0.into_owned()
}

/// Crude tag removal for HTML the extractor finds no article in (short spam pages).
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    let lower = html.to_ascii_lowercase();
    let mut skip_until: Option<&str> = None;
    let mut i = 0;
    let b = html.as_bytes();
    while i < b.len() {
        if let Some(end) = skip_until {
            if lower[i..].starts_with(end) {
                i += end.len();
                skip_until = None;
            } else {
                i += 1;
            }
            continue;
        }
        if !in_tag && lower[i..].starts_with("<script") {
            skip_until = Some("</script>");
            continue;
        }
        if !in_tag && lower[i..].starts_with("<style") {
            skip_until = Some("</style>");
            continue;
        }
        match b[i] {
            b'<' => {
                in_tag = true;
                out.push(' ');
            }
            b'>' if in_tag => in_tag = false,
            _ if !in_tag => {
                // Copy one whole character.
                let ch_len = html[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&html[i..i + ch_len]);
                i += ch_len;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn text_of(p: &Part<'_>, depth: usize, out: &mut Vec<String>) {
    if p.attachment || depth > MAX_DEPTH {
        return;
    }
    if p.mime.starts_with("multipart/") {
        let Some(boundary) = &p.boundary else {
            return;
        };
        let parts = split_multipart(p.body, boundary);
        if p.mime == "multipart/alternative" {
            let parsed: Vec<Part<'_>> = parts.iter().map(|b| parse(b)).collect();
            let pick = parsed
                .iter()
                .find(|q| q.mime == "text/plain")
                .or_else(|| parsed.iter().find(|q| q.mime == "text/html"))
                .or_else(|| parsed.first());
            if let Some(q) = pick {
                text_of(q, depth + 1, out);
            }
            return;
        }
        for b in parts {
            text_of(&parse(b), depth + 1, out);
        }
        return;
    }
    let is_text = p.mime == "text/plain" || p.mime.is_empty();
    let is_html = p.mime == "text/html";
    if !is_text && !is_html {
        return;
    }
    let text = decode_charset(&decode_transfer(p), p.charset.as_deref());
    let text = if is_html {
        main_text(&text, None).unwrap_or_else(|| strip_tags(&text))
    } else {
        text
    };
    if !text.trim().is_empty() {
        out.push(text.trim().to_owned());
    }
}

/// The parts between `--boundary` lines (the preamble and epilogue left out).
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut starts: Vec<(usize, usize, bool)> = Vec::new();
    let mut line_start = 0;
    for (i, &c) in body.iter().enumerate() {
        if c == b'\n' || i + 1 == body.len() {
            let end = if c == b'\n' { i } else { i + 1 };
            let line = &body[line_start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.starts_with(d) {
                let closing = line[d.len()..].starts_with(b"--");
                starts.push((line_start, (end + 1).min(body.len()), closing));
            }
            line_start = i + 1;
        }
    }
    let mut parts = Vec::new();
    for w in starts.windows(2) {
        let (_, content_start, closing) = w[0];
        if closing {
            break;
        }
        let content_end = w[1].0;
        if content_start <= content_end {
            parts.push(&body[content_start..content_end]);
        }
    }
    parts
}

/// The message's body text (see the module doc); empty when it has none.
pub fn body_text(raw: &[u8]) -> String {
    let mut out = Vec::new();
    text_of(&parse(raw), 0, &mut out);
    out.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message_drops_headers() {
        let m = b"From someone  Tue Aug  6 11:51:02 2002\nSubject: hi\nContent-Type: text/plain\n\nHello there.\nSecond line.\n";
        assert_eq!(body_text(m), "Hello there.\nSecond line.");
    }

    #[test]
    fn multipart_alternative_prefers_plain_and_decodes() {
        let m = b"Content-Type: multipart/alternative; boundary=\"XX\"\n\npreamble\n--XX\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nCaf=E9 au lait, soft=\nbreak\n--XX\nContent-Type: text/html\n\n<p>html version</p>\n--XX--\nepilogue\n";
        assert_eq!(body_text(m), "Café au lait, softbreak");
    }

    #[test]
    fn base64_parts_and_attachments() {
        let m = b"Content-Type: multipart/mixed; boundary=b1\n\n--b1\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nSGVsbG8g\nd29ybGQ=\n--b1\nContent-Type: text/plain\nContent-Disposition: attachment; filename=x.txt\n\nsecret attachment\n--b1--\n";
        assert_eq!(body_text(m), "Hello world");
    }

    #[test]
    fn html_only_spam_is_stripped_of_tags() {
        let m = b"Content-Type: text/html\n\n<html><head><style>p{}</style></head><body><b>BUY</b> now <a href=x>here</a></body></html>\n";
        let t = body_text(m);
        assert!(
            t.contains("BUY") && t.contains("now") && !t.contains('<') && !t.contains("p{}"),
            "{t}"
        );
    }
}
