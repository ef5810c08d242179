//! The canonical document schema every stage reads and writes, a builder that turns
//! [`Document`]s into Arrow record batches of it, and a reader that turns a stage's
//! Parquet output back into documents.
//!
//! Kept documents: `id, text, url, dump, date, domain, source_format`, then the signals
//! each stage adds ([`Columns`]). Dropped documents: the same plus `reason` and
//! `detail`, so every decision can be audited with the same tools.
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, StringBuilder, TimestampMillisecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{PipelineError, Result};

/// Signals added by the filter stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// fastText language code and probability.
    pub language: Option<String>,
    pub language_score: Option<f32>,
    /// Lines the C4 rule removed from the text.
    pub c4_lines_removed: Option<u32>,
    /// Whether a rule changed the text.
    pub edited: Option<bool>,
    /// Dedup: xxh3-64 of the id of the cluster's survivor (shared by all its members).
    pub dup_cluster: Option<u64>,
    /// Dedup: lines removed because they recur across the corpus.
    pub dup_lines_removed: Option<u32>,
    /// Quality: P(hq) of the run's quality model (none when no model covers the language).
    pub quality_score: Option<f32>,
    /// Remix: the document's mixture domain (e.g. `government`, `literature`, `other`),
    /// what assigned it (`table`, `blocklist`, `classifier`, `default`) and the
    /// classifier's probability when it did.
    pub mix_domain: Option<String>,
    pub mix_domain_source: Option<String>,
    pub mix_domain_score: Option<f32>,
    /// Remix: which copy of the document this row is (0-based).
    pub repeat: Option<u32>,
}

/// One document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Stable id: `{dump}/{record id, source id or url}`.
    pub id: String,
    pub text: String,
    pub url: Option<String>,
    pub dump: String,
    /// Crawl or creation time, seconds since the Unix epoch, UTC.
    pub date: Option<i64>,
    /// Registered domain of `url` (public-suffix aware), e.g. `bbc.co.uk`.
    pub domain: Option<String>,
    /// `warc`, `wet`, `jsonl` or `parquet`.
    pub source_format: String,
    pub signals: Signals,
}

/// Which columns a stage writes: each stage's set extends the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Columns {
    Ingest,
    Filter,
    Dedup,
    Quality,
    Remix,
}

impl Columns {
    fn fields(self) -> Vec<Field> {
        let mut f = vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, true),
            Field::new("dump", DataType::Utf8, false),
            // Milliseconds, not seconds: Parquet has no seconds unit, and TIMESTAMP(MILLIS, UTC)
            // reads back as a UTC timestamp in pyarrow, DuckDB, pandas and Spark alike.
            Field::new(
                "date",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("domain", DataType::Utf8, true),
            Field::new("source_format", DataType::Utf8, false),
        ];
        if self != Self::Ingest {
            f.push(Field::new("language", DataType::Utf8, true));
            f.push(Field::new("language_score", DataType::Float32, true));
            f.push(Field::new("c4_lines_removed", DataType::UInt32, true));
            f.push(Field::new("edited", DataType::Boolean, true));
        }
        if self >= Self::Dedup {
            f.push(Field::new("dup_cluster", DataType::UInt64, true));
            f.push(Field::new("dup_lines_removed", DataType::UInt32, true));
        }
        if self >= Self::Quality {
            f.push(Field::new("quality_score", DataType::Float32, true));
        }
        if self >= Self::Remix {
            f.push(Field::new("mix_domain", DataType::Utf8, true));
            f.push(Field::new("mix_domain_source", DataType::Utf8, true));
            f.push(Field::new("mix_domain_score", DataType::Float32, true));
            f.push(Field::new("repeat", DataType::UInt32, true));
        }
        f
    }

    /// Schema of kept documents, or of the dropped side output (`with_reason`).
    pub fn schema(self, with_reason: bool) -> SchemaRef {
        let mut f = self.fields();
        if with_reason {
            f.push(Field::new("reason", DataType::Utf8, false));
            f.push(Field::new("detail", DataType::Utf8, true));
        }
        Arc::new(Schema::new(f))
    }
}

/// Accumulates documents column by column; [`finish`](Self::finish) yields a batch.
pub struct DocBatchBuilder {
    columns: Columns,
    schema: SchemaRef,
    id: StringBuilder,
    text: StringBuilder,
    url: StringBuilder,
    dump: StringBuilder,
    date: TimestampMillisecondBuilder,
    domain: StringBuilder,
    source_format: StringBuilder,
    language: StringBuilder,
    language_score: Float32Builder,
    lines_removed: UInt32Builder,
    edited: BooleanBuilder,
    dup_cluster: UInt64Builder,
    dup_lines_removed: UInt32Builder,
    quality_score: Float32Builder,
    mix_domain: StringBuilder,
    mix_domain_source: StringBuilder,
    mix_domain_score: Float32Builder,
    repeat: UInt32Builder,
    /// Present only for the dropped side output.
    reason: Option<(StringBuilder, StringBuilder)>,
    rows: usize,
    text_bytes: usize,
}

