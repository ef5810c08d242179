//! The stage contract: a [`Stage`] turns shard *i of n* of its input into one Parquet file
//! of kept documents, one of dropped documents (with reasons) and a stats record, and the
//! runner here commits them so that a killed step, rerun, ends exactly as an uninterrupted
//! one: each file is written under a temporary name, fsynced and renamed; the stats record
//! follows; the completion marker is written last. A shard with a marker is done: rerunning
//! it is a no-op unless forced; a shard without one is redone from scratch.
//!
//! Layout of a stage folder (stage name = subcommand = folder):
//!
//! ```text
//! <run>/<stage>/part-00003-of-00016.parquet           kept documents
//! <run>/<stage>/_dropped/part-00003-of-00016.parquet  dropped documents + reason
//! <run>/<stage>/_stats/part-00003-of-00016.json       ShardStats
//! <run>/<stage>/_done/part-00003-of-00016             completion marker (config fingerprint)
//! ```
//!
//! Side outputs live in `_`-prefixed folders, which pyarrow, Spark and Hive skip, so
//! reading `<run>/<stage>` as a dataset yields exactly the kept documents.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::schema::{Columns, DocBatchBuilder, Document};

/// Side-output folders of a stage folder.
pub const DROPPED_DIR: &str = "_dropped";
pub const STATS_DIR: &str = "_stats";
pub const DONE_DIR: &str = "_done";

/// Shard `index` of `of`, both validated (`index < of`, `of >= 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardId {
    index: usize,
    of: usize,
}

impl ShardId {
    pub fn new(index: usize, of: usize) -> Result<Self> {
        if of == 0 || index >= of {
            return Err(PipelineError::Config(format!(
                "shard {index} of {of} does not exist: --shard must be in 0..{of} and --of at least 1"
            )));
        }
        Ok(Self { index, of })
    }
    pub fn index(&self) -> usize {
        self.index
    }
    pub fn of(&self) -> usize {
        self.of
    }
    /// File stem shared by all of this shard's outputs.
    pub fn stem(&self) -> String {
        format!("part-{:05}-of-{:05}", self.index, self.of)
    }
}

/// Maps `items` to outcomes on up to `threads` threads, preserving order, so output is
/// identical at any thread count.
pub fn par_map<T: Sync, U: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    if threads <= 1 || items.len() < 2 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<U>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Indices of the inputs (by byte size) that `shard` processes, in input order: largest
/// first to the least-loaded shard, ties to the lower index — deterministic, so every
/// worker of a fanned-out step computes the same split.
pub fn assign_by_size(sizes: &[u64], shard: ShardId) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut load = vec![0u64; shard.of()];
    let mut mine = Vec::new();
    for i in order {
        let target = (0..shard.of()).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[target] += sizes[i].max(1);
        if target == shard.index() {
            mine.push(i);
        }
    }
    mine.sort_unstable();
    mine
}

/// Committed output files of an upstream stage, after checking that every shard of it is
/// committed; also returns the markers' fingerprints, so a redone upstream invalidates
/// what was built on it.
pub fn committed_outputs(stage_dir: &Path, needed_by: &str) -> Result<(Vec<PathBuf>, String)> {
    let done = stage_dir.join(DONE_DIR);
    let not_ready = |why: String| {
        PipelineError::Config(format!(
            "{needed_by} reads {}, but {why}; run that stage first (loam run does it in order)",
            stage_dir.display()
        ))
    };
    let mut markers: Vec<PathBuf> = fs::read_dir(&done)
        .map_err(|_| not_ready("it has no committed shard".into()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    markers.sort();
    let Some(first) = markers.first() else {
        return Err(not_ready("it has no committed shard".into()));
    };
    let of = file_name(first).as_deref().and_then(split_of).unwrap_or(0);
    if markers.len() != of {
        return Err(not_ready(format!(
            "only {} of its {of} shards are committed",
            markers.len()
        )));
    }
    let mut files = Vec::new();
    let mut fingerprints = String::new();
    for m in &markers {
        let stem = file_name(m).unwrap_or_default();
        fingerprints.push_str(&fs::read_to_string(m).map_err(|e| PipelineError::io(m, e))?);
        files.push(stage_dir.join(format!("{stem}.parquet")));
    }
    Ok((files, fingerprints))
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The shard count `n` of a `part-XXXXX-of-n` name.
fn split_of(name: &str) -> Option<usize> {
    name.rsplit("-of-").next().and_then(|s| s.parse().ok())
}

/// Sizes of `paths` in bytes, naming the file that cannot be read.
pub fn file_sizes<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<Vec<u64>> {
    paths
        .into_iter()
        .map(|p| fs::metadata(p).map(|m| m.len()).map_err(|e| PipelineError::io(p, e)))
        .collect()
}

/// A stage's configuration fingerprint: 128-bit xxh3 of the JSON key, in hex.
pub fn fingerprint(key: &serde_json::Value) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(key.to_string().as_bytes()))
}

/// Adds `n` under `key` without allocating when the key is already there (every
/// document passes through here).
fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_owned(), n);
        }
    }
}

