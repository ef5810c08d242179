//! The `ingest` stage: real crawl formats in, canonical documents out.
//!
//! 1. Inputs (files) are spread over shards by size, deterministically (largest first to
//!    the least-loaded shard), so every worker of a fanned-out step computes the same split.
//! 2. Each file's format is detected from its bytes: WARC/WET (plain or gzip, including
//!    one gzip member per record), JSON lines (datatrove/Dolma shape), Parquet.
//! 3. WARC `response` records go through HTTP parsing, charset decoding and main-text
//!    extraction; WET `conversion` records and JSON/Parquet text pass through.
//! 4. Every record is kept or dropped with a named reason; unreadable records are
//!    quarantined in the dropped output with the file and byte offset.
//!
//! Invalid UTF-8 is decoded lossily (U+FFFD) and counted (`lossy_utf8`), never dropped:
//! a few bad bytes in a long page should not cost the page, and the count shows the rate.
mod extract;
#[doc(hidden)]
pub mod fuzz;
mod http;
mod jsonl;
mod open;
mod parquet_in;
mod warc;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::fields::dump_from_path;
use crate::schema::Document;
use crate::stage::{par_map, ShardId, ShardWriter, Stage};

pub use extract::main_text;
pub use http::{decode_html, Decoded};
pub use open::Format;

/// What to do with an input file that cannot be used at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadFile {
    /// Fail the step, naming the file (default: a broken download should be noticed).
    Fail,
    /// Skip the file, count it (`bad_files`) and record why in the stats warnings.
    Skip,
}

/// `[ingest]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Records (WARC blocks, JSON lines) larger than this are quarantined unread.
    pub max_record_bytes: u64,
    pub on_bad_file: OnBadFile,
    /// Text column of Parquet inputs.
    pub text_column: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_record_bytes: 16 << 20,
            on_bad_file: OnBadFile::Fail,
            text_column: "text".into(),
        }
    }
}

impl IngestConfig {
    pub fn validate(&self) -> Result<()> {
        if self.max_record_bytes < 1024 {
            return Err(PipelineError::Config(format!(
                "ingest.max_record_bytes = {} is too small to hold a page; use at least 1024",
                self.max_record_bytes
            )));
        }
        if self.text_column.is_empty() {
            return Err(PipelineError::Config("ingest.text_column must not be empty".into()));
        }
        Ok(())
    }
}

/// One input file and the dump it belongs to (`None`: from its path or its warcinfo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: PathBuf,
    /// Stable name for what goes into outputs (ids, `detail`, fingerprint): the path as
    /// written in the config (relative to it) or on the command line, so output does not
    /// depend on the working directory.
    pub name: String,
    pub dump: Option<String>,
    pub format: Format,
}

/// The ingest stage over a fixed list of inputs.
pub struct Ingest {
    inputs: Vec<InputFile>,
    sizes: Vec<u64>,
    cfg: IngestConfig,
    threads: usize,
}

impl Ingest {
    /// Checks that every input exists; `threads` is per shard, for HTML extraction.
    pub fn new(inputs: Vec<InputFile>, cfg: IngestConfig, threads: usize) -> Result<Self> {
        cfg.validate()?;
        if inputs.is_empty() {
            return Err(PipelineError::Config(
                "ingest has no input files; list some under [[dumps]] inputs".into(),
            ));
        }
        let sizes = crate::stage::file_sizes(inputs.iter().map(|i| i.path.as_path()))?;
        Ok(Self {
            inputs,
            sizes,
            cfg,
            threads: threads.max(1),
        })
    }

    /// Identifies inputs (path, dump, format, size) and settings: a committed shard made
    /// with another fingerprint is not silently reused.
    pub fn fingerprint(&self) -> String {
        let key = serde_json::json!({
            "stage": "ingest/1",
            "config": self.cfg,
            "inputs": self
                .inputs
                .iter()
                .zip(&self.sizes)
                .map(|(i, size)| serde_json::json!([i.name, i.dump, i.format, size]))
                .collect::<Vec<_>>(),
        });
        crate::stage::fingerprint(&key)
    }

