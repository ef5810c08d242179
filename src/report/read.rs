//! Reading what the stages wrote: JSON files, per-shard stats summed over shards, the
//! seeded document sample, file digests; and the sample's kept-vs-dropped histograms.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_pipeline::sample::{sample_file, Measurer, SampleRow, SampleSpec};
use loam_pipeline::stage::{read_stats, ShardStats, DROPPED_DIR, STATS_DIR};
use loam_report::model::*;
use serde_json::Value;

/// Drop-reason families in the order the filter runs them (FILTERS.md).
const RULE_ORDER: [&str; 7] = ["language", "blocklist", "url", "gopher_rep", "gopher", "c4", "fineweb"];

pub(super) fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!(
                "{}: not valid JSON; rerun the step that wrote it with --force",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub(super) fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

pub(super) fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

pub(super) fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The committed stats of one stage, in shard order (empty when the stage did not run).
pub(super) fn stage_stats(run: &Path, stage: &str) -> Result<Vec<ShardStats>> {
    let dir = run.join(stage).join(STATS_DIR);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".json"))
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| read_stats(p).with_context(|| format!("stats of {stage}")))
        .collect()
}

/// Stats summed over shards.
#[derive(Default)]
pub(super) struct Merged {
    pub(super) docs_in: u64,
    pub(super) kept: u64,
    pub(super) rows_out: Option<u64>,
    pub(super) dropped: BTreeMap<String, u64>,
    pub(super) dropped_bytes: BTreeMap<String, u64>,
    pub(super) text_bytes_kept: u64,
    pub(super) seconds: f64,
    pub(super) counters: BTreeMap<String, u64>,
    pub(super) by_dump: BTreeMap<String, loam_pipeline::stage::DumpTally>,
    pub(super) warnings: Vec<String>,
    pub(super) has_text_bytes: bool,
}

pub(super) fn merge(stats: &[ShardStats]) -> Merged {
    let mut m = Merged::default();
    for st in stats {
        m.docs_in += st.docs_in;
        m.kept += st.kept;
        if let Some(r) = st.rows_out {
            *m.rows_out.get_or_insert(0) += r;
        }
        for (k, v) in &st.dropped {
            *m.dropped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &st.dropped_bytes {
            *m.dropped_bytes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &st.counters {
            *m.counters.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &st.by_dump {
            let t = m.by_dump.entry(k.clone()).or_default();
            t.kept += v.kept;
            t.dropped += v.dropped;
            t.kept_bytes += v.kept_bytes;
            t.dropped_bytes += v.dropped_bytes;
        }
        m.text_bytes_kept += st.text_bytes_kept;
        m.has_text_bytes |= st.text_bytes_kept > 0 || !st.by_dump.is_empty();
        m.seconds += st.seconds;
        m.warnings
            .extend(st.warnings.iter().take(20 - m.warnings.len().min(20)).cloned());
    }
    m
}

pub(super) fn reasons(m: &Merged) -> Vec<Reason> {
    m.dropped
        .iter()
        .map(|(k, &docs)| Reason {
            reason: k.clone(),
            docs,
            bytes: m.dropped_bytes.get(k).copied().unwrap_or(0),
        })
        .collect()
}

pub(super) fn per_dump(m: &Merged) -> Vec<DumpRow> {
    m.by_dump
        .iter()
        .map(|(d, t)| DumpRow {
            dump: d.clone(),
            kept: t.kept,
            dropped: t.dropped,
            kept_bytes: t.kept_bytes,
            dropped_bytes: t.dropped_bytes,
        })
        .collect()
}

pub(super) fn rule_rank(reason: &str) -> usize {
    // Longest matching family prefix wins (gopher_rep before gopher).
    RULE_ORDER
        .iter()
        .enumerate()
        .filter(|(_, p)| reason.starts_with(*p))
        .max_by_key(|(_, p)| p.len())
        .map_or(RULE_ORDER.len(), |(i, _)| i)
}

/// The seeded sample of one side (`kept` or `_dropped`) of a stage, over its shards.
pub(super) fn sample_side(
    run: &Path,
    stage: &str,
    dropped: bool,
    n: usize,
    seed: u64,
    measure: Option<&Measurer<'_>>,
) -> Result<Vec<SampleRow>> {
    let dir = if dropped {
        run.join(stage).join(DROPPED_DIR)
    } else {
        run.join(stage)
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    if files.is_empty() || n == 0 {
        return Ok(Vec::new());
    }
    let keep = n.div_ceil(files.len());
    let spec = SampleSpec {
        scan: keep * 8,
        keep,
        seed,
        max_chars: 600,
    };
    let mut rows = Vec::new();
    for p in &files {
        rows.extend(sample_file(p, spec, measure).with_context(|| format!("sampling {}", p.display()))?);
    }
    rows.truncate(n);
    Ok(rows)
}

pub(super) fn digest(path: &Path, name: &str) -> Result<Option<FileDigest>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(FileDigest {
            name: name.to_owned(),
            bytes: b.len() as u64,
            sha256: loam_tokenize::sha256_hex(&b),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Histogram of `value` over named groups of sampled documents (stacked in that order),
/// weighted by documents and by bytes: the pair the page shows side by side. Values past
/// the last edge count in the last bin.
pub(super) fn hist_pair(
    title: &str,
    x_label: &str,
    edges: Vec<f64>,
    groups: &[(&str, Vec<&SampleRow>)],
    value: impl Fn(&SampleRow) -> Option<f64>,
    marker: Option<Marker>,
) -> [Histogram; 2] {
    let bins = edges.len() - 1;
    let bin = |v: f64| {
        let i = edges.partition_point(|e| *e <= v);
        i.saturating_sub(1).min(bins - 1)
    };
    let fill = |rows: &[&SampleRow], bytes: bool| {
        let mut c = vec![0.0; bins];
        for r in rows {
            if let Some(v) = value(r).filter(|v| v.is_finite()) {
                c[bin(v)] += if bytes { r.bytes as f64 } else { 1.0 };
            }
        }
        c
    };
    let make = |bytes: bool| Histogram {
        title: format!("{title} ({})", if bytes { "by bytes" } else { "by documents" }),
        x_label: x_label.to_owned(),
        edges: edges.clone(),
        series: groups
            .iter()
            .map(|(name, rows)| HistSeries {
                name: (*name).into(),
                counts: fill(rows, bytes),
            })
            .collect(),
        marker: marker.clone(),
        weight: if bytes { "bytes" } else { "documents" }.into(),
    };
    [make(false), make(true)]
}

/// The usual two groups: dropped below kept.
pub(super) fn kept_dropped<'r>(
    kept: &'r [SampleRow],
    dropped: &'r [SampleRow],
) -> [(&'static str, Vec<&'r SampleRow>); 2] {
    [("dropped", dropped.iter().collect()), ("kept", kept.iter().collect())]
}