/// A pipeline step. Implementations read their share of the input and report every
/// document they see through the [`ShardWriter`]: `record_in`, then `keep` or `drop_*`.
pub trait Stage: Sync {
    /// Stage name: also its subcommand and its folder in the run directory.
    fn name(&self) -> &'static str;
    /// Processes one shard. Errors abort the shard without committing anything.
    fn run_shard(&self, shard: ShardId, out: &mut ShardWriter) -> Result<()>;
    /// The columns this stage writes.
    fn columns(&self) -> Columns {
        Columns::Ingest
    }
    /// The stage whose kept documents this one reads (recorded in the stats, for the
    /// ledger); `None` for a stage reading raw inputs.
    fn upstream(&self) -> Option<&str> {
        None
    }
    /// False for a stage whose output is not documents (`tokenize` writes token shards,
    /// committing them itself inside `run_shard`): kept documents are then only counted.
    fn writes_documents(&self) -> bool {
        true
    }
}

/// What a shard did, as written to `_stats/<stem>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShardStats {
    pub stage: String,
    pub shard: usize,
    pub of: usize,
    /// Configuration fingerprint the shard was made with.
    pub fingerprint: String,
    /// The stage whose kept documents this one read (none for ingest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    pub docs_in: u64,
    /// Distinct documents kept.
    pub kept: u64,
    /// Rows written, when a stage writes a document more than once (remix's copies);
    /// the next stage reads this many. Absent: `kept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<u64>,
    /// Dropped documents (or records) per named reason.
    pub dropped: BTreeMap<String, u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub seconds: f64,
    /// Stage-specific tallies that are not ledger entries (e.g. `lossy_utf8`).
    pub counters: BTreeMap<String, u64>,
    /// First warnings raised (bad records, skipped files), for the report.
    pub warnings: Vec<String>,
    /// Stage-specific structured facts (e.g. quality's score histograms and threshold).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Text bytes (UTF-8) of the documents kept (of every row, for stages that write copies);
    /// `bytes_out` is what was written to disk.
    #[serde(default)]
    pub text_bytes_kept: u64,
    /// Text bytes of the documents dropped, per reason (records that are not documents
    /// add nothing): the report weighs drop reasons by bytes as well as by documents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped_bytes: BTreeMap<String, u64>,
    /// Documents and text bytes kept and dropped per dump, for per-dump funnels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_dump: BTreeMap<String, DumpTally>,
}

/// One dump's share of a shard's decisions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DumpTally {
    pub kept: u64,
    pub dropped: u64,
    pub kept_bytes: u64,
    pub dropped_bytes: u64,
}

impl ShardStats {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
    /// `docs_in == kept + Σ dropped`.
    pub fn balanced(&self) -> bool {
        self.docs_in == self.kept + self.dropped_total()
    }

    /// Rows the next stage reads.
    pub fn rows(&self) -> u64 {
        self.rows_out.unwrap_or(self.kept)
    }
}

const MAX_WARNINGS: usize = 100;
/// A batch is handed to the Parquet writer at this many rows or payload bytes.
const BATCH_ROWS: usize = 1024;
const BATCH_BYTES: usize = 32 << 20;