    /// Indices of the files shard `shard` reads, in input order.
    pub fn files_of(&self, shard: ShardId) -> Vec<usize> {
        crate::stage::assign_by_size(&self.sizes, shard)
    }

    fn ingest_file(&self, input: &InputFile, out: &mut ShardWriter) -> Result<()> {
        let (format, gzip) = open::detect(&input.path, input.format)?;
        let dump = input.dump.clone().or_else(|| dump_from_path(&input.path));
        let ctx = FileCtx {
            path: &input.path,
            name: input.name.clone(),
            max_record_bytes: self.cfg.max_record_bytes,
            threads: self.threads,
        };
        match format {
            Format::Parquet => parquet_in::ingest(&ctx, dump, &self.cfg.text_column, out),
            Format::Jsonl => jsonl::ingest(&ctx, dump, open::open_stream(&input.path, gzip)?, out),
            Format::Warc | Format::Auto => warc_ingest(&ctx, dump, open::open_stream(&input.path, gzip)?, out),
        }
    }
}

impl Stage for Ingest {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn run_shard(&self, shard: ShardId, out: &mut ShardWriter) -> Result<()> {
        for i in self.files_of(shard) {
            let input = &self.inputs[i];
            out.count("input_files", 1);
            out.count("input_file_bytes", self.sizes[i]);
            let lossy_before = out.counter("lossy_utf8");
            match self.ingest_file(input, out) {
                Ok(()) => {
                    let lossy = out.counter("lossy_utf8") - lossy_before;
                    if lossy > 0 {
                        out.warn(format!(
                            "{}: {lossy} record(s) held invalid UTF-8, decoded with U+FFFD (counted as lossy_utf8)",
                            input.name
                        ));
                    }
                }
                Err(e @ (PipelineError::BadFile { .. } | PipelineError::Parquet { .. }))
                    if self.cfg.on_bad_file == OnBadFile::Skip =>
                {
                    out.count("bad_files", 1);
                    out.warn(format!("skipped unusable file: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// What one file's processing needs to know.
pub(crate) struct FileCtx<'a> {
    pub path: &'a Path,
    pub name: String,
    pub max_record_bytes: u64,
    pub threads: usize,
}

impl FileCtx<'_> {
    pub fn no_dump(&self, offset: u64) -> PipelineError {
        PipelineError::BadFile {
            path: self.path.to_owned(),
            offset,
            what: "cannot tell which dump this file belongs to (no CC-MAIN-YYYY-WW in its path, no warcinfo isPartOf)"
                .into(),
            fix: "name the dump: `name = \"...\"` in its [[dumps]] entry, or --dump NAME".into(),
        }
    }
}

/// The decision about one record, computed off the writer so it can run in parallel.
pub(crate) enum Decision {
    Keep(Document),
    Drop(Document, &'static str, String),
    /// Not a document (e.g. a WARC `request`): counted under the reason, not written.
    Skip(String),
}

pub(crate) struct Outcome {
    pub bytes_in: u64,
    pub decision: Decision,
    pub lossy: bool,
    pub warning: Option<String>,
}

impl Outcome {
    pub fn apply(self, out: &mut ShardWriter) -> Result<()> {
        out.record_in(self.bytes_in);
        if self.lossy {
            out.count("lossy_utf8", 1);
        }
        if let Some(w) = self.warning {
            out.warn(w);
        }
        match self.decision {
            Decision::Keep(d) => {
                // A static key for the known formats: no allocation per document.
                match d.source_format.as_str() {
                    "warc" => out.count("kept_format/warc", 1),
                    "wet" => out.count("kept_format/wet", 1),
                    "jsonl" => out.count("kept_format/jsonl", 1),
                    "parquet" => out.count("kept_format/parquet", 1),
                    other => out.count(&format!("kept_format/{other}"), 1),
                }
                out.keep(&d)
            }
            Decision::Drop(d, reason, detail) => out.drop_doc(&d, reason, Some(&detail)),
            Decision::Skip(reason) => {
                out.drop_record(&reason);
                Ok(())
            }
        }
    }
}

/// Records are handed to the workers in chunks of this many, or this many bytes.
pub(crate) const CHUNK_ITEMS: usize = 256;
pub(crate) const CHUNK_BYTES: usize = 16 << 20;

fn warc_ingest(ctx: &FileCtx<'_>, mut dump: Option<String>, opened: open::Opened, out: &mut ShardWriter) -> Result<()> {
    let gzip = opened.gzip;
    let raw = opened.raw.clone();
    let mut reader = warc::WarcReader::new(opened.reader, ctx.max_record_bytes).peekable();
    loop {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        while chunk.len() < CHUNK_ITEMS && bytes < CHUNK_BYTES {
            let Some(item) = reader.next() else { break };
            if let warc::WarcItem::Record(r) = &item {
                bytes += r.block.len();
                if dump.is_none() && r.header("WARC-Type") == Some("warcinfo") {
                    dump = warcinfo_dump(&r.block);
                }
            }
            chunk.push((item, raw.get()));
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let needs_dump = chunk
            .iter()
            .any(|(i, _)| matches!(i, warc::WarcItem::Record(r) if r.header("WARC-Type") != Some("warcinfo")));
        let dump_name = match (&dump, needs_dump) {
            (Some(d), _) => d.clone(),
            (None, false) => String::new(),
            (None, true) => {
                let offset = chunk.first().map_or(0, |(i, _)| i.offset());
                return Err(ctx.no_dump(offset));
            }
        };
        // Where each record is, for messages: the decompressed offset is exact; the file
        // offset is how far the decoder had read when the record was complete.
        let located: Vec<(warc::WarcItem, String)> = chunk
            .into_iter()
            .map(|(i, raw_at)| {
                let o = i.offset();
                let loc = if gzip {
                    format!(
                        "{} @ byte {o} of the decompressed stream (file read to byte {raw_at})",
                        ctx.name
                    )
                } else {
                    format!("{} @ byte {o}", ctx.name)
                };
                (i, loc)
            })
            .collect();
        let outcomes = par_map(&located, ctx.threads, |(item, loc)| {
            warc_outcome(item, loc, &dump_name, ctx.max_record_bytes)
        });
        for o in outcomes {
            o.apply(out)?;
        }
    }
}

/// UTF-8 text of `bytes`, lossily decoded (U+FFFD) if invalid; `true` when lossy. The
/// strict check first: it is several times faster than the lossy decoder on valid text.
pub(crate) fn decode_utf8(bytes: &[u8]) -> (std::borrow::Cow<'_, str>, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (std::borrow::Cow::Borrowed(s), false),
        Err(_) => (String::from_utf8_lossy(bytes), true),
    }
}

fn warcinfo_dump(block: &[u8]) -> Option<String> {
    String::from_utf8_lossy(block).lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim().eq_ignore_ascii_case("isPartOf") && !v.trim().is_empty()).then(|| v.trim().to_owned())
    })
}

fn record_uuid(id: &str) -> &str {
    id.trim_start_matches('<')
        .trim_end_matches('>')
        .trim_start_matches("urn:uuid:")
}

fn doc_id(dump: &str, record_id: Option<&str>, url: Option<&str>, loc: &str) -> String {
    match (record_id, url) {
        (Some(r), _) => format!("{dump}/{}", record_uuid(r)),
        (None, Some(u)) => format!("{dump}/{u}"),
        (None, None) => format!("{dump}/{loc}"),
    }
}

fn warc_outcome(item: &warc::WarcItem, loc: &str, dump: &str, max_body: u64) -> Outcome {
    let r = match item {
        warc::WarcItem::Bad(b) => {
            let doc = Document {
                id: doc_id(dump, b.record_id.as_deref(), b.url.as_deref(), loc),
                text: String::new(),
                url: b.url.clone(),
                dump: dump.to_owned(),
                date: None,
                domain: b.url.as_deref().and_then(crate::fields::registered_domain),
                source_format: "warc".into(),
                signals: Default::default(),
            };
            let detail = format!("{loc}: {}", b.detail);
            return Outcome {
                bytes_in: 0,
                warning: Some(format!("quarantined record ({}): {detail}", b.reason)),
                decision: Decision::Drop(doc, b.reason, detail),
                lossy: false,
            };
        }
        warc::WarcItem::Record(r) => r,
    };
    let kind = r.header("WARC-Type").unwrap_or("").to_ascii_lowercase();
    let bytes_in = r.block.len() as u64;
    let url = r
        .header("WARC-Target-URI")
        .map(|u| u.trim_matches(['<', '>']).to_owned());
    let mut doc = Document {
        id: doc_id(dump, r.header("WARC-Record-ID"), url.as_deref(), loc),
        text: String::new(),
        dump: dump.to_owned(),
        date: r.header("WARC-Date").and_then(crate::fields::parse_timestamp),
        domain: url.as_deref().and_then(crate::fields::registered_domain),
        url,
        source_format: "warc".into(),
        signals: Default::default(),
    };
    let drop = |doc: Document, reason: &'static str, detail: String| Outcome {
        bytes_in,
        decision: Decision::Drop(doc, reason, format!("{loc}: {detail}")),
        lossy: false,
        warning: None,
    };
    match kind.as_str() {
        "conversion" => {
            doc.source_format = "wet".into();
            let (text, lossy) = decode_utf8(&r.block);
            doc.text = text.trim().to_owned();
            if doc.text.is_empty() {
                return drop(doc, "empty_text", "conversion record has no text".into());
            }
            Outcome {
                bytes_in,
                decision: Decision::Keep(doc),
                lossy,
                warning: None,
            }
        }
        "response" => {
            let resp = match http::parse_response(&r.block, max_body) {
                Ok(resp) => resp,
                Err(e) => return drop(doc, "bad_http_response", e),
            };
            if !(200..300).contains(&resp.status) {
                return drop(doc, "http_status_not_ok", format!("HTTP status {}", resp.status));
            }
            // Common Crawl's own sniffed type beats what the server claimed.
            let mime = r
                .header("WARC-Identified-Payload-Type")
                .map(|m| m.split(';').next().unwrap_or(m).trim().to_ascii_lowercase())
                .or_else(|| resp.mime.clone());
            if !http::is_html(mime.as_deref(), &resp.body) {
                let detail = format!("media type {}", mime.as_deref().unwrap_or("unknown"));
                return drop(doc, "not_html", detail);
            }
            let page = http::decode_html(&resp.body, resp.charset.as_deref());
            match main_text(&page.text, doc.url.as_deref()) {
                Some(text) => {
                    doc.text = text;
                    Outcome {
                        bytes_in,
                        decision: Decision::Keep(doc),
                        lossy: page.lossy,
                        warning: None,
                    }
                }
                None => drop(
                    doc,
                    "no_main_text",
                    format!("no readable main text ({} page)", page.encoding),
                ),
            }
        }
        "" => Outcome {
            bytes_in,
            decision: Decision::Skip("warc_type_missing".into()),
            lossy: false,
            warning: None,
        },
        other => {
            let known = ["warcinfo", "request", "metadata", "revisit", "resource", "continuation"];
            let name = if known.contains(&other) { other } else { "other" };
            Outcome {
                bytes_in,
                decision: Decision::Skip(format!("warc_type_{name}")),
                lossy: false,
                warning: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_balanced_by_size_and_cover_every_input() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| PipelineError::io("tmp", e))?;
        let sizes = [900usize, 100, 100, 100, 500, 400];
        let inputs: Vec<InputFile> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let p = dir.path().join(format!("f{i}.jsonl"));
                std::fs::write(&p, "x".repeat(*n)).map(|_| InputFile {
                    name: format!("f{i}.jsonl"),
                    path: p,
                    dump: Some("d".into()),
                    format: Format::Auto,
                })
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e| PipelineError::io("tmp", e))?;
        let ing = Ingest::new(inputs, IngestConfig::default(), 1)?;
        let a = ing.files_of(ShardId::new(0, 2)?);
        let b = ing.files_of(ShardId::new(1, 2)?);
        // Largest first to the least-loaded shard: 900 | 500, 400 | then the 100s alternate.
        assert_eq!(a, [0, 1, 3]);
        assert_eq!(b, [2, 4, 5]);
        Ok(())
    }
}
