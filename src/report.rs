//! `loam report`: gathers what the stages of a run wrote — per-shard stats, summaries,
//! score.json, fit.json, metrics.jsonl, the ledger, and a bounded seeded sample of
//! documents — into `report/report.json`, then draws `report.html` and the `README.md`
//! dataset card from it (loam-report). One pass over the stats files plus at most
//! `sample` rows per stage side: the cost does not grow with the corpus.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_pipeline::sample::{sample_file, SampleRow, SampleSpec};
use loam_pipeline::stage::{read_stats, ShardStats, DROPPED_DIR, STATS_DIR};
use loam_report::model::*;
use serde_json::Value;

/// DeepSeek LLM, Table 1: Common Crawl dumps deduplicated together → % documents removed.
const PAPER_TABLE1: [(u32, f64); 8] = [
    (1, 22.2),
    (2, 46.7),
    (6, 55.7),
    (12, 69.9),
    (16, 75.7),
    (22, 76.3),
    (41, 81.6),
    (91, 89.8),
];

/// Drop-reason families in the order the filter runs them (FILTERS.md).
const RULE_ORDER: [&str; 7] = ["language", "blocklist", "url", "gopher_rep", "gopher", "c4", "fineweb"];

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The run directory.
    #[arg(long = "run", required_unless_present = "config")]
    pub run: Option<PathBuf>,
    /// Or the run's config (its `run.dir`), as the DAG's task calls it.
    #[arg(long, conflicts_with = "run")]
    pub config: Option<PathBuf>,
    /// Where report.json, report.html and README.md go (default RUN/report).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Documents sampled per stage side (kept, dropped) for snippets and histograms.
    #[arg(long, default_value_t = 2000)]
    pub sample: usize,
    /// Inputs larger than this in total are listed with sizes only, not hashed.
    #[arg(long, default_value_t = 4096)]
    pub hash_limit_mb: u64,
}

/// What `report` wrote.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    pub json: PathBuf,
    pub html: PathBuf,
    pub card: PathBuf,
    pub sections: Vec<&'static str>,
}

/// `loam report --run DIR | --config FILE`.
pub fn report_cmd(args: &ReportArgs) -> Result<Value> {
    let run = match (&args.run, &args.config) {
        (Some(r), _) => r.clone(),
        (None, Some(c)) => crate::config::load(c, &[])?.run_dir,
        (None, None) => anyhow::bail!(crate::config::UsageError(
            "loam report needs --run DIR or --config FILE".into()
        )),
    };
    let w = write(&run, args)?;
    eprintln!("report: {}", w.html.display());
    Ok(serde_json::json!({"ok": true, "run_dir": run, "report": w}))
}

