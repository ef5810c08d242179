//! The canonical document schema every stage reads and writes, and a builder that turns
//! [`Document`]s into Arrow record batches of it.
//!
//! Kept documents: `id, text, url, dump, date, domain, source_format`; later stages
//! append their signals as extra columns. Dropped documents: the same plus `reason` and
//! `detail`, so every decision can be audited with the same tools.
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// One document as it leaves ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub source_format: &'static str,
}

fn base_fields() -> Vec<Field> {
    vec![
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
    ]
}

/// Schema of kept documents.
pub fn documents_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| Arc::new(Schema::new(base_fields()))).clone()
}

/// Schema of the dropped-documents side output: documents plus `reason` and `detail`.
pub fn dropped_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let mut f = base_fields();
        f.push(Field::new("reason", DataType::Utf8, false));
        f.push(Field::new("detail", DataType::Utf8, true));
        Arc::new(Schema::new(f))
    })
    .clone()
}

/// Accumulates documents column by column; [`finish`](Self::finish) yields a batch.
pub struct DocBatchBuilder {
    id: StringBuilder,
    text: StringBuilder,
    url: StringBuilder,
    dump: StringBuilder,
    date: TimestampMillisecondBuilder,
    domain: StringBuilder,
    source_format: StringBuilder,
    /// Present only for the dropped side output.
    reason: Option<(StringBuilder, StringBuilder)>,
    rows: usize,
    text_bytes: usize,
}

impl DocBatchBuilder {
    pub fn new(with_reason: bool) -> Self {
        Self {
            id: StringBuilder::new(),
            text: StringBuilder::new(),
            url: StringBuilder::new(),
            dump: StringBuilder::new(),
            date: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            domain: StringBuilder::new(),
            source_format: StringBuilder::new(),
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
        self.source_format.append_value(doc.source_format);
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
        let schema = match self.reason.as_mut() {
            Some((r, d)) => {
                cols.push(Arc::new(r.finish()));
                cols.push(Arc::new(d.finish()));
                dropped_schema()
            }
            None => documents_schema(),
        };
        self.rows = 0;
        self.text_bytes = 0;
        RecordBatch::try_new(schema, cols)
    }
}
