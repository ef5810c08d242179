//! Reading a labelled source ([`SourceConfig`]) into documents: plain text, lines, HTML
//! (charset detection + ingest's extractor), JSON lines, Parquet, e-mails and BIG-bench
//! task files, each plain or gzip, and `.tar`/`.tar.gz` archives member by member. Every
//! file is also hashed (SHA-256 of its bytes as stored) for the model card.
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{email, SourceConfig, SourceFile, SourceFormat};
use crate::error::{PipelineError, Result};
use crate::ingest::{decode_html, main_text};

/// A single-document file (or tar member) larger than this is an error, not a read.
const MAX_DOC_FILE: u64 = 256 << 20;
/// A line (JSON or text) longer than this is skipped and counted.
const MAX_LINE: usize = 16 << 20;

/// What a source held, for the model card.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SourceTally {
    pub files: u64,
    pub docs: u64,
    pub bytes: u64,
    /// Documents with no text left after extraction (skipped, counted).
    pub empty: u64,
    /// SHA-256 over the files in order: each file's own SHA-256 and name.
    pub sha256: String,
}

fn bad(path: &Path, what: impl Into<String>, fix: &str) -> PipelineError {
    PipelineError::BadFile {
        path: path.to_owned(),
        offset: 0,
        what: what.into(),
        fix: fix.into(),
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the file's bytes as stored, streamed (1 MiB at a time).
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| PipelineError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// The file's bytes as a stream, gunzipped when they start with the gzip magic.
fn open_decoded(path: &Path) -> Result<Box<dyn BufRead>> {
    let mut f = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| PipelineError::io(path, e))?;
    let f = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(BufReader::new(f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, f))
    })
}

/// Whether the stream is a tar archive (`ustar` at byte 257), without consuming it.
fn is_tar(r: &mut dyn BufRead) -> bool {
    r.fill_buf().is_ok_and(|b| b.len() >= 262 && &b[257..262] == b"ustar")
}

fn read_capped(r: &mut dyn Read, path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(MAX_DOC_FILE + 1)
        .read_to_end(&mut v)
        .map_err(|e| bad(path, format!("{what} unreadable: {e}"), "replace the file"))?;
    if v.len() as u64 > MAX_DOC_FILE {
        return Err(bad(
            path,
            format!("{what} is over {} MB", MAX_DOC_FILE >> 20),
            "split it, or use format = \"lines\" / \"jsonl\"",
        ));
    }
    Ok(v)
}

/// Reads every document of `source`, calling `f` with its text (at most `max_docs`).
pub fn for_each_doc(source: &SourceConfig, mut f: impl FnMut(&str) -> Result<()>) -> Result<SourceTally> {
    let mut tally = SourceTally::default();
    let mut digest = Sha256::new();
    if source.files.is_empty() {
        return Err(PipelineError::Config(format!(
            "quality source {}: its inputs {:?} match no file",
            source.name, source.inputs
        )));
    }
    let members = match &source.members {
        Some(p) => Some(
            glob::Pattern::new(p)
                .map_err(|e| PipelineError::Config(format!("quality source {}: members = {p:?}: {e}", source.name)))?,
        ),
        None => None,
    };
    let limit = if source.max_docs == 0 {
        u64::MAX
    } else {
        source.max_docs
    };
    let mut reader = DocReader {
        source,
        tally: &mut tally,
        limit,
        f: &mut f,
    };
    for file in &source.files {
        let sha = file_sha256(&file.path)?;
        digest.update(sha.as_bytes());
        digest.update(b"  ");
        digest.update(file.name.as_bytes());
        digest.update(b"\n");
        reader.tally.files += 1;
        if reader.done() {
            continue;
        }
        reader.file(file, members.as_ref())?;
    }
    tally.sha256 = hex(&digest.finalize());
    Ok(tally)
}

struct DocReader<'a, F> {
    source: &'a SourceConfig,
    tally: &'a mut SourceTally,
    limit: u64,
    f: &'a mut F,
}

