//! JSON-lines input in datatrove/Dolma shape: `text` (required), `id`, and `url` / `date`
//! / `dump` either top-level or under `metadata` (Dolma's `created`/`added` and
//! `timestamp` are read as dates too).
use serde_json::Value;

use super::open::{read_capped_line, stream_reason, CappedLine, Opened};
use super::{Decision, FileCtx, Outcome, CHUNK_BYTES, CHUNK_ITEMS};
use crate::error::Result;
use crate::fields::{parse_timestamp, registered_domain};
use crate::schema::Document;
use crate::stage::par_map;
use crate::stage::ShardWriter;

pub(super) struct Line {
    pub number: u64,
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub too_long: bool,
}

pub(crate) fn ingest(ctx: &FileCtx<'_>, dump: Option<String>, opened: Opened, out: &mut ShardWriter) -> Result<()> {
    let mut r = opened.reader;
    let cap = ctx.max_record_bytes as usize;
    let (mut pos, mut number) = (0u64, 0u64);
    let apply = |chunk: &[Line], out: &mut ShardWriter| -> Result<()> {
        for o in par_map(chunk, ctx.threads, |l| line_outcome(ctx, dump.as_deref(), l)) {
            o?.apply(out)?;
        }
        Ok(())
    };
    loop {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        while chunk.len() < CHUNK_ITEMS && bytes < CHUNK_BYTES {
            let offset = pos;
            match read_capped_line(&mut *r, cap, &mut pos) {
                Ok(CappedLine::Eof) => break,
                Ok(CappedLine::Line(l, too_long)) => {
                    number += 1;
                    if l.iter().all(u8::is_ascii_whitespace) && !too_long {
                        continue;
                    }
                    bytes += l.len();
                    chunk.push(Line {
                        number,
                        offset,
                        bytes: l,
                        too_long,
                    });
                }
                Err(e) => {
                    // The stream broke (truncated or corrupt gzip): what was read is kept, the
                    // rest of the file is quarantined as one record.
                    apply(&chunk, out)?;
                    out.record_in(0);
                    let detail = format!("{} @ line {}, byte {pos}: stream unreadable: {e}", ctx.name, number + 1);
                    out.warn(format!("quarantined rest of file: {detail}"));
                    let doc = quarantine_doc(ctx, dump.as_deref().unwrap_or("unknown"), number + 1);
                    return out.drop_doc(&doc, stream_reason(&e), Some(&detail));
                }
            }
        }
        if chunk.is_empty() {
            return Ok(());
        }
        apply(&chunk, out)?;
    }
}

fn quarantine_doc(ctx: &FileCtx<'_>, dump: &str, line: u64) -> Document {
    Document {
        id: format!("{dump}/{}:{line}", ctx.name),
        text: String::new(),
        url: None,
        dump: dump.to_owned(),
        date: None,
        domain: None,
        source_format: "jsonl".into(),
        signals: Default::default(),
    }
}

fn field<'a>(obj: &'a Value, names: &[&str]) -> Option<&'a Value> {
    let meta = obj.get("metadata");
    names
        .iter()
        .find_map(|n| obj.get(*n).filter(|v| !v.is_null()))
        .or_else(|| {
            names
                .iter()
                .find_map(|n| meta.and_then(|m| m.get(*n)).filter(|v| !v.is_null()))
        })
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn line_outcome(ctx: &FileCtx<'_>, dump: Option<&str>, line: &Line) -> Result<Outcome> {
    let loc = format!("{} @ line {} (byte {})", ctx.name, line.number, line.offset);
    let quarantine = |reason: &'static str, detail: String, dump: &str| Outcome {
        bytes_in: line.bytes.len() as u64,
        warning: Some(format!("quarantined record ({reason}): {loc}: {detail}")),
        decision: Decision::Drop(
            quarantine_doc(ctx, dump, line.number),
            reason,
            format!("{loc}: {detail}"),
        ),
        lossy: false,
    };
    let fallback_dump = dump.unwrap_or("unknown");
    if line.too_long {
        return Ok(quarantine(
            "record_too_large",
            format!("line longer than max_record_bytes = {}", ctx.max_record_bytes),
            fallback_dump,
        ));
    }
    let (text, lossy) = super::decode_utf8(&line.bytes);
    let obj: Value = match serde_json::from_str(&text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Ok(quarantine(
                "bad_json",
                "line is JSON but not an object".into(),
                fallback_dump,
            ))
        }
        Err(e) => return Ok(quarantine("bad_json", format!("invalid JSON: {e}"), fallback_dump)),
    };
    let dump = match dump {
        Some(d) => d.to_owned(),
        None => match field(&obj, &["dump"]).and_then(as_text) {
            Some(d) => d,
            None => return Err(ctx.no_dump(line.offset)),
        },
    };
    let Some(body) = obj.get("text").and_then(Value::as_str) else {
        return Ok(quarantine("missing_text", "no string field `text`".into(), &dump));
    };
    let url = field(&obj, &["url"]).and_then(as_text);
    let source_id = obj.get("id").and_then(as_text);
    let id = match (&source_id, &url) {
        (Some(i), _) => format!("{dump}/{i}"),
        (None, Some(u)) => format!("{dump}/{u}"),
        (None, None) => format!("{dump}/{}:{}", ctx.name, line.number),
    };
    let doc = Document {
        id,
        text: body.trim().to_owned(),
        domain: url.as_deref().and_then(registered_domain),
        url,
        dump,
        date: field(&obj, &["date", "created", "timestamp", "added"])
            .and_then(Value::as_str)
            .and_then(parse_timestamp),
        source_format: "jsonl".into(),
        signals: Default::default(),
    };
    let decision = if doc.text.is_empty() {
        Decision::Drop(doc, "empty_text", format!("{loc}: `text` is empty"))
    } else {
        Decision::Keep(doc)
    };
    Ok(Outcome {
        bytes_in: line.bytes.len() as u64,
        decision,
        lossy,
        warning: None,
    })
}