/// Builds the report of `run` and writes its three files (each committed by rename).
pub fn write(run: &Path, args: &ReportArgs) -> Result<Written> {
    let report = build(run, args)?;
    let out = args.out.clone().unwrap_or_else(|| run.join("report"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_string_pretty(&report)? + "\n";
    let html = loam_report::html::render(&report, &json);
    let card = loam_report::card::render(&report);
    let w = Written {
        json: out.join("report.json"),
        html: out.join("report.html"),
        card: out.join("README.md"),
        sections: loam_report::html::present_sections(&report),
    };
    for (path, text) in [(&w.json, &json), (&w.html, &html), (&w.card, &card)] {
        commit(path, text.as_bytes())?;
    }
    Ok(w)
}

fn commit(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("committing {}", path.display()))
}

fn read_json(path: &Path) -> Result<Option<Value>> {
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

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The committed stats of one stage, in shard order (empty when the stage did not run).
fn stage_stats(run: &Path, stage: &str) -> Result<Vec<ShardStats>> {
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
struct Merged {
    docs_in: u64,
    kept: u64,
    rows_out: Option<u64>,
    dropped: BTreeMap<String, u64>,
    dropped_bytes: BTreeMap<String, u64>,
    text_bytes_kept: u64,
    seconds: f64,
    counters: BTreeMap<String, u64>,
    by_dump: BTreeMap<String, loam_pipeline::stage::DumpTally>,
    warnings: Vec<String>,
    has_text_bytes: bool,
}

fn merge(stats: &[ShardStats]) -> Merged {
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

fn reasons(m: &Merged) -> Vec<Reason> {
    m.dropped
        .iter()
        .map(|(k, &docs)| Reason {
            reason: k.clone(),
            docs,
            bytes: m.dropped_bytes.get(k).copied().unwrap_or(0),
        })
        .collect()
}

fn per_dump(m: &Merged) -> Vec<DumpRow> {
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

fn rule_rank(reason: &str) -> usize {
    // Longest matching family prefix wins (gopher_rep before gopher).
    RULE_ORDER
        .iter()
        .enumerate()
        .filter(|(_, p)| reason.starts_with(*p))
        .max_by_key(|(_, p)| p.len())
        .map_or(RULE_ORDER.len(), |(i, _)| i)
}

/// The seeded sample of one side (`kept` or `_dropped`) of a stage, over its shards.
fn sample_side(run: &Path, stage: &str, dropped: bool, n: usize, seed: u64) -> Result<Vec<SampleRow>> {
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
        rows.extend(sample_file(p, spec).with_context(|| format!("sampling {}", p.display()))?);
    }
    rows.truncate(n);
    Ok(rows)
}

fn digest(path: &Path, name: &str) -> Result<Option<FileDigest>> {
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

/// Histogram of `value` over the sample, kept vs dropped, weighted by documents and by
/// bytes: the pair the page shows side by side.
fn hist_pair(
    title: &str,
    x_label: &str,
    edges: Vec<f64>,
    kept: &[SampleRow],
    dropped: &[SampleRow],
    value: impl Fn(&SampleRow) -> Option<f64>,
    marker: Option<Marker>,
) -> [Histogram; 2] {
    let bins = edges.len() - 1;
    let bin = |v: f64| {
        let i = edges.partition_point(|e| *e <= v);
        i.saturating_sub(1).min(bins - 1)
    };
    let fill = |rows: &[SampleRow], bytes: bool| {
        let mut c = vec![0.0; bins];
        for r in rows {
            if let Some(v) = value(r) {
                c[bin(v)] += if bytes { r.bytes as f64 } else { 1.0 };
            }
        }
        c
    };
    let make = |bytes: bool| Histogram {
        title: format!("{title} ({})", if bytes { "by bytes" } else { "by documents" }),
        x_label: x_label.to_owned(),
        edges: edges.clone(),
        series: vec![
            HistSeries {
                name: "dropped".into(),
                counts: fill(dropped, bytes),
            },
            HistSeries {
                name: "kept".into(),
                counts: fill(kept, bytes),
            },
        ],
        marker: marker.clone(),
        weight: if bytes { "bytes" } else { "documents" }.into(),
    };
    [make(false), make(true)]
}

fn build(run: &Path, args: &ReportArgs) -> Result<Report> {
    let cfg_text = std::fs::read_to_string(run.join("config.resolved.toml")).with_context(|| {
        format!(
            "{}: no config.resolved.toml — point --run at a loam run directory",
            run.display()
        )
    })?;
    let cfg: toml::Value = toml::from_str(&cfg_text).context("config.resolved.toml")?;
    let seed = cfg.get("seed").and_then(toml::Value::as_integer).unwrap_or(0) as u64;
    let shards = cfg.get("shards").and_then(toml::Value::as_integer).unwrap_or(0) as usize;
    let ledger = crate::dag::ledger(run)?;

    let mut r = Report {
        schema: SCHEMA.into(),
        ..Default::default()
    };
    r.header = Header {
        run: run
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| run.display().to_string()),
        loam_version: env!("CARGO_PKG_VERSION").into(),
        config_sha256: loam_tokenize::sha256_hex(cfg_text.as_bytes()),
        seed,
        shards,
        ledger: LedgerBadge {
            balanced: ledger.balanced(),
            problems: ledger
                .problems
                .iter()
                .chain(ledger.stages.iter().flat_map(|s| s.problems.iter()))
                .cloned()
                .collect(),
        },
        ..Default::default()
    };

    let mut merged: BTreeMap<&str, Merged> = BTreeMap::new();
    for stage in crate::dag::ledger_stages() {
        let st = stage_stats(run, stage)?;
        if st.is_empty() {
            continue;
        }
        let m = merge(&st);
        r.header.seconds.push(StageSeconds {
            stage: stage.into(),
            seconds: m.seconds,
        });
        merged.insert(stage, m);
    }
    let tok_summary = read_json(&run.join("tokenize/summary.json"))?;
    for stage in crate::dag::ledger_stages() {
        let Some(m) = merged.get(stage) else { continue };
        r.funnel.push(FunnelRow {
            stage: stage.into(),
            docs_in: m.docs_in,
            kept: m.kept,
            rows_out: m.rows_out,
            dropped: m.dropped.values().sum(),
            text_bytes_kept: m.has_text_bytes.then_some(m.text_bytes_kept).or_else(|| {
                (stage == "tokenize")
                    .then(|| tok_summary.as_ref().map(|t| u(&t["total"], "text_bytes")))
                    .flatten()
            }),
            tokens: (stage == "tokenize")
                .then(|| tok_summary.as_ref().map(|t| u(&t["total"], "tokens")))
                .flatten(),
        });
    }

    if let Some(m) = merged.get("ingest") {
        r.ingest = Some(Ingest {
            input_files: m.counters.get("input_files").copied().unwrap_or(0),
            input_bytes: m.counters.get("input_file_bytes").copied().unwrap_or(0),
            formats: m
                .counters
                .iter()
                .filter_map(|(k, &n)| k.strip_prefix("kept_format/").map(|f| Count { key: f.into(), n }))
                .collect(),
            reasons: reasons(m),
            per_dump: per_dump(m),
            warnings: m.warnings.clone(),
        });
    }

    let n = args.sample;
    if let Some(m) = merged.get("filter") {
        let mut rs = reasons(m);
        rs.sort_by_key(|x| rule_rank(&x.reason));
        let mut languages: Vec<Count> = m
            .counters
            .iter()
            .filter_map(|(k, &n)| k.strip_prefix("kept_language_").map(|l| Count { key: l.into(), n }))
            .collect();
        languages.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.key.cmp(&b.key)));
        languages.truncate(12);
        let kept = sample_side(run, "filter", false, n, seed)?;
        let dropped = sample_side(run, "filter", true, n, seed)?;
        let min_lang = cfg
            .get("filter")
            .and_then(|f| f.get("min_language_score"))
            .and_then(toml::Value::as_float);
        let mut histograms = Vec::new();
        histograms.extend(hist_pair(
            "language score",
            "fastText language probability",
            (0..=20).map(|i| i as f64 / 20.0).collect(),
            &kept,
            &dropped,
            |r| r.language_score.map(f64::from),
            min_lang.map(|x| Marker {
                x,
                label: "min_language_score".into(),
            }),
        ));
        let log_edges: Vec<f64> = (0..=24).map(|i| i as f64 * 0.5).collect();
        histograms.extend(hist_pair(
            "document length",
            "log2 characters",
            log_edges,
            &kept,
            &dropped,
            |r| Some((r.chars.max(1) as f64).log2()),
            None,
        ));
        r.filter = Some(Filter {
            reasons: rs,
            languages,
            per_dump: per_dump(m),
            edited: m.counters.get("edited").copied().unwrap_or(0),
            c4_lines_removed: m.counters.get("c4_lines_removed").copied().unwrap_or(0),
            histograms,
            sample: SampleNote {
                kept: kept.len(),
                dropped: dropped.len(),
                seed,
            },
        });
    }

    if let Some(m) = merged.get("dedup") {
        let sum = read_json(&run.join("dedup/_index/cluster/summary.json"))?.unwrap_or_default();
        let curve = sum["curve"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| CurvePoint {
                        dumps: u(c, "dumps") as u32,
                        last_dump: s(c, "last_dump"),
                        documents: u(c, "documents"),
                        removed: u(c, "removed"),
                        removed_share: f(c, "removed_share"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut cluster_sizes: Vec<(u64, u64)> = sum["cluster_sizes"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        cluster_sizes.sort_unstable();
        let dropped = sample_side(run, "dedup", true, n, seed)?;
        let mut by_survivor: BTreeMap<String, Vec<&SampleRow>> = BTreeMap::new();
        for d in &dropped {
            if let Some(s) = &d.detail {
                by_survivor.entry(s.clone()).or_default().push(d);
            }
        }
        let mut groups: Vec<(String, Vec<&SampleRow>)> = by_survivor.into_iter().collect();
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        let examples = groups
            .into_iter()
            .take(3)
            .map(|(survivor, rows)| Cluster {
                survivor,
                members: rows
                    .iter()
                    .take(3)
                    .map(|r| snippet(r, r.reason.clone().unwrap_or_default()))
                    .collect(),
            })
            .collect();
        r.dedup = Some(Dedup {
            documents: u(&sum, "documents").max(m.docs_in),
            kept: m.kept,
            exact_duplicate: m.dropped.get("exact_duplicate").copied().unwrap_or(0),
            near_duplicate: m.dropped.get("near_duplicate").copied().unwrap_or(0),
            docs_with_lines_removed: m.counters.get("docs_with_lines_removed").copied().unwrap_or(0),
            lines_removed: m.counters.get("dup_lines_removed").copied().unwrap_or(0),
            curve,
            paper_table1: PAPER_TABLE1.to_vec(),
            per_dump: per_dump(m),
            cluster_sizes,
            examples,
        });
    }

    if merged.contains_key("quality") {
        r.quality = Some(quality_section(run, n, seed, &mut r.header)?);
    }
    if let Some(plan) = read_json(&run.join("remix/_stats/plan.json"))? {
        r.remix = Some(remix_section(run, &plan, n, seed)?);
    }
    if let Some(t) = &tok_summary {
        r.tokenize = Some(tokenize_section(t));
        r.header.tokenizer = digest(&run.join("tokenizer/tokenizer.json"), "tokenizer.json")?;
    }
    if let Some(sc) = read_json(&run.join("score/score.json"))? {
        r.score = Some(score_section(&sc));
    }
    if let Some(fit) = read_json(&run.join("sweep/fit.json"))? {
        r.sweep = Some(sweep_section(&fit));
    }
    if let Some(sum) = read_json(&run.join("train/summary.json"))? {
        r.train = Some(train_section(run, &sum)?);
    }
    r.provenance = provenance(&cfg, &cfg_text, args.hash_limit_mb)?;
    r.datasheet = datasheet(&r, &cfg);
    Ok(r)
}

fn snippet(r: &SampleRow, label: String) -> Snippet {
    let mut text: String = r.text.chars().take(280).collect();
    if r.chars > 280 {
        text.push('…');
    }
    Snippet {
        id: r.id.clone(),
        dump: r.dump.clone(),
        label,
        text,
    }
}

fn quality_section(run: &Path, n: usize, seed: u64, header: &mut Header) -> Result<Quality> {
    let threshold = read_json(&run.join("quality/_index/threshold.json"))?.unwrap_or_default();
    let per_lang: BTreeMap<String, &Value> = threshold["models"]
        .as_array()
        .map(|a| a.iter().map(|m| (s(m, "language"), m)).collect())
        .unwrap_or_default();
    let mut models = Vec::new();
    let mut cards: Vec<PathBuf> = std::fs::read_dir(run.join("quality/_model"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    cards.retain(|p| p.to_string_lossy().ends_with(".card.json"));
    cards.sort();
    for c in &cards {
        let Some(card) = read_json(c)? else { continue };
        let lang = s(&card, "language");
        let t = per_lang.get(&lang);
        let file = s(&card, "model");
        let sha = card["bin"]["sha256"].as_str().unwrap_or_default().to_owned();
        header.quality_models.push(FileDigest {
            name: file.clone(),
            bytes: u(&card["bin"], "bytes"),
            sha256: sha,
        });
        let counts = |v: &Value| -> BTreeMap<String, u64> {
            v.as_object()
                .map(|o| o.iter().map(|(k, x)| (k.clone(), x.as_u64().unwrap_or(0))).collect())
                .unwrap_or_default()
        };
        models.push(QualityModel {
            language: lang,
            file,
            heldout_roc_auc: f(&card["heldout"], "roc_auc"),
            threshold: t.and_then(|t| t["threshold_score"].as_f64()),
            scored: t.map_or(0, |t| u(t, "scored")),
            keep: t.map_or(0, |t| u(t, "keep")),
            train_examples: counts(&card["train_examples"]),
            heldout_examples: counts(&card["heldout_examples"]),
            sources: card["sources"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| QualitySource {
                            name: s(x, "name"),
                            label: s(x, "label"),
                            split: s(x, "split"),
                            docs: u(x, "docs"),
                            bytes: u(x, "bytes"),
                            sha256: s(x, "sha256"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            what: s(&card, "what"),
        });
    }
    // Score histograms: merged from every shard's stats (exact, all documents).
    let mut hist: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut bins = 20;
    for st in stage_stats(run, "quality")? {
        let Some(h) = st.extra.get("score_histogram") else {
            continue;
        };
        bins = h["bins"].as_u64().unwrap_or(20) as usize;
        for (lang, v) in h["by_language"].as_object().into_iter().flatten() {
            let e = hist
                .entry(lang.clone())
                .or_insert_with(|| (vec![0.0; bins], vec![0.0; bins]));
            for (side, arr) in [(&mut e.0, &v["kept"]), (&mut e.1, &v["dropped"])] {
                for (i, x) in arr.as_array().into_iter().flatten().enumerate() {
                    if let Some(slot) = side.get_mut(i) {
                        *slot += x.as_f64().unwrap_or(0.0);
                    }
                }
            }
        }
    }
    let kept = sample_side(run, "quality", false, n, seed)?;
    let dropped = sample_side(run, "quality", true, n, seed)?;
    let edges: Vec<f64> = (0..=bins).map(|i| i as f64 / bins as f64).collect();
    let mut histograms = Vec::new();
    for (lang, (k, d)) in &hist {
        let marker = per_lang
            .get(lang)
            .and_then(|t| t["threshold_score"].as_f64())
            .map(|x| Marker {
                x,
                label: "threshold".into(),
            });
        histograms.push(Histogram {
            title: format!("quality score, {lang} (by documents, all scored)"),
            x_label: "P(reference)".into(),
            edges: edges.clone(),
            series: vec![
                HistSeries {
                    name: "dropped".into(),
                    counts: d.clone(),
                },
                HistSeries {
                    name: "kept".into(),
                    counts: k.clone(),
                },
            ],
            marker: marker.clone(),
            weight: "documents".into(),
        });
        let in_lang = |rows: &[SampleRow]| -> Vec<SampleRow> {
            rows.iter()
                .filter(|r| r.language.as_deref() == Some(lang.as_str()))
                .cloned()
                .collect()
        };
        let [_, by_bytes] = hist_pair(
            &format!("quality score, {lang}, sample"),
            "P(reference)",
            edges.clone(),
            &in_lang(&kept),
            &in_lang(&dropped),
            |r| r.quality_score.map(f64::from),
            marker,
        );
        histograms.push(by_bytes);
    }
    let mut scored: Vec<&SampleRow> = kept
        .iter()
        .chain(&dropped)
        .filter(|r| r.quality_score.is_some())
        .collect();
    scored.sort_by(|a, b| {
        a.quality_score
            .partial_cmp(&b.quality_score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.id.cmp(&b.id))
    });
    let snippets = if scored.is_empty() {
        Vec::new()
    } else {
        (1..=9)
            .map(|d| {
                let r = scored[(scored.len() - 1) * d / 10];
                snippet(
                    r,
                    format!(
                        "decile {d}0%: score {:.3}, {}",
                        r.quality_score.unwrap_or(0.0),
                        if r.reason.is_some() { "dropped" } else { "kept" }
                    ),
                )
            })
            .collect()
    };
    Ok(Quality {
        models,
        rule: s(&threshold, "rule"),
        histograms,
        snippets,
        sample: SampleNote {
            kept: kept.len(),
            dropped: dropped.len(),
            seed,
        },
    })
}

fn remix_section(run: &Path, plan: &Value, n: usize, seed: u64) -> Result<Remix> {
    let out = sample_side(run, "remix", false, n, seed)?;
    let mut dl: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &out {
        let key = (
            r.mix_domain.clone().unwrap_or_else(|| "—".into()),
            r.language.clone().unwrap_or_else(|| "—".into()),
        );
        *dl.entry(key).or_default() += 1;
    }
    Ok(Remix {
        unit: s(plan, "unit"),
        target: s(plan, "target"),
        max_epochs: f(plan, "max_epochs"),
        docs_in: u(plan, "docs_in"),
        docs_kept: u(plan, "docs_kept"),
        rows_out: u(plan, "rows_out"),
        l1_target_achieved: f(plan, "l1_target_achieved"),
        unique_fraction_out: f(plan, "unique_fraction_out"),
        domains: plan["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|k| RemixDomain {
                        domain: s(k, "key"),
                        docs_in: u(k, "docs_in"),
                        natural_share: f(k, "natural_share"),
                        target_share: f(k, "target_share"),
                        achieved_share: f(k, "achieved_share"),
                        epochs: f(k, "epochs"),
                        capped: k["capped"].as_bool().unwrap_or(false),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        domain_language: dl.into_iter().map(|((d, l), n)| (d, l, n)).collect(),
    })
}

fn tokenize_section(t: &Value) -> Tokenize {
    let total = &t["total"];
    let mut hist: Vec<(u64, u64)> = t["doc_tokens_histogram"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    Some((
                        1u64 << k.strip_prefix("lt_2^")?.parse::<u32>().ok()?.min(63),
                        v.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    hist.sort_unstable();
    Tokenize {
        tokenizer_sha256: s(t, "tokenizer_sha256"),
        vocab_size: u(t, "vocab_size"),
        docs: u(total, "docs"),
        tokens: u(total, "tokens"),
        text_bytes: u(total, "text_bytes"),
        bytes_per_token: f(total, "bytes_per_token"),
        tokens_per_doc: hist,
        per_dump: t["per_dump"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| TokenRow {
                        key: k.clone(),
                        docs: u(v, "docs"),
                        tokens: u(v, "tokens"),
                        text_bytes: u(v, "text_bytes"),
                        bytes_per_token: f(v, "bytes_per_token"),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn pairs_of(v: &Value) -> Vec<(String, f64)> {
    v.as_object()
        .map(|o| o.iter().filter_map(|(k, x)| Some((k.clone(), x.as_f64()?))).collect())
        .unwrap_or_default()
}

fn score_section(sc: &Value) -> Score {
    let c = &sc["corpus"];
    Score {
        q: f(sc, "q"),
        a: f(sc, "a"),
        b: f(sc, "b"),
        sigma_a: f(sc, "sigma_a"),
        calibration: s(&sc["calibration"], "source"),
        assumption: s(sc, "assumption"),
        diagnostics: pairs_of(&c["diagnostics"]),
        p_raw: f(c, "p_raw"),
        p_final: f(c, "p_final"),
        p_pos: f(c, "p_pos"),
        allocation: pairs_of(&sc["train"]),
    }
}

fn sweep_section(fit: &Value) -> Sweep {
    let runs = fit["sweep"]["runs"].as_array().cloned().unwrap_or_default();
    let slices = fit["approach2"]["fit"]["slices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let budgets = fit["budgets"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(Value::as_f64)
                .map(|c| {
                    let points = runs
                        .iter()
                        .filter(|r| f(r, "budget") == c && s(r, "status") == "ok" && r["dropped"].is_null())
                        .map(|r| (f(r, "m"), f(r, "loss_bpb")))
                        .collect();
                    let slice = slices.iter().find(|x| f(x, "budget") == c && x["refused"].is_null());
                    let parabola = slice.and_then(|x| {
                        let k = x["coef"].as_array()?;
                        Some([
                            f(x, "centre"),
                            k.first()?.as_f64()?,
                            k.get(1)?.as_f64()?,
                            k.get(2)?.as_f64()?,
                        ])
                    });
                    IsoFlop {
                        flops: c,
                        points,
                        parabola,
                        vertex: slice.map(|x| (f(x, "size_opt"), f(x, "loss_opt"))),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let boot = &fit["bootstrap"];
    let est = |name: &str, a: &Value, b: &Value| {
        a.as_f64()
            .map(|a| (name.to_owned(), a, b["lo"].as_f64(), b["hi"].as_f64()))
    };
    Sweep {
        verdict: s(&fit["check"], "verdict"),
        predicted_a: fit["check"]["a_predicted"].as_f64(),
        estimates: [
            est("approach 2 (IsoFLOP vertices)", &fit["a_approach2"], &boot["a2"]),
            est("approach 3 (parametric law)", &fit["a_approach3"], &boot["a3"]),
        ]
        .into_iter()
        .flatten()
        .collect(),
        budgets,
        warnings: fit["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    }
}

fn train_section(run: &Path, sum: &Value) -> Result<Train> {
    let path = run.join("train/metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let all: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    // At most ~400 points: every k-th step, and always the last.
    let every = all.len().div_ceil(400).max(1);
    let curve = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0 || *i + 1 == all.len())
        .filter(|(_, m)| m.get("loss").is_some())
        .map(|(_, m)| (f(m, "tokens"), f(m, "loss"), f(m, "lr"), f(m, "grad_norm")))
        .collect();
    Ok(Train {
        steps: u(sum, "steps"),
        tokens: u(sum, "tokens"),
        params: u(sum, "params"),
        final_loss: f(sum, "final_loss"),
        val_loss: sum["val_loss"].as_f64(),
        val_bpb: sum["val_bpb"].as_f64(),
        curve,
    })
}

fn provenance(cfg: &toml::Value, text: &str, hash_limit_mb: u64) -> Result<Provenance> {
    let inputs = cfg
        .get("inputs")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let paths: Vec<(String, PathBuf)> = inputs
        .iter()
        .filter_map(|i| {
            let p = i.get("path")?.as_str()?;
            let name = i.get("name").and_then(toml::Value::as_str).unwrap_or(p);
            Some((name.to_owned(), PathBuf::from(p)))
        })
        .collect();
    let total: u64 = paths
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let hash = total <= hash_limit_mb << 20;
    let mut out = Vec::new();
    for (name, p) in paths {
        let bytes = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        // Streamed: an input file is never held in memory whole.
        let sha256 = if hash {
            loam_pipeline::quality::sources::file_sha256(&p).ok()
        } else {
            None
        };
        out.push(InputFile {
            path: name,
            bytes,
            sha256,
        });
    }
    Ok(Provenance {
        inputs: out,
        config_toml: text.to_owned(),
    })
}

fn datasheet(r: &Report, cfg: &toml::Value) -> Datasheet {
    let languages: Vec<String> = match cfg
        .get("filter")
        .and_then(|f| f.get("languages"))
        .and_then(toml::Value::as_array)
    {
        Some(a) if !a.is_empty() => a.iter().filter_map(|l| l.as_str().map(str::to_owned)).collect(),
        _ => r
            .filter
            .as_ref()
            .map(|f| f.languages.iter().map(|c| c.key.clone()).collect())
            .unwrap_or_default(),
    };
    let last = r
        .funnel
        .iter()
        .rev()
        .find(|f| f.stage != "tokenize")
        .or(r.funnel.last());
    let docs = last.map_or(0, |f| f.rows_out.unwrap_or(f.kept));
    let mut by_dump: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &r.provenance.inputs {
        let dump = cfg
            .get("inputs")
            .and_then(toml::Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("name").and_then(toml::Value::as_str) == Some(i.path.as_str()))
            })
            .and_then(|x| x.get("dump").and_then(toml::Value::as_str))
            .unwrap_or("(from the files)")
            .to_owned();
        by_dump.entry(dump).or_default().push(i.path.clone());
    }
    let sources = by_dump
        .into_iter()
        .map(|(dump, inputs)| SourceCard {
            dump,
            inputs,
            license: "not stated".into(),
        })
        .collect();
    let stages: Vec<String> = r
        .funnel
        .iter()
        .map(|f| format!("{} ({} kept of {})", f.stage, f.kept, f.docs_in))
        .collect();
    let tokens = r
        .tokenize
        .as_ref()
        .map_or("not tokenized".into(), |t| format!("{} tokens", t.tokens));
    let sections = vec![
        ("Motivation".into(), "not stated (the run's config does not say why the dataset was made or by whom)".into()),
        ("Composition".into(), format!("{docs} documents ({tokens}) in languages {}; web documents from the dumps listed under Sources.", languages.join(", "))),
        ("Collection process".into(), format!("{} input files read by loam's ingest (WARC/WET/JSONL/Parquet); crawl dates as recorded in each record.", r.provenance.inputs.len())),
        ("Preprocessing / cleaning / labeling".into(), format!("loam stages: {}. Every dropped document is kept with its reason in each stage's _dropped/ side output.", stages.join("; "))),
        ("Uses".into(), "language-model pre-training; other uses not stated".into()),
        ("Distribution".into(), "not stated".into()),
        ("Maintenance".into(), "not stated".into()),
    ];
    Datasheet {
        languages,
        size_category: loam_report::card::size_category(docs).into(),
        sources,
        sections,
    }
}