/// Rows per batch; `LOAM_BATCH_ROWS` lowers it so crash tests on small inputs can stop a
/// shard between two batches. Batch size changes Parquet page layout, never content.
fn batch_rows() -> usize {
    std::env::var("LOAM_BATCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(BATCH_ROWS)
}
/// zstd level 1: two thirds of the CPU of level 3 on web text for 15% larger files
/// (bench/ingest.sh, BENCHMARKS.md); stage outputs are intermediate, read once or twice.
const ZSTD_LEVEL: i32 = 1;
/// A row group is closed early past this many buffered bytes, to bound memory.
const ROW_GROUP_BYTES: usize = 24 << 20;

/// Writes a Parquet file under a temporary name; [`commit`](Self::commit) makes it durable
/// and moves it into place.
struct ParquetSink {
    tmp: PathBuf,
    dest: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
    buf: DocBatchBuilder,
    batch_rows: usize,
}

impl ParquetSink {
    fn create(dest: PathBuf, columns: Columns, with_reason: bool) -> Result<Self> {
        let tmp = tmp_path(&dest);
        let file = File::create(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| {
                PipelineError::Parquet {
                    path: dest.clone(),
                    source: e,
                }
            })?))
            .set_max_row_group_row_count(Some(64 * 1024))
            // Documents are unique, long strings: a dictionary never pays off and min/max
            // statistics over them cost time and footer space for no pruning benefit.
            .set_column_dictionary_enabled(ColumnPath::from("text"), false)
            .set_column_statistics_enabled(ColumnPath::from("text"), EnabledStatistics::None)
            .set_column_dictionary_enabled(ColumnPath::from("id"), false)
            .build();
        let schema = columns.schema(with_reason);
        let writer =
            ArrowWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema, Some(props)).map_err(|e| {
                PipelineError::Parquet {
                    path: tmp.clone(),
                    source: e,
                }
            })?;
        Ok(Self {
            tmp,
            dest,
            writer,
            buf: DocBatchBuilder::new(columns, with_reason),
            batch_rows: batch_rows(),
        })
    }

    fn maybe_flush(&mut self) -> Result<bool> {
        if self.buf.rows() >= self.batch_rows || self.buf.bytes() >= BATCH_BYTES {
            self.flush_batch()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.buf.rows() == 0 {
            return Ok(());
        }
        let batch = self.buf.finish()?;
        let perr = |e| PipelineError::Parquet {
            path: self.tmp.clone(),
            source: e,
        };
        self.writer.write(&batch).map_err(perr)?;
        if self.writer.in_progress_size() >= ROW_GROUP_BYTES {
            self.writer.flush().map_err(|e| PipelineError::Parquet {
                path: self.tmp.clone(),
                source: e,
            })?;
        }
        Ok(())
    }

    /// Finishes the file, fsyncs it and renames it into place; returns its size.
    fn commit(mut self) -> Result<u64> {
        self.flush_batch()?;
        let tmp = self.tmp.clone();
        let bufw = self.writer.into_inner().map_err(|e| PipelineError::Parquet {
            path: tmp.clone(),
            source: e,
        })?;
        let file = bufw.into_inner().map_err(|e| PipelineError::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| PipelineError::io(&tmp, e))?;
        let len = file.metadata().map_err(|e| PipelineError::io(&tmp, e))?.len();
        drop(file);
        fs::rename(&tmp, &self.dest).map_err(|e| PipelineError::io(&self.dest, e))?;
        Ok(len)
    }
}

/// The sink a stage writes one shard through; it also keeps the shard's ledger.
pub struct ShardWriter {
    kept: Option<ParquetSink>,
    dropped: ParquetSink,
    stats: ShardStats,
    shard: ShardId,
}

impl ShardWriter {
    /// Counts one document (or record) entering the stage.
    pub fn record_in(&mut self, bytes: u64) {
        self.stats.docs_in += 1;
        self.stats.bytes_in += bytes;
    }

    pub fn keep(&mut self, doc: &Document) -> Result<()> {
        self.stats.kept += 1;
        let bytes = doc.text.len() as u64;
        self.stats.text_bytes_kept += bytes;
        let t = self.dump_tally(&doc.dump);
        t.kept += 1;
        t.kept_bytes += bytes;
        if let Some(kept) = &mut self.kept {
            kept.buf.push(doc);
            if kept.maybe_flush()? {
                failpoint("mid_output", self.shard);
            }
        }
        Ok(())
    }

    /// Counts a kept document without writing it (stages whose output is not documents,
    /// or that write its rows with [`write_copy`](Self::write_copy)).
    pub fn keep_counted(&mut self) {
        self.stats.kept += 1;
    }

