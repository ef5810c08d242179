//! A streaming WARC 1.0/1.1 record reader (WARC and WET files alike).
//!
//! Written here rather than taken from the `warc` crate because ingest needs three things
//! that crate does not give: the byte offset of every record (for error messages), a cap
//! on record size that skips an oversized body without allocating it, and recovery after
//! a malformed header (resynchronise on the next `WARC/` line instead of giving up on the
//! whole file). Bad records come out as [`WarcItem::Bad`], never as a panic.
use std::io::{self, BufRead, Read};

use super::open::{read_capped_line, stream_reason, CappedLine as Line};

/// Longest header block accepted; real WARC headers are well under 4 KB.
const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct WarcRecord {
    /// Offset of the `WARC/` line in the (decompressed) stream.
    pub offset: u64,
    pub headers: Vec<(String, String)>,
    pub block: Vec<u8>,
}

impl WarcRecord {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A record, or a record that could not be read, with a ledger reason.
#[derive(Debug)]
pub enum WarcItem {
    Record(WarcRecord),
    Bad(BadRecord),
}

impl WarcItem {
    /// Offset of the record in the (decompressed) stream.
    pub fn offset(&self) -> u64 {
        match self {
            Self::Record(r) => r.offset,
            Self::Bad(b) => b.offset,
        }
    }
}

#[derive(Debug)]
pub struct BadRecord {
    pub offset: u64,
    /// `malformed_warc_header`, `record_too_large`, `truncated_record`, `corrupt_input`.
    pub reason: &'static str,
    pub detail: String,
    pub record_id: Option<String>,
    pub url: Option<String>,
}

pub struct WarcReader<R> {
    r: R,
    pos: u64,
    max_record_bytes: u64,
    /// A `WARC/` line found while resynchronising, to start the next record with.
    pending: Option<(u64, Vec<u8>)>,
    done: bool,
}

impl<R: BufRead> WarcReader<R> {
    pub fn new(r: R, max_record_bytes: u64) -> Self {
        Self {
            r,
            pos: 0,
            max_record_bytes,
            pending: None,
            done: false,
        }
    }

    /// Reads one line, keeping at most `limit` bytes of it (the rest is consumed).
    fn read_line(&mut self, limit: usize) -> io::Result<Line> {
        read_capped_line(&mut self.r, limit, &mut self.pos)
    }

    fn stream_error(&mut self, offset: u64, e: &io::Error) -> WarcItem {
        self.done = true;
        WarcItem::Bad(BadRecord {
            offset,
            reason: stream_reason(e),
            detail: format!("stream unreadable from byte {}: {e}", self.pos),
            record_id: None,
            url: None,
        })
    }

    /// Skips to the next line starting with `WARC/`, remembering it for the next record.
    fn resync(&mut self) -> io::Result<()> {
        loop {
            let at = self.pos;
            match self.read_line(16)? {
                Line::Eof => {
                    self.done = true;
                    return Ok(());
                }
                Line::Line(l, _) if l.starts_with(b"WARC/") => {
                    // Re-read the whole version line is unnecessary: `WARC/1.x` fits in 16 bytes.
                    self.pending = Some((at, l));
                    return Ok(());
                }
                Line::Line(..) => {}
            }
        }
    }

    fn malformed(&mut self, offset: u64, detail: String, headers: &[(String, String)]) -> WarcItem {
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let bad = BadRecord {
            offset,
            reason: "malformed_warc_header",
            detail,
            record_id: get("WARC-Record-ID"),
            url: get("WARC-Target-URI"),
        };
        if let Err(e) = self.resync() {
            return self.stream_error(offset, &e);
        }
        WarcItem::Bad(bad)
    }

