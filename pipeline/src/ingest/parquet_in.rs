//! Parquet input with a text column (HF datasets, datatrove and Dolma exports): `text`
//! (configurable name) required; `id`, `url`, `date`/`created`/`timestamp` and `dump`
//! used when present. Strings may be Utf8, LargeUtf8 or Utf8View; ids may be integers;
//! dates may be strings, timestamps or Date32.
use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::FileCtx;
use crate::error::{PipelineError, Result};
use crate::fields::{parse_timestamp, registered_domain};
use crate::schema::Document;
use crate::stage::ShardWriter;

fn string_at(a: &ArrayRef, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Some(a.as_string_view().value(i).to_owned()),
        DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::Int32 => Some(a.as_primitive::<Int32Type>().value(i).to_string()),
        DataType::UInt64 => Some(a.as_primitive::<UInt64Type>().value(i).to_string()),
        _ => None,
    }
}

fn date_at(a: &ArrayRef, i: usize) -> Option<i64> {
    if a.is_null(i) {
        return None;
    }
    use arrow_array::types::*;
    match a.data_type() {
        DataType::Timestamp(unit, _) => {
            let (v, div) = match unit {
                TimeUnit::Second => (a.as_primitive::<TimestampSecondType>().value(i), 1),
                TimeUnit::Millisecond => (a.as_primitive::<TimestampMillisecondType>().value(i), 1_000),
                TimeUnit::Microsecond => (a.as_primitive::<TimestampMicrosecondType>().value(i), 1_000_000),
                TimeUnit::Nanosecond => (a.as_primitive::<TimestampNanosecondType>().value(i), 1_000_000_000),
            };
            Some(v.div_euclid(div))
        }
        DataType::Date32 => Some(i64::from(a.as_primitive::<Date32Type>().value(i)) * 86_400),
        _ => string_at(a, i).as_deref().and_then(parse_timestamp),
    }
}

pub(crate) fn ingest(ctx: &FileCtx<'_>, dump: Option<String>, text_column: &str, out: &mut ShardWriter) -> Result<()> {
    let perr = |e| PipelineError::Parquet {
        path: ctx.path.to_owned(),
        source: e,
    };
    let file = File::open(ctx.path).map_err(|e| PipelineError::io(ctx.path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    let schema = builder.schema().clone();
    let find = |names: &[&str]| names.iter().find_map(|n| schema.index_of(n).ok());
    let Some(text_idx) = find(&[text_column]) else {
        let cols: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(PipelineError::BadFile {
            path: ctx.path.to_owned(),
            offset: 0,
            what: format!(
                "Parquet file has no `{text_column}` column (columns: {})",
                cols.join(", ")
            ),
            fix: "set ingest.text_column to the column that holds the document text".into(),
        });
    };
    if !matches!(
        schema.field(text_idx).data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(PipelineError::BadFile {
            path: ctx.path.to_owned(),
            offset: 0,
            what: format!(
                "column `{text_column}` is {}, not a string",
                schema.field(text_idx).data_type()
            ),
            fix: "set ingest.text_column to a string column".into(),
        });
    }
    let wanted = [
        Some(text_idx),
        find(&["id"]),
        find(&["url"]),
        find(&["date", "created", "timestamp"]),
        find(&["dump"]),
    ];
    let mut roots: Vec<usize> = wanted.iter().flatten().copied().collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(1024)
        .build()
        .map_err(perr)?;
    let mut row = 0u64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| PipelineError::BadFile {
            path: ctx.path.to_owned(),
            offset: row,
            what: format!("Parquet data unreadable after row {row}: {e}"),
            fix: "re-export or replace the file, or set ingest.on_bad_file = \"skip\"".into(),
        })?;
        let col = |orig: Option<usize>| {
            orig.and_then(|o| schema.field(o).name().clone().into())
                .and_then(|name: String| batch.column_by_name(&name).cloned())
        };
        let [text, id, url, date, dump_col] = wanted.map(col);
        let Some(text) = text else { return Ok(()) };
        for i in 0..batch.num_rows() {
            row += 1;
            let body = string_at(&text, i);
            out.record_in(body.as_ref().map_or(0, |b| b.len() as u64));
            let d = match (&dump, dump_col.as_ref().and_then(|c| string_at(c, i))) {
                (Some(d), _) => d.clone(),
                (None, Some(d)) => d,
                (None, None) => return Err(ctx.no_dump(row)),
            };
            let url_v = url.as_ref().and_then(|c| string_at(c, i));
            let id_v = match (id.as_ref().and_then(|c| string_at(c, i)), &url_v) {
                (Some(x), _) => format!("{d}/{x}"),
                (None, Some(u)) => format!("{d}/{u}"),
                (None, None) => format!("{d}/{}:{row}", ctx.name),
            };
            let doc = Document {
                id: id_v,
                text: body.as_deref().unwrap_or_default().trim().to_owned(),
                domain: url_v.as_deref().and_then(registered_domain),
                url: url_v,
                dump: d,
                date: date.as_ref().and_then(|c| date_at(c, i)),
                source_format: "parquet".into(),
                signals: Default::default(),
            };
            let loc = format!("{} @ row {row}", ctx.name);
            if body.is_none() {
                out.drop_doc(&doc, "missing_text", Some(&format!("{loc}: `{text_column}` is null")))?;
            } else if doc.text.is_empty() {
                out.drop_doc(&doc, "empty_text", Some(&format!("{loc}: `{text_column}` is empty")))?;
            } else {
                out.keep(&doc)?;
            }
        }
    }
    Ok(())
}
