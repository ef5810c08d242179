//! Opening an input file: format detection by content (gzip, WARC, JSON lines, Parquet),
//! transparent decompression (multi-member gzip, as Common Crawl writes one member per
//! record), a counter of raw bytes read for error offsets, and a line reader with a cap.
use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};

/// Input formats ingest understands; WET files are WARC files of `conversion` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Auto,
    Warc,
    Jsonl,
    Parquet,
}

const BAD_FILE_FIX: &str =
    "re-download or replace the file, remove it from the inputs, or set ingest.on_bad_file = \"skip\"";

fn bad_file(path: &Path, offset: u64, what: impl Into<String>) -> PipelineError {
    PipelineError::BadFile {
        path: path.to_owned(),
        offset,
        what: what.into(),
        fix: BAD_FILE_FIX.into(),
    }
}

/// Raw bytes read so far from the file under a decoder, shared with the reader's owner.
#[derive(Clone, Default)]
pub struct RawOffset(Rc<Cell<u64>>);

impl RawOffset {
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

struct Counting<R> {
    inner: R,
    count: RawOffset,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.0.set(self.count.0.get() + n as u64);
        Ok(n)
    }
}

/// An opened text-stream input (WARC or JSON lines), decompressed if needed.
pub struct Opened {
    pub gzip: bool,
    pub reader: Box<dyn BufRead>,
    pub raw: RawOffset,
}

/// Whether bytes start with the gzip magic number.
pub(super) fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| PipelineError::io(path, e))
}

/// Detects the format of `path` from its first bytes (`hint` wins unless `Auto`).
pub fn detect(path: &Path, hint: Format) -> Result<(Format, bool)> {
    let mut head = [0u8; 4];
    let mut f = open_file(path)?;
    let n = read_up_to(&mut f, &mut head).map_err(|e| PipelineError::io(path, e))?;
    if n == 0 {
        return Err(bad_file(path, 0, "file is empty"));
    }
    let gzip = is_gzip(&head[..n]);
    if &head[..n] == b"PAR1" {
        return Ok((Format::Parquet, false));
    }
    if hint != Format::Auto {
        return Ok((hint, gzip));
    }
    let mut inner = [0u8; 16];
    let m = if gzip {
        let mut dec = MultiGzDecoder::new(open_file(path)?);
        read_up_to(&mut dec, &mut inner)
            .map_err(|e| bad_file(path, 0, format!("gzip stream unreadable at its start: {e}")))?
    } else {
        inner[..n].copy_from_slice(&head[..n]);
        n + read_up_to(&mut f, &mut inner[n..]).map_err(|e| PipelineError::io(path, e))?
    };
    let start = inner[..m].iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(m);
    let body = &inner[start..m];
    if body.starts_with(b"WARC/") {
        Ok((Format::Warc, gzip))
    } else if body.starts_with(b"{") {
        Ok((Format::Jsonl, gzip))
    } else if body.is_empty() {
        Err(bad_file(path, 0, "file holds no data"))
    } else {
        Err(bad_file(
            path,
            0,
            format!(
                "unrecognised format (starts with {:?}); expected WARC/WET, JSON lines or Parquet, plain or gzip",
                String::from_utf8_lossy(body)
            ),
        ))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Opens a WARC or JSON-lines file as a buffered, decompressed stream.
pub fn open_stream(path: &Path, gzip: bool) -> Result<Opened> {
    let raw = RawOffset::default();
    let counted = Counting {
        inner: open_file(path)?,
        count: raw.clone(),
    };
    let reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(BufReader::with_capacity(1 << 16, counted)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, counted))
    };
    Ok(Opened { gzip, reader, raw })
}

/// Ledger reason for a stream that broke mid-file: cut short, or undecodable.
pub fn stream_reason(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "truncated_record"
    } else {
        "corrupt_input"
    }
}

/// One line read under a cap.
pub enum CappedLine {
    Eof,
    /// The line without its terminator, and whether it was longer than the cap
    /// (the rest was consumed and discarded).
    Line(Vec<u8>, bool),
}

/// Reads one line keeping at most `cap` bytes, so a gigantic line cannot exhaust memory.
/// `pos` advances by the bytes consumed.
pub fn read_capped_line<R: BufRead + ?Sized>(r: &mut R, cap: usize, pos: &mut u64) -> io::Result<CappedLine> {
    let mut out = Vec::new();
    let mut over = false;
    let mut any = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        any = true;
        let (chunk, found) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = cap.saturating_sub(out.len());
        over |= chunk.len() > room + usize::from(found);
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        r.consume(n);
        *pos += n as u64;
        if found {
            break;
        }
    }
    if !any {
        return Ok(CappedLine::Eof);
    }
    while matches!(out.last(), Some(b'\n' | b'\r')) {
        out.pop();
    }
    Ok(CappedLine::Line(out, over))
}
