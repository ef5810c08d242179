//! A bounded, seeded sample of a stage's documents (kept or dropped) for the report's
//! snippets and histograms: at most `scan` rows are read from the start of each shard file
//! (a Parquet row limit, so a terabyte shard costs what a small one does), and of those the
//! `keep` with the smallest xxh3(seed, id) are returned — the same rows at any thread
//! count and on every rerun.
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::error::{PipelineError, Result};

/// One sampled document; `text` is cut to the first `max_chars` characters.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SampleRow {
    pub id: String,
    pub dump: String,
    pub text: String,
    /// Characters of the whole text (before the cut).
    pub chars: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dup_lines_removed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix_domain: Option<String>,
    /// What the caller's measure computed on the whole text (up to [`MEASURE_CHARS`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<(String, f64)>,
}

/// A caller's per-document quantities of (full text, language): the report's rule metrics.
pub type Measurer<'m> = dyn Fn(&str, Option<&str>) -> Vec<(String, f64)> + 'm;

/// The longest text a measure sees: a bound on the sample's memory (`keep` rows of
/// at most this many characters) that web documents rarely reach.
pub const MEASURE_CHARS: usize = 200_000;

/// How much of each file is read and kept.
#[derive(Debug, Clone, Copy)]
pub struct SampleSpec {
    pub scan: usize,
    pub keep: usize,
    pub seed: u64,
    pub max_chars: usize,
}

/// The sample of one Parquet document file (a stage's output or its `_dropped` side output);
/// `measure`, when given, runs on each sampled document's text before it is cut.
pub fn sample_file(path: &Path, spec: SampleSpec, measure: Option<&Measurer<'_>>) -> Result<Vec<SampleRow>> {
    let perr = |e| PipelineError::Parquet {
        path: path.to_owned(),
        source: e,
    };
    let file = File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(perr)?
        .with_limit(spec.scan)
        .with_batch_size(spec.scan.clamp(1, 8192))
        .build()
        .map_err(perr)?;
    let mut rows: Vec<(u64, SampleRow)> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| PipelineError::BadFile {
            path: path.to_owned(),
            offset: 0,
            what: format!("Parquet data unreadable: {e}"),
            fix: "rerun the stage that wrote it with --force".into(),
        })?;
        let cut = if measure.is_some() {
            spec.max_chars.max(MEASURE_CHARS)
        } else {
            spec.max_chars
        };
        rows.extend(convert(&batch, path, spec.seed, cut)?);
        // Only the `keep` smallest keys survive: memory stays bounded by the batch.
        rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        rows.truncate(spec.keep);
    }
    Ok(rows
        .into_iter()
        .map(|(_, mut r)| {
            if let Some(m) = measure {
                r.measures = m(&r.text, r.language.as_deref());
                r.text = r.text.chars().take(spec.max_chars).collect();
            }
            r
        })
        .collect())
}

fn convert(b: &RecordBatch, path: &Path, seed: u64, cut: usize) -> Result<Vec<(u64, SampleRow)>> {
    let s = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>());
    let f32col = |name: &str| b.column_by_name(name).and_then(|c| c.as_primitive_opt::<Float32Type>());
    let (Some(ids), Some(texts), Some(dumps)) = (s("id"), s("text"), s("dump")) else {
        return Err(PipelineError::BadFile {
            path: path.to_owned(),
            offset: 0,
            what: "not a loam document file: no id, text or dump column".into(),
            fix: "point the report at a loam run directory".into(),
        });
    };
    let opt_s =
        |a: Option<&arrow_array::StringArray>, i: usize| a.filter(|a| a.is_valid(i)).map(|a| a.value(i).to_owned());
    let (reason, detail, lang, mix) = (s("reason"), s("detail"), s("language"), s("mix_domain"));
    let (lang_score, quality) = (f32col("language_score"), f32col("quality_score"));
    let dup_lines = b
        .column_by_name("dup_lines_removed")
        .and_then(|c| c.as_primitive_opt::<UInt32Type>());
    Ok((0..b.num_rows())
        .map(|i| {
            let id = ids.value(i);
            let text = texts.value(i);
            let key = xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed);
            let row = SampleRow {
                id: id.to_owned(),
                dump: dumps.value(i).to_owned(),
                text: text.chars().take(cut).collect(),
                chars: text.chars().count() as u64,
                bytes: text.len() as u64,
                reason: opt_s(reason, i),
                detail: opt_s(detail, i),
                language: opt_s(lang, i),
                language_score: lang_score.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                quality_score: quality.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                dup_lines_removed: dup_lines.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                mix_domain: opt_s(mix, i),
                measures: Vec::new(),
            };
            (key, row)
        })
        .collect())
}