impl DocBatchBuilder {
    pub fn new(columns: Columns, with_reason: bool) -> Self {
        Self {
            columns,
            schema: columns.schema(with_reason),
            id: StringBuilder::new(),
            text: StringBuilder::new(),
            url: StringBuilder::new(),
            dump: StringBuilder::new(),
            date: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            domain: StringBuilder::new(),
            source_format: StringBuilder::new(),
            language: StringBuilder::new(),
            language_score: Float32Builder::new(),
            lines_removed: UInt32Builder::new(),
            edited: BooleanBuilder::new(),
            dup_cluster: UInt64Builder::new(),
            dup_lines_removed: UInt32Builder::new(),
            quality_score: Float32Builder::new(),
            mix_domain: StringBuilder::new(),
            mix_domain_source: StringBuilder::new(),
            mix_domain_score: Float32Builder::new(),
            repeat: UInt32Builder::new(),
            reason: with_reason.then(|| (StringBuilder::new(), StringBuilder::new())),
            rows: 0,
            text_bytes: 0,
        }
    }

    pub fn push(&mut self, doc: &Document) {
        self.id.append_value(&doc.id);
        self.text.append_value(&doc.text);
        self.url.append_option(doc.url.as_deref());
        self.dump.append_value(&doc.dump);
        self.date.append_option(doc.date.map(|s| s.saturating_mul(1000)));
        self.domain.append_option(doc.domain.as_deref());
        self.source_format.append_value(&doc.source_format);
        let s = &doc.signals;
        if self.columns != Columns::Ingest {
            self.language.append_option(s.language.as_deref());
            self.language_score.append_option(s.language_score);
            self.lines_removed.append_option(s.c4_lines_removed);
            self.edited.append_option(s.edited);
        }
        if self.columns >= Columns::Dedup {
            self.dup_cluster.append_option(s.dup_cluster);
            self.dup_lines_removed.append_option(s.dup_lines_removed);
        }
        if self.columns >= Columns::Quality {
            self.quality_score.append_option(s.quality_score);
        }
        if self.columns >= Columns::Remix {
            self.mix_domain.append_option(s.mix_domain.as_deref());
            self.mix_domain_source.append_option(s.mix_domain_source.as_deref());
            self.mix_domain_score.append_option(s.mix_domain_score);
            self.repeat.append_option(s.repeat);
        }
        self.rows += 1;
        self.text_bytes += doc.text.len() + doc.id.len();
    }

    /// Pushes a dropped document with its reason; only on a builder made `with_reason`.
    pub fn push_dropped(&mut self, doc: &Document, reason: &str, detail: Option<&str>) {
        self.push(doc);
        if let Some((r, d)) = self.reason.as_mut() {
            r.append_value(reason);
            d.append_option(detail);
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Approximate payload bytes buffered, used to bound memory per batch.
    pub fn bytes(&self) -> usize {
        self.text_bytes
    }

    pub fn finish(&mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.text.finish()),
            Arc::new(self.url.finish()),
            Arc::new(self.dump.finish()),
            Arc::new(self.date.finish()),
            Arc::new(self.domain.finish()),
            Arc::new(self.source_format.finish()),
        ];
        if self.columns != Columns::Ingest {
            cols.push(Arc::new(self.language.finish()));
            cols.push(Arc::new(self.language_score.finish()));
            cols.push(Arc::new(self.lines_removed.finish()));
            cols.push(Arc::new(self.edited.finish()));
        }
        if self.columns >= Columns::Dedup {
            cols.push(Arc::new(self.dup_cluster.finish()));
            cols.push(Arc::new(self.dup_lines_removed.finish()));
        }
        if self.columns >= Columns::Quality {
            cols.push(Arc::new(self.quality_score.finish()));
        }
        if self.columns >= Columns::Remix {
            cols.push(Arc::new(self.mix_domain.finish()));
            cols.push(Arc::new(self.mix_domain_source.finish()));
            cols.push(Arc::new(self.mix_domain_score.finish()));
            cols.push(Arc::new(self.repeat.finish()));
        }
        if let Some((r, d)) = self.reason.as_mut() {
            cols.push(Arc::new(r.finish()));
            cols.push(Arc::new(d.finish()));
        }
        self.rows = 0;
        self.text_bytes = 0;
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}

/// Calls `f` with each batch of the columns `cols` of a Parquet file (a projection: the
/// other columns are not read). `fix` finishes the error for unreadable data.
pub fn scan_columns(
    path: &Path,
    cols: &[&str],
    fix: &str,
    mut f: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let perr = |e| PipelineError::Parquet {
        path: path.to_owned(),
        source: e,
    };
    let file = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    let mask = parquet::arrow::ProjectionMask::columns(b.parquet_schema(), cols.iter().copied());
    for batch in b.with_projection(mask).with_batch_size(8192).build().map_err(perr)? {
        let batch = batch.map_err(|e| PipelineError::BadFile {
            path: path.to_owned(),
            offset: 0,
            what: format!("Parquet data unreadable: {e}"),
            fix: fix.to_owned(),
        })?;
        f(&batch)?;
    }
    Ok(())
}

/// The `id` and `text` columns of a batch of a document file, or an error naming the file
/// and the `setting` that pointed at it.
pub fn id_and_text<'a>(
    b: &'a RecordBatch,
    path: &Path,
    setting: &str,
) -> Result<(&'a arrow_array::StringArray, &'a arrow_array::StringArray)> {
    let col = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>());
    match (col("id"), col("text")) {
        (Some(ids), Some(texts)) => Ok((ids, texts)),
        _ => Err(PipelineError::BadFile {
            path: path.to_owned(),
            offset: 0,
            what: "not a loam document file: no id or text column".into(),
            fix: format!("point {setting} at a document stage of the run"),
        }),
    }
}