    /// Writes one row of a document counted kept with [`keep_counted`](Self::keep_counted):
    /// a stage that repeats documents counts each once kept and every row in `rows_out`.
    pub fn write_copy(&mut self, doc: &Document) -> Result<()> {
        *self.stats.rows_out.get_or_insert(0) += 1;
        self.stats.text_bytes_kept += doc.text.len() as u64;
        if let Some(kept) = &mut self.kept {
            kept.buf.push(doc);
            if kept.maybe_flush()? {
                failpoint("mid_output", self.shard);
            }
        }
        Ok(())
    }

    /// Declares that this shard's rows are copies (so `rows_out` is stated even when 0).
    pub fn rows_are_copies(&mut self) {
        self.stats.rows_out.get_or_insert(0);
    }

    /// Adds output bytes a stage committed itself (e.g. token shards).
    pub fn add_bytes_out(&mut self, n: u64) {
        self.stats.bytes_out += n;
    }

    /// The shard being written (for crash-test hooks in stages).
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Drops a document with a named reason; it goes to the dropped side output.
    pub fn drop_doc(&mut self, doc: &Document, reason: &str, detail: Option<&str>) -> Result<()> {
        bump(&mut self.stats.dropped, reason, 1);
        let bytes = doc.text.len() as u64;
        bump(&mut self.stats.dropped_bytes, reason, bytes);
        let t = self.dump_tally(&doc.dump);
        t.dropped += 1;
        t.dropped_bytes += bytes;
        self.dropped.buf.push_dropped(doc, reason, detail);
        self.dropped.maybe_flush()?;
        Ok(())
    }

    fn dump_tally(&mut self, dump: &str) -> &mut DumpTally {
        // Most documents hit an existing key: look up before allocating.
        if !self.stats.by_dump.contains_key(dump) {
            self.stats.by_dump.insert(dump.to_owned(), DumpTally::default());
        }
        self.stats.by_dump.get_mut(dump).expect("inserted above")
    }

    /// Drops a record that is not a document (e.g. a WARC `request`): counted, not written.
    pub fn drop_record(&mut self, reason: &str) {
        bump(&mut self.stats.dropped, reason, 1);
    }

    /// Current value of a stage-specific counter.
    pub fn counter(&self, counter: &str) -> u64 {
        self.stats.counters.get(counter).copied().unwrap_or(0)
    }

    /// Adds to a stage-specific counter.
    pub fn count(&mut self, counter: &str, n: u64) {
        bump(&mut self.stats.counters, counter, n);
    }

    /// Sets a stage-specific structured fact in the stats.
    pub fn set_extra(&mut self, key: &str, value: serde_json::Value) {
        self.stats.extra.insert(key.to_owned(), value);
    }

    /// Records a warning in the stats (the first [`MAX_WARNINGS`]) and on stderr.
    pub fn warn(&mut self, msg: String) {
        eprintln!("warning: {msg}");
        self.count("warnings", 1);
        if self.stats.warnings.len() < MAX_WARNINGS {
            self.stats.warnings.push(msg);
        }
    }
}

/// How a shard run ended.
#[derive(Debug, Clone)]
pub enum ShardOutcome {
    /// Processed and committed now.
    Done(ShardStats),
    /// Found committed by an earlier run with the same configuration; nothing was redone.
    AlreadyDone(ShardStats),
}

impl ShardOutcome {
    pub fn stats(&self) -> &ShardStats {
        match self {
            Self::Done(s) | Self::AlreadyDone(s) => s,
        }
    }
}

/// Paths of one shard's outputs inside a stage folder.
#[derive(Debug, Clone)]
pub struct ShardPaths {
    pub kept: PathBuf,
    pub dropped: PathBuf,
    pub stats: PathBuf,
    pub marker: PathBuf,
}

impl ShardPaths {
    pub fn new(stage_dir: &Path, shard: ShardId) -> Self {
        let stem = shard.stem();
        Self {
            kept: stage_dir.join(format!("{stem}.parquet")),
            dropped: stage_dir.join(DROPPED_DIR).join(format!("{stem}.parquet")),
            stats: stage_dir.join(STATS_DIR).join(format!("{stem}.json")),
            marker: stage_dir.join(DONE_DIR).join(stem),
        }
    }
}

