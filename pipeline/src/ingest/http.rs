//! The HTTP response inside a WARC `response` record: status, media type, charset,
//! transfer/content decoding, and decoding the payload to text.
//!
//! Charset precedence follows the HTML standard's sniffing, simplified: byte-order mark,
//! then the HTTP `charset`, then a `<meta charset>` in the first 1024 bytes, then UTF-8
//! if the bytes are valid UTF-8, else windows-1252 (the web's default for unlabelled pages).
use std::borrow::Cow;
use std::io::Read;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use flate2::read::{MultiGzDecoder, ZlibDecoder};

pub struct HttpResponse<'a> {
    pub status: u16,
    /// Lower-cased media type without parameters (`text/html`).
    pub mime: Option<String>,
    pub charset: Option<String>,
    pub body: Cow<'a, [u8]>,
}

/// Parses an HTTP/1.x response block. Errors are short ledger-style detail strings.
pub fn parse_response(block: &[u8], max_body: u64) -> Result<HttpResponse<'_>, String> {
    let (head, body_start) = match find(block, b"\r\n\r\n") {
        Some(i) => (&block[..i], i + 4),
        None => match find(block, b"\n\n") {
            Some(i) => (&block[..i], i + 2),
            None => return Err("no end of HTTP headers".into()),
        },
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let proto = parts.next().unwrap_or_default();
    if !proto.starts_with("HTTP/") {
        return Err(format!(
            "not an HTTP status line: {:?}",
            status_line.chars().take(40).collect::<String>()
        ));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad HTTP status line: {status_line:?}"))?;
    let (mut mime, mut charset, mut chunked, mut encoding) = (None, None, false, None);
    for line in lines {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-type") {
            let mut it = v.split(';');
            mime = it
                .next()
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| !m.is_empty());
            for p in it {
                if let Some((pk, pv)) = p.split_once('=') {
                    if pk.trim().eq_ignore_ascii_case("charset") {
                        charset = Some(pv.trim().trim_matches(['"', '\'']).to_owned());
                    }
                }
            }
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("content-encoding") {
            encoding = Some(v.to_ascii_lowercase());
        }
    }
    let raw = &block[body_start..];
    let mut body: Cow<'_, [u8]> = if chunked {
        Cow::Owned(dechunk(raw).unwrap_or_else(|| raw.to_vec()))
    } else {
        Cow::Borrowed(raw)
    };
    // Common Crawl (2014 and later) stores bodies already decoded but keeps the server's
    // Content-Encoding header, so the header is trusted only when the bytes agree.
    match encoding.as_deref() {
        None | Some("identity" | "") => {}
        Some("gzip" | "x-gzip") if super::open::is_gzip(&body) => {
            body = Cow::Owned(inflate(MultiGzDecoder::new(&body[..]), max_body)?)
        }
        Some("deflate") => {
            if let Ok(inflated) = inflate(ZlibDecoder::new(&body[..]), max_body) {
                body = Cow::Owned(inflated)
            }
        }
        Some("gzip" | "x-gzip") => {}
        Some(other) if is_binary(&body) => return Err(format!("unsupported Content-Encoding {other:?}")),
        Some(_) => {}
    }
    Ok(HttpResponse {
        status,
        mime,
        charset,
        body,
    })
}

fn inflate(r: impl Read, max: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("Content-Encoding body undecodable: {e}"))?;
    if out.len() as u64 > max {
        return Err(format!("decoded body exceeds max_record_bytes = {max}"));
    }
    Ok(out)
}