/// Reads a stage's Parquet output back as documents, batch by batch (bounded memory).
pub struct DocumentReader {
    path: std::path::PathBuf,
    inner: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
}

impl DocumentReader {
    pub fn open(path: &Path) -> Result<Self> {
        let perr = |e| PipelineError::Parquet {
            path: path.to_owned(),
            source: e,
        };
        let file = File::open(path).map_err(|e| PipelineError::io(path, e))?;
        let inner = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(perr)?
            .with_batch_size(256)
            .build()
            .map_err(perr)?;
        Ok(Self {
            path: path.to_owned(),
            inner,
        })
    }

    fn convert(&self, b: &RecordBatch) -> Result<Vec<Document>> {
        let bad = |what: &str| PipelineError::BadFile {
            path: self.path.clone(),
            offset: 0,
            what: format!("not a loam document file: {what}"),
            fix: "point the stage at the output folder of the stage before it".into(),
        };
        let s = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>());
        let (Some(id), Some(text), Some(dump)) = (s("id"), s("text"), s("dump")) else {
            return Err(bad("missing id, text or dump column"));
        };
        let url = s("url");
        let domain = s("domain");
        let fmt = s("source_format");
        let language = s("language");
        let date = b
            .column_by_name("date")
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>());
        let score = b
            .column_by_name("language_score")
            .and_then(|c| c.as_primitive_opt::<Float32Type>());
        let removed = b
            .column_by_name("c4_lines_removed")
            .and_then(|c| c.as_primitive_opt::<UInt32Type>());
        let edited = b.column_by_name("edited").and_then(|c| c.as_boolean_opt());
        let cluster = b
            .column_by_name("dup_cluster")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>());
        let dup_lines = b
            .column_by_name("dup_lines_removed")
            .and_then(|c| c.as_primitive_opt::<UInt32Type>());
        let quality = b
            .column_by_name("quality_score")
            .and_then(|c| c.as_primitive_opt::<Float32Type>());
        let mix = s("mix_domain");
        let mix_source = s("mix_domain_source");
        let mix_score = b
            .column_by_name("mix_domain_score")
            .and_then(|c| c.as_primitive_opt::<Float32Type>());
        let repeat = b
            .column_by_name("repeat")
            .and_then(|c| c.as_primitive_opt::<UInt32Type>());
        let opt_s =
            |a: Option<&arrow_array::StringArray>, i: usize| a.filter(|a| a.is_valid(i)).map(|a| a.value(i).to_owned());
        Ok((0..b.num_rows())
            .map(|i| Document {
                id: id.value(i).to_owned(),
                text: text.value(i).to_owned(),
                url: opt_s(url, i),
                dump: dump.value(i).to_owned(),
                date: date.filter(|a| a.is_valid(i)).map(|a| a.value(i).div_euclid(1000)),
                domain: opt_s(domain, i),
                source_format: opt_s(fmt, i).unwrap_or_default(),
                signals: Signals {
                    language: opt_s(language, i),
                    language_score: score.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                    c4_lines_removed: removed.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                    edited: edited.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                    dup_cluster: cluster.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                    dup_lines_removed: dup_lines.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                    quality_score: quality.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                    mix_domain: opt_s(mix, i),
                    mix_domain_source: opt_s(mix_source, i),
                    mix_domain_score: mix_score.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                    repeat: repeat.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                },
            })
            .collect())
    }
}

impl Iterator for DocumentReader {
    type Item = Result<Vec<Document>>;
    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.inner.next()?;
        Some(
            batch
                .map_err(|e| PipelineError::BadFile {
                    path: self.path.clone(),
                    offset: 0,
                    what: format!("Parquet data unreadable: {e}"),
                    fix: "rerun the stage that wrote it with --force".into(),
                })
                .and_then(|b| self.convert(&b)),
        )
    }
}