/// Hidden, per-process temporary name beside `dest`: concurrent writers of the same file
/// (e.g. every worker of a fanned-out step saving the resolved config) never share one.
pub(crate) fn tmp_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Writes `bytes` to `dest` atomically: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(dest);
    let mut f = File::create(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| PipelineError::io(&tmp, e))?;
    f.sync_all().map_err(|e| PipelineError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, dest).map_err(|e| PipelineError::io(dest, e))?;
    sync_dir(dest)
}

pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PipelineError::io(dir, e))?;
    }
    Ok(())
}

/// Reads a shard's committed stats record.
pub fn read_stats(path: &Path) -> Result<ShardStats> {
    let bytes = fs::read(path).map_err(|e| PipelineError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| PipelineError::BadStats {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// Deletes temporary files a killed run of this shard left behind.
fn remove_stale_temps(stage_dir: &Path, shard: ShardId) -> Result<()> {
    // Only the runner's own files (Parquet, stats, marker): a stage's other outputs may
    // share the stem with another shard's (tokenize names token files after its inputs),
    // and a running shard's temporary file must not be deleted by its neighbour.
    let stem = shard.stem();
    let prefixes = [
        format!(".{stem}.parquet.tmp."),
        format!(".{stem}.json.tmp."),
        format!(".{stem}.tmp."),
    ];
    for dir in [
        stage_dir.to_owned(),
        stage_dir.join(DROPPED_DIR),
        stage_dir.join(STATS_DIR),
        stage_dir.join(DONE_DIR),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                fs::remove_file(e.path()).map_err(|err| PipelineError::io(e.path(), err))?;
            }
        }
    }
    Ok(())
}

/// Refuses to mix shards of different splits in one stage folder.
fn check_split(stage_dir: &Path, shard: ShardId) -> Result<()> {
    let Ok(entries) = fs::read_dir(stage_dir.join(DONE_DIR)) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Some(of) = split_of(&name) {
            if of != shard.of() {
                return Err(PipelineError::SplitChanged {
                    dir: stage_dir.to_owned(),
                    found: of,
                    asked: shard.of(),
                });
            }
        }
    }
    Ok(())
}

/// Runs `stage` on `shard` and commits its outputs under `stage_dir`.
///
/// `fingerprint` identifies the configuration (inputs and settings); a committed shard
/// with another fingerprint is an error unless `force`, so a changed config never
/// silently mixes with old outputs.
pub fn run_shard(
    stage: &dyn Stage,
    stage_dir: &Path,
    shard: ShardId,
    fingerprint: &str,
    force: bool,
) -> Result<ShardOutcome> {
    let paths = ShardPaths::new(stage_dir, shard);
    for dir in [
        stage_dir,
        &stage_dir.join(DROPPED_DIR),
        &stage_dir.join(STATS_DIR),
        &stage_dir.join(DONE_DIR),
    ] {
        fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    }
    check_split(stage_dir, shard)?;
    remove_stale_temps(stage_dir, shard)?;
    if paths.marker.exists() && !force {
        let found = fs::read_to_string(&paths.marker).map_err(|e| PipelineError::io(&paths.marker, e))?;
        if found.trim() != fingerprint {
            return Err(PipelineError::ConfigChanged {
                dir: stage_dir.to_owned(),
                shard: shard.stem(),
                found: found.trim().to_owned(),
                expected: fingerprint.to_owned(),
            });
        }
        return Ok(ShardOutcome::AlreadyDone(read_stats(&paths.stats)?));
    }
    // Uncommitted (or forced): the marker goes first so that a crash from here on
    // leaves the shard visibly unfinished.
    if paths.marker.exists() {
        fs::remove_file(&paths.marker).map_err(|e| PipelineError::io(&paths.marker, e))?;
        sync_dir(&paths.marker)?;
    }
    let started = Instant::now();
    let mut out = ShardWriter {
        kept: if stage.writes_documents() {
            Some(ParquetSink::create(paths.kept.clone(), stage.columns(), false)?)
        } else {
            None
        },
        dropped: ParquetSink::create(paths.dropped.clone(), stage.columns(), true)?,
        stats: ShardStats {
            stage: stage.name().to_owned(),
            shard: shard.index(),
            of: shard.of(),
            fingerprint: fingerprint.to_owned(),
            upstream: stage.upstream().map(str::to_owned),
            ..Default::default()
        },
        shard,
    };
    stage.run_shard(shard, &mut out)?;
    let ShardWriter {
        kept,
        dropped,
        mut stats,
        ..
    } = out;
    if let Some(kept) = kept {
        stats.bytes_out = kept.commit()?;
        sync_dir(&paths.kept)?;
    }
    dropped.commit()?;
    sync_dir(&paths.dropped)?;
    failpoint("after_output", shard);
    stats.seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_vec_pretty(&stats).map_err(|e| PipelineError::BadStats {
        path: paths.stats.clone(),
        detail: e.to_string(),
    })?;
    write_atomic(&paths.stats, &json)?;
    failpoint("after_stats", shard);
    write_atomic(&paths.marker, fingerprint.as_bytes())?;
    failpoint("after_marker", shard);
    Ok(ShardOutcome::Done(stats))
}