impl<F: FnMut(&str) -> Result<()>> DocReader<'_, F> {
    fn done(&self) -> bool {
        self.tally.docs >= self.limit
    }

    fn emit(&mut self, text: &str) -> Result<()> {
        if self.done() {
            return Ok(());
        }
        if text.trim().is_empty() {
            self.tally.empty += 1;
            return Ok(());
        }
        self.tally.docs += 1;
        self.tally.bytes += text.len() as u64;
        (self.f)(text)
    }

    fn file(&mut self, file: &SourceFile, members: Option<&glob::Pattern>) -> Result<()> {
        let path = &file.path;
        if self.source.format == SourceFormat::Parquet {
            return self.parquet(path);
        }
        let mut r = open_decoded(path)?;
        if is_tar(&mut *r) {
            let mut archive = tar::Archive::new(r);
            let entries = archive
                .entries()
                .map_err(|e| bad(path, format!("tar unreadable: {e}"), "replace the archive"))?;
            for entry in entries {
                if self.done() {
                    break;
                }
                let mut entry =
                    entry.map_err(|e| bad(path, format!("tar entry unreadable: {e}"), "replace the archive"))?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let name = entry
                    .path()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if members.is_some_and(|m| !m.matches(&name)) {
                    continue;
                }
                let at = format!("{}:{name}", path.display());
                self.stream(&mut entry, Path::new(&at))?;
            }
            return Ok(());
        }
        if members.is_some() {
            return Err(bad(
                path,
                "`members` is set but the file is not a tar archive",
                "remove `members` from the source, or point it at a .tar / .tar.gz",
            ));
        }
        self.stream(&mut *r, path)
    }

    /// One file's (or tar member's) content in the source's format.
    fn stream(&mut self, r: &mut dyn Read, path: &Path) -> Result<()> {
        match self.source.format {
            SourceFormat::Text => {
                let b = read_capped(r, path, "text")?;
                self.emit(&String::from_utf8_lossy(&b))
            }
            SourceFormat::Html => {
                let b = read_capped(r, path, "HTML page")?;
                let page = decode_html(&b, None);
                match main_text(&page.text, None) {
                    Some(t) => self.emit(&t),
                    None => self.emit(""),
                }
            }
            SourceFormat::Email => {
                let b = read_capped(r, path, "e-mail")?;
                self.emit(&email::body_text(&b))
            }
            SourceFormat::Bigbench => {
                let b = read_capped(r, path, "BIG-bench task")?;
                self.bigbench(&b, path)
            }
            SourceFormat::Lines | SourceFormat::Jsonl => {
                let mut br = BufReader::with_capacity(1 << 20, r);
                let mut line = Vec::new();
                let mut n = 0u64;
                loop {
                    if self.done() {
                        return Ok(());
                    }
                    line.clear();
                    let got = (&mut br)
                        .take(MAX_LINE as u64 + 1)
                        .read_until(b'\n', &mut line)
                        .map_err(|e| bad(path, format!("unreadable at line {}: {e}", n + 1), "replace the file"))?;
                    if got == 0 {
                        return Ok(());
                    }
                    n += 1;
                    if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
                        // Skip the rest of an over-long line.
                        let mut sink = Vec::new();
                        let _ = br.read_until(b'\n', &mut sink);
                        self.tally.empty += 1;
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line);
                    if self.source.format == SourceFormat::Lines {
                        self.emit(text.trim_end_matches(['\n', '\r']))?;
                    } else if !text.trim().is_empty() {
                        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                            bad(
                                path,
                                format!("line {n} is not JSON: {e}"),
                                "fix the line, or use format = \"lines\"",
                            )
                        })?;
                        match v.get(&self.source.text_field).and_then(|t| t.as_str()) {
                            Some(t) => self.emit(t)?,
                            None => {
                                return Err(bad(
                                    path,
                                    format!("line {n} has no string field {:?}", self.source.text_field),
                                    "set text_field to the field holding the text",
                                ))
                            }
                        }
                    }
                }
            }
            SourceFormat::Parquet => Err(bad(
                path,
                "a Parquet file inside a tar archive",
                "extract it, and list the .parquet file itself",
            )),
        }
    }

    fn parquet(&mut self, path: &Path) -> Result<()> {
        let col = self.source.text_field.as_str();
        let perr = |e| PipelineError::Parquet {
            path: path.to_owned(),
            source: e,
        };
        let f = File::open(path).map_err(|e| PipelineError::io(path, e))?;
        let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(perr)?;
        let Some(idx) = b.schema().fields().iter().position(|f| f.name() == col) else {
            return Err(PipelineError::Config(format!(
                "{}: no column {col:?} (columns: {}); set text_field of quality source {}",
                path.display(),
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.source.name
            )));
        };
        let mask = ProjectionMask::roots(b.parquet_schema(), [idx]);
        for batch in b.with_projection(mask).with_batch_size(1024).build().map_err(perr)? {
            let batch = batch.map_err(|e| bad(path, format!("Parquet data unreadable: {e}"), "replace the file"))?;
            let c = batch.column(0);
            if let Some(s) = c.as_string_opt::<i32>() {
                for i in 0..s.len() {
                    if s.is_valid(i) {
                        self.emit(s.value(i))?;
                    }
                }
            } else if let Some(s) = c.as_string_opt::<i64>() {
                for i in 0..s.len() {
                    if s.is_valid(i) {
                        self.emit(s.value(i))?;
                    }
                }
            } else {
                return Err(PipelineError::Config(format!(
                    "{}: column {col:?} is {}, not text",
                    path.display(),
                    c.data_type()
                )));
            }
            if self.done() {
                break;
            }
        }
        Ok(())
    }

    /// BIG-bench `real_or_fake_text`: `target_scores` maps each sentence, in order, to
    /// 1.0 for the first machine-written one (less for the later ones); the machine-written
    /// part is that sentence and everything after it.
    fn bigbench(&mut self, b: &[u8], path: &Path) -> Result<()> {
        // serde_json's `preserve_order` is off, so the sentence order is read from the text.
        let task: serde_json::Value = serde_json::from_slice(b).map_err(|e| {
            bad(
                path,
                format!("not a BIG-bench task file: {e}"),
                "point the source at a *.task.json(.gz)",
            )
        })?;
        let Some(examples) = task.get("examples").and_then(|e| e.as_array()) else {
            return Err(bad(
                path,
                "no `examples` list",
                "point the source at a BIG-bench task file",
            ));
        };
        for (i, ex) in examples.iter().enumerate() {
            if self.done() {
                break;
            }
            if let Some(want) = &self.source.split {
                let split = ex.get("meta").and_then(|m| m.get("split")).and_then(|s| s.as_str());
                if split != Some(want.as_str()) {
                    continue;
                }
            }
            let input = ex.get("input").and_then(|v| v.as_str());
            let scores = ex.get("target_scores").and_then(|v| v.as_object());
            let (Some(input), Some(scores)) = (input, scores) else {
                return Err(bad(
                    path,
                    format!("example {i} lacks `input` or `target_scores`"),
                    "use a real_or_fake_text task file",
                ));
            };
            let switch = scores
                .iter()
                .find(|(_, v)| v.as_f64() == Some(1.0))
                .and_then(|(sentence, _)| input.find(sentence.as_str()));
            match switch {
                Some(at) => self.emit(&input[at..])?,
                None => self.tally.empty += 1,
            }
        }
        Ok(())
    }
}