/// Encoded bodies are binary; decoded HTML has no NUL or most C0 control bytes early on.
fn is_binary(b: &[u8]) -> bool {
    b.iter().take(512).any(|&c| c < 0x09 || (0x0e..0x20).contains(&c))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    loop {
        let nl = find(b, b"\r\n")?;
        let size_str = std::str::from_utf8(&b[..nl]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size_str, 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// True for media types worth extracting text from; a missing type is sniffed.
pub fn is_html(mime: Option<&str>, body: &[u8]) -> bool {
    match mime {
        Some(m) => matches!(m, "text/html" | "application/xhtml+xml" | "application/xml+xhtml"),
        None => {
            let head = String::from_utf8_lossy(&body[..body.len().min(512)]).to_ascii_lowercase();
            head.contains("<html") || head.contains("<!doctype html")
        }
    }
}

/// Decoded page text and whether decoding had to replace malformed bytes.
pub struct Decoded {
    pub text: String,
    pub lossy: bool,
    pub encoding: &'static str,
}

/// Decodes an HTML payload to text (see the module doc for the precedence).
pub fn decode_html(body: &[u8], http_charset: Option<&str>) -> Decoded {
    let enc = Encoding::for_bom(body)
        .map(|(e, _)| e)
        .or_else(|| http_charset.and_then(|c| Encoding::for_label(c.as_bytes())))
        .or_else(|| meta_charset(body).and_then(|c| Encoding::for_label(c.as_bytes())))
        .map(|e| {
            if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE {
                e
            } else {
                e.output_encoding()
            }
        });
    let enc = match enc {
        Some(e) => e,
        None if std::str::from_utf8(body).is_ok() => UTF_8,
        None => WINDOWS_1252,
    };
    let (text, used, lossy) = enc.decode(body);
    Decoded {
        text: text.into_owned(),
        lossy,
        encoding: used.name(),
    }
}

/// `charset` from a `<meta charset=…>` or `<meta http-equiv content="…; charset=…">`
/// in the first 1024 bytes.
fn meta_charset(body: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    let mut rest = head.as_str();
    while let Some(i) = rest.find("<meta") {
        let tag_end = rest[i..].find('>').map_or(rest.len(), |j| i + j);
        let tag = &rest[i..tag_end];
        if let Some(c) = tag.find("charset") {
            let v = tag[c + 7..].trim_start().strip_prefix('=')?.trim_start();
            let v = v.trim_start_matches(['"', '\'']);
            let end = v
                .find(|ch: char| ch == '"' || ch == '\'' || ch == ';' || ch == '/' || ch.is_whitespace())
                .unwrap_or(v.len());
            if end > 0 {
                return Some(v[..end].to_owned());
            }
        }
        rest = &rest[tag_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_type_and_charset() {
        let block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n<p>caf\xe9</p>";
        let r = parse_response(block, 1 << 20).expect("valid response");
        assert_eq!(
            (r.status, r.mime.as_deref(), r.charset.as_deref()),
            (200, Some("text/html"), Some("ISO-8859-1"))
        );
        let d = decode_html(&r.body, r.charset.as_deref());
        assert_eq!(d.text, "<p>café</p>");
        assert!(!d.lossy);
    }

    #[test]
    fn meta_charset_and_fallbacks() {
        let gbk = b"<html><head><meta charset=\"gbk\"></head><body>\xc4\xe3\xba\xc3</body></html>";
        assert!(decode_html(gbk, None).text.contains("你好"));
        let latin = b"<html>na\xefve</html>";
        assert_eq!(decode_html(latin, None).encoding, "windows-1252");
        assert!(decode_html(latin, None).text.contains("naïve"));
    }

    #[test]
    fn chunked_and_gzip_bodies() {
        let block = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let r = parse_response(block, 1 << 20).expect("valid");
        assert_eq!(&r.body[..], b"hello world");
        assert!(parse_response(b"garbage", 10).is_err());
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            e.write_all(b"<p>zipped</p>").expect("in-memory write");
            e.finish().expect("in-memory write");
        }
        let mut block = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n".to_vec();
        block.extend_from_slice(&gz);
        assert_eq!(
            &parse_response(&block, 1 << 20).expect("valid").body[..],
            b"<p>zipped</p>"
        );
    }

    #[test]
    fn regression_cc_2014_decoded_body_with_gzip_header() {
        // CC-MAIN-2014-35 keeps `Content-Encoding: gzip` on bodies it stored decoded.
        let block =
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/html\r\n\r\n<!DOCTYPE html><p>plain</p>";
        let r = parse_response(block, 1 << 20).expect("decoded body accepted");
        assert_eq!(&r.body[..], b"<!DOCTYPE html><p>plain</p>");
    }
}