/// Runs `f` on every shard with up to `parallel` workers taking shard indices in order;
/// stops handing out shards after the first error, which it returns. Returns how many
/// calls returned `true` (did work) and the seconds taken.
pub fn for_each_shard_parallel(
    shards: &[ShardId],
    parallel: usize,
    f: impl Fn(ShardId) -> Result<bool> + Sync,
) -> Result<(usize, f64)> {
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, shards.len().max(1)) {
            s.spawn(|| loop {
                if failed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&shard) = shards.get(i) else { return };
                let r = f(shard);
                if r.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                if let Ok(mut v) = results.lock() {
                    v.push((i, r));
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .map_err(|_| PipelineError::Config("a shard worker panicked".into()))?;
    results.sort_by_key(|(i, _)| *i);
    let mut done = 0;
    for (_, r) in results {
        done += usize::from(r?);
    }
    Ok((done, started.elapsed().as_secs_f64()))
}

/// The commit protocol of a per-shard index file (one file and a marker per shard, as
/// dedup's signatures and quality's scores): [`begin`](Self::begin) says whether the
/// shard must be (re)done, [`commit`](Self::commit) writes the file, then the marker.
pub struct IndexShard {
    pub dest: PathBuf,
    marker: PathBuf,
    fingerprint: String,
    shard: ShardId,
}

impl IndexShard {
    /// `None` when `dir` already holds this shard committed with `fingerprint` (and not
    /// `force`); an error when committed with another one.
    pub fn begin(dir: &Path, shard: ShardId, ext: &str, fingerprint: &str, force: bool) -> Result<Option<Self>> {
        let done = dir.join(DONE_DIR);
        fs::create_dir_all(&done).map_err(|e| PipelineError::io(&done, e))?;
        let stem = shard.stem();
        let marker = done.join(&stem);
        if !force && marker.exists() {
            let found = fs::read_to_string(&marker).map_err(|e| PipelineError::io(&marker, e))?;
            if found.trim() == fingerprint {
                return Ok(None);
            }
            return Err(PipelineError::ConfigChanged {
                dir: dir.to_owned(),
                shard: stem,
                found: found.trim().to_owned(),
                expected: fingerprint.to_owned(),
            });
        }
        if marker.exists() {
            fs::remove_file(&marker).map_err(|e| PipelineError::io(&marker, e))?;
        }
        let dest = dir.join(format!("{stem}.{ext}"));
        // Temporary files of a killed earlier attempt at this shard: its index file, and
        // its marker (a kill can land inside the marker's atomic write).
        for (d, stale) in [
            (dir, format!(".{stem}.{ext}.tmp.")),
            (done.as_path(), format!(".{stem}.tmp.")),
        ] {
            for e in fs::read_dir(d).map_err(|e| PipelineError::io(d, e))?.flatten() {
                if e.file_name().to_string_lossy().starts_with(&stale) {
                    fs::remove_file(e.path()).map_err(|err| PipelineError::io(e.path(), err))?;
                }
            }
        }
        Ok(Some(Self {
            dest,
            marker,
            fingerprint: fingerprint.to_owned(),
            shard,
        }))
    }

    /// Whether the shard is committed with `fingerprint`.
    pub fn committed(dir: &Path, shard: ShardId, fingerprint: &str) -> bool {
        fs::read_to_string(dir.join(DONE_DIR).join(shard.stem())).is_ok_and(|f| f.trim() == fingerprint)
    }

    /// Writes the shard's file atomically, then (after the `failpoint` named) its marker.
    pub fn commit(self, bytes: &[u8], failpoint_name: &str) -> Result<()> {
        write_atomic(&self.dest, bytes)?;
        self.mark(failpoint_name)
    }

    /// Writes the marker of a shard whose file the caller committed at `dest` itself.
    pub fn mark(self, failpoint_name: &str) -> Result<()> {
        failpoint(failpoint_name, self.shard);
        write_atomic(&self.marker, self.fingerprint.as_bytes())
    }
}

/// Crash-test hook: when `LOAM_FAILPOINT` is `name` or `name@shard`, the process says so on
/// stderr and stops here until it is killed, so a test can SIGKILL it at a known point.
/// With a `:exit` suffix it exits with status 1 there instead (a task that fails by itself,
/// as a scheduler sees one).
pub fn failpoint(name: &str, shard: ShardId) {
    let Ok(want) = std::env::var("LOAM_FAILPOINT") else {
        return;
    };
    let (want, exit) = match want.strip_suffix(":exit") {
        Some(w) => (w.to_owned(), true),
        None => (want, false),
    };
    let (point, at) = match want.split_once('@') {
        Some((p, s)) => (p, s.parse::<usize>().ok()),
        None => (want.as_str(), None),
    };
    if point == name && at.is_none_or(|s| s == shard.index()) {
        eprintln!("failpoint {name}@{} reached", shard.index());
        if exit {
            eprintln!(
                "failpoint {name}@{}: exiting with status 1 (LOAM_FAILPOINT)",
                shard.index()
            );
            std::process::exit(1);
        }
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Numbers(u64);
    impl Stage for Numbers {
        fn name(&self) -> &'static str {
            "numbers"
        }
        fn run_shard(&self, shard: ShardId, out: &mut ShardWriter) -> Result<()> {
            for i in (0..self.0).filter(|i| *i as usize % shard.of() == shard.index()) {
                out.record_in(1);
                let doc = Document {
                    id: format!("n/{i}"),
                    text: format!("number {i}"),
                    url: None,
                    dump: "d".into(),
                    date: None,
                    domain: None,
                    source_format: "jsonl".into(),
                    signals: Default::default(),
                };
                if i % 3 == 0 {
                    out.drop_doc(&doc, "divisible_by_3", None)?;
                } else {
                    out.keep(&doc)?;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn shard_commits_then_rerun_is_a_noop() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| PipelineError::io("tmp", e))?;
        let shard = ShardId::new(1, 2)?;
        let first = run_shard(&Numbers(10), dir.path(), shard, "fp1", false)?;
        let ShardOutcome::Done(stats) = first else {
            panic!("first run must do the work")
        };
        assert_eq!((stats.docs_in, stats.kept), (5, 3));
        assert_eq!(stats.dropped.get("divisible_by_3"), Some(&2));
        assert!(stats.balanced());
        let again = run_shard(&Numbers(10), dir.path(), shard, "fp1", false)?;
        assert!(matches!(again, ShardOutcome::AlreadyDone(s) if s.kept == 3));
        Ok(())
    }

    #[test]
    fn changed_config_or_split_is_refused() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| PipelineError::io("tmp", e))?;
        run_shard(&Numbers(4), dir.path(), ShardId::new(0, 2)?, "fp1", false)?;
        let changed = run_shard(&Numbers(4), dir.path(), ShardId::new(0, 2)?, "fp2", false);
        assert!(matches!(changed, Err(PipelineError::ConfigChanged { .. })));
        let resplit = run_shard(&Numbers(4), dir.path(), ShardId::new(0, 3)?, "fp1", false);
        assert!(matches!(
            resplit,
            Err(PipelineError::SplitChanged { found: 2, asked: 3, .. })
        ));
        // --force redoes the shard with the new configuration.
        let forced = run_shard(&Numbers(4), dir.path(), ShardId::new(0, 2)?, "fp2", true)?;
        assert!(matches!(forced, ShardOutcome::Done(_)));
        Ok(())
    }

    #[test]
    fn par_map_keeps_order() {
        let v: Vec<u32> = (0..1000).collect();
        assert_eq!(par_map(&v, 4, |x| x * 2), par_map(&v, 1, |x| x * 2));
    }

    #[test]
    fn shard_ids_are_validated() {
        assert!(ShardId::new(3, 3).is_err());
        assert!(ShardId::new(0, 0).is_err());
        assert_eq!(
            ShardId::new(3, 16).map(|s| s.stem()).ok().as_deref(),
            Some("part-00003-of-00016")
        );
    }
}
