//! `loam report`: gathers what the stages of a run wrote — per-shard stats, summaries,
//! score.json, fit.json, metrics.jsonl, the ledger, and a bounded seeded sample of
//! documents — into `report/report.json`, then draws `report.html` and the `README.md`
//! dataset card from it (loam-report). One pass over the stats files plus at most
//! `sample` rows per stage side: the cost does not grow with the corpus.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_report::model::*;

use read::{digest, merge, per_dump, read_json, reasons, stage_stats, u, Merged};
use serde_json::Value;

mod provenance;
mod read;
mod sections;

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
    #[arg(long, default_value_t = DEFAULT_SAMPLE)]
    pub sample: usize,
    /// Inputs larger than this in total are listed with sizes only, not hashed.
    #[arg(long, default_value_t = DEFAULT_HASH_LIMIT_MB)]
    pub hash_limit_mb: u64,
    /// Config overrides, as the run was made with (with --config).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    pub overrides: Vec<String>,
}

const DEFAULT_SAMPLE: usize = 2000;
const DEFAULT_HASH_LIMIT_MB: u64 = 4096;

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
        (None, Some(c)) => crate::config::load(c, &args.overrides)?.run_dir,
        (None, None) => anyhow::bail!(crate::config::UsageError(
            "loam report needs --run DIR or --config FILE".into()
        )),
    };
    let w = write(&run, args)?;
    eprintln!("report: {}", w.html.display());
    Ok(serde_json::json!({"ok": true, "run_dir": run, "report": w}))
}

/// The DAG's last step: the report of the run, with the default sample.
pub fn report_step(ctx: &mut crate::dag::Ctx<'_>) -> Result<()> {
    let args = ReportArgs {
        run: Some(ctx.cfg.run_dir.clone()),
        config: None,
        out: None,
        sample: DEFAULT_SAMPLE,
        hash_limit_mb: DEFAULT_HASH_LIMIT_MB,
        overrides: Vec::new(),
    };
    let w = write(&ctx.cfg.run_dir, &args)?;
    eprintln!("report: {}", w.html.display());
    ctx.report.set("report", &w);
    Ok(())
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
        r.filter = Some(sections::filter(run, m, &cfg, n, seed)?);
    }
    if let Some(m) = merged.get("dedup") {
        r.dedup = Some(sections::dedup(run, m, n, seed)?);
    }
    if merged.contains_key("quality") {
        r.quality = Some(sections::quality(run, n, seed, &mut r.header)?);
    }
    if let Some(plan) = read_json(&run.join("remix/_stats/plan.json"))? {
        r.remix = Some(sections::remix(run, &plan, n, seed)?);
    }
    if let Some(t) = &tok_summary {
        r.tokenize = Some(sections::tokenize(t));
        r.header.tokenizer = digest(&run.join("tokenizer/tokenizer.json"), "tokenizer.json")?;
    }
    let score = read_json(&run.join("score/score.json"))?;
    if let Some(sc) = &score {
        r.score = Some(sections::score(sc));
    }
    if let Some(fit) = read_json(&run.join("sweep/fit.json"))? {
        r.sweep = Some(sections::sweep(&fit, score.as_ref()));
    }
    if let Some(sum) = read_json(&run.join("train/summary.json"))? {
        r.train = Some(sections::train(run, &sum)?);
    }
    r.provenance = provenance::inputs(&cfg, &cfg_text, args.hash_limit_mb)?;
    r.datasheet = provenance::datasheet(&r, &cfg);
    Ok(r)
}
