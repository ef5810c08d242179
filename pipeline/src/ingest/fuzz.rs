//! Entry points for the coverage-guided fuzz targets (`fuzz/`): each reader of ingest on
//! arbitrary bytes, in memory, exactly as ingest drives it on a file. None may panic, hang
//! or allocate beyond its caps, whatever the bytes.
use std::io::{BufRead, BufReader, Cursor};

use flate2::read::MultiGzDecoder;

use super::http::{decode_html, parse_response};
use super::jsonl::{line_outcome, Line};
use super::open::{is_gzip, read_capped_line, CappedLine};
use super::warc::{WarcItem, WarcReader};
use super::FileCtx;

/// Record and body cap of the targets: small, so an input cannot make a large allocation
/// look legitimate (ingest's default is 16 MiB).
pub const CAP: u64 = 1 << 20;

/// Plain or gzip (one member per record or one for the file) by the magic bytes, as
/// `open::detect` decides for a file.
fn stream(data: &[u8]) -> Box<dyn BufRead + '_> {
    if is_gzip(data) {
        Box::new(BufReader::new(MultiGzDecoder::new(Cursor::new(data))))
    } else {
        Box::new(Cursor::new(data))
    }
}

/// The HTTP layer of one `response` block: status line and headers, chunked transfer
/// coding, gzip/deflate content coding, charset detection and decoding.
pub fn http(block: &[u8]) -> usize {
    match parse_response(block, CAP) {
        Ok(r) => decode_html(&r.body, r.charset.as_deref()).text.len(),
        Err(e) => e.len(),
    }
}

/// The WARC/WET reader over a whole (possibly gzip) stream, every response block through
/// [`http`]. Returns how many items it read, so the work is not optimised away.
pub fn warc(data: &[u8]) -> usize {
    let mut n = 0;
    for item in WarcReader::new(stream(data), CAP) {
        n += 1;
        if let WarcItem::Record(r) = item {
            if r.header("WARC-Type") == Some("response") {
                n += http(&r.block);
            }
        }
    }
    n
}

/// The JSON-lines reader: capped lines, then each line's outcome (document or quarantine);
/// a file with no dump of its own is an error, as in ingest.
pub fn jsonl(data: &[u8]) -> usize {
    let ctx = FileCtx {
        path: std::path::Path::new("fuzz.jsonl"),
        name: "fuzz.jsonl".into(),
        max_record_bytes: CAP,
        threads: 1,
    };
    let mut r = stream(data);
    let (mut pos, mut number, mut n) = (0u64, 0u64, 0usize);
    loop {
        let offset = pos;
        match read_capped_line(&mut *r, CAP as usize, &mut pos) {
            Ok(CappedLine::Line(bytes, too_long)) => {
                number += 1;
                let line = Line {
                    number,
                    offset,
                    bytes,
                    too_long,
                };
                // Alternate a configured dump and none, so both paths run.
                let dump = (number % 2 == 0).then_some("FUZZ-2024-01");
                n += line_outcome(&ctx, dump, &line).map_or(1, |o| o.bytes_in as usize);
            }
            Ok(CappedLine::Eof) | Err(_) => return n,
        }
    }
}