    fn next_item(&mut self) -> Option<WarcItem> {
        if self.done {
            return None;
        }
        // 1. The version line, skipping the blank lines between records.
        let (start, version) = match self.pending.take() {
            Some(p) => p,
            None => loop {
                let at = self.pos;
                match self.read_line(MAX_HEADER_BYTES) {
                    Err(e) => return Some(self.stream_error(at, &e)),
                    Ok(Line::Eof) => {
                        self.done = true;
                        return None;
                    }
                    Ok(Line::Line(l, _)) if l.iter().all(u8::is_ascii_whitespace) => continue,
                    Ok(Line::Line(l, _)) => break (at, l),
                }
            },
        };
        if !version.starts_with(b"WARC/") {
            let shown = String::from_utf8_lossy(&version[..version.len().min(40)]).into_owned();
            return Some(self.malformed(start, format!("expected a 'WARC/1.x' line, found {shown:?}"), &[]));
        }
        // 2. Header fields up to the blank line.
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut header_bytes = 0usize;
        loop {
            let line = match self.read_line(MAX_HEADER_BYTES) {
                Err(e) => return Some(self.stream_error(start, &e)),
                Ok(Line::Eof) => {
                    self.done = true;
                    return Some(WarcItem::Bad(BadRecord {
                        offset: start,
                        reason: "truncated_record",
                        detail: "file ends inside the record header".into(),
                        record_id: None,
                        url: None,
                    }));
                }
                Ok(Line::Line(l, cut)) => {
                    header_bytes += l.len();
                    if cut || header_bytes > MAX_HEADER_BYTES {
                        return Some(self.malformed(start, "header block over 64 KiB".into(), &headers));
                    }
                    l
                }
            };
            if line.is_empty() {
                break;
            }
            if matches!(line[0], b' ' | b'\t') {
                // Folded continuation of the previous field (WARC 1.0 allows it).
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(String::from_utf8_lossy(&line).trim());
                    continue;
                }
            }
            let text = String::from_utf8_lossy(&line);
            match text.split_once(':') {
                Some((k, v)) if !k.trim().is_empty() && !k.contains(' ') => {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => {
                    let shown: String = text.chars().take(60).collect();
                    return Some(self.malformed(
                        start,
                        format!("header line without 'Name: value': {shown:?}"),
                        &headers,
                    ));
                }
            }
        }
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| v.parse::<u64>());
        let len = match len {
            Some(Ok(n)) => n,
            Some(Err(_)) => return Some(self.malformed(start, "Content-Length is not a number".into(), &headers)),
            None => return Some(self.malformed(start, "no Content-Length header".into(), &headers)),
        };
        let field = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        // 3. The block: skipped unread when over the cap, so a huge record costs no memory.
        if len > self.max_record_bytes {
            let skipped = match io::copy(&mut (&mut self.r).take(len), &mut io::sink()) {
                Ok(n) => n,
                Err(e) => return Some(self.stream_error(start, &e)),
            };
            self.pos += skipped;
            if skipped < len {
                self.done = true;
            }
            return Some(WarcItem::Bad(BadRecord {
                offset: start,
                reason: "record_too_large",
                detail: format!(
                    "block of {len} bytes exceeds max_record_bytes = {}",
                    self.max_record_bytes
                ),
                record_id: field("WARC-Record-ID"),
                url: field("WARC-Target-URI"),
            }));
        }
        let mut block = Vec::with_capacity(len as usize);
        match (&mut self.r).take(len).read_to_end(&mut block) {
            Ok(n) => self.pos += n as u64,
            Err(e) => return Some(self.stream_error(start, &e)),
        }
        if (block.len() as u64) < len {
            self.done = true;
            return Some(WarcItem::Bad(BadRecord {
                offset: start,
                reason: "truncated_record",
                detail: format!("block declares {len} bytes, file ends after {}", block.len()),
                record_id: field("WARC-Record-ID"),
                url: field("WARC-Target-URI"),
            }));
        }
        Some(WarcItem::Record(WarcRecord {
            offset: start,
            headers,
            block,
        }))
    }
}

impl<R: BufRead> Iterator for WarcReader<R> {
    type Item = WarcItem;
    fn next(&mut self) -> Option<WarcItem> {
        self.next_item()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: &str, body: &str) -> String {
        format!(
            "WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{kind}>\r\nContent-Length: {}\r\n\r\n{body}\r\n\r\n",
            body.len()
        )
    }

    fn items(data: &[u8], max: u64) -> Vec<WarcItem> {
        WarcReader::new(data, max).collect()
    }

    #[test]
    fn reads_records_with_offsets() {
        let data = format!("{}{}", rec("warcinfo", "a: b"), rec("conversion", "hello world"));
        let got = items(data.as_bytes(), 1 << 20);
        assert_eq!(got.len(), 2);
        let WarcItem::Record(r) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(r.header("warc-type"), Some("conversion"));
        assert_eq!(r.block, b"hello world");
        assert_eq!(r.offset as usize, rec("warcinfo", "a: b").len());
    }

    #[test]
    fn malformed_header_is_reported_and_reader_resyncs() {
        let data = format!(
            "{}WARC/1.0\r\nthis is not a header\r\n\r\nxx\r\n\r\n{}",
            rec("a", "1"),
            rec("b", "22")
        );
        let got = items(data.as_bytes(), 1 << 20);
        let kinds: Vec<_> = got
            .iter()
            .map(|i| match i {
                WarcItem::Record(r) => r.header("WARC-Type").unwrap_or("?").to_owned(),
                WarcItem::Bad(b) => b.reason.to_owned(),
            })
            .collect();
        assert_eq!(kinds, ["a", "malformed_warc_header", "b"]);
    }

    #[test]
    fn oversized_record_is_skipped_without_reading_it() {
        let big = "x".repeat(5000);
        let data = format!("{}{}", rec("big", &big), rec("small", "ok"));
        let got = items(data.as_bytes(), 1000);
        assert!(matches!(&got[0], WarcItem::Bad(b) if b.reason == "record_too_large"));
        assert!(matches!(&got[1], WarcItem::Record(r) if r.block == b"ok"));
    }

    #[test]
    fn truncated_block_and_missing_length() {
        let data = rec("a", "0123456789");
        let cut = &data.as_bytes()[..data.len() - 8];
        let got = items(cut, 1 << 20);
        assert!(matches!(&got[..], [WarcItem::Bad(b)] if b.reason == "truncated_record"));
        let nolen = "WARC/1.0\r\nWARC-Type: x\r\n\r\nbody\r\n\r\n";
        let got = items(nolen.as_bytes(), 1 << 20);
        assert!(matches!(&got[..], [WarcItem::Bad(b)] if b.reason == "malformed_warc_header"));
    }

    #[test]
    fn garbage_and_empty_input() {
        assert!(items(b"", 10).is_empty());
        let got = items(b"\x00\x01binary junk\nmore\n", 10);
        assert!(matches!(&got[..], [WarcItem::Bad(b)] if b.reason == "malformed_warc_header"));
    }
}
