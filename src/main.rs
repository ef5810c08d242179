//! `loam`: the command line over loam's pipeline. Each subcommand is one DAG step (stage
//! name = subcommand = output folder), `run` runs every step in order, `ledger` checks a
//! run's books. Logs and progress go to stderr; stdout carries one JSON result line.
//!
//! Exit codes: 0 done; 1 failed (bad input file, I/O, unbalanced ledger); 2 bad usage or
//! configuration.
mod config;
mod dag;
mod runner;
mod tokens;
mod training;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use loam_pipeline::dedup::apply::Apply;
use loam_pipeline::dedup::cluster::{read_summary, run_cluster, ClusterOutcome, ClusterSummary};
use loam_pipeline::dedup::{run_signatures, IndexPaths, Signatures};
use loam_pipeline::filter::Filter;
use loam_pipeline::ingest::Ingest;
use loam_pipeline::stage::ShardId;
use loam_pipeline::PipelineError;
use loam_tokenize::TokenizeError;

use config::{Resolved, UsageError};
use runner::{run_stage, split_threads, StageSummary};

#[derive(Parser)]
#[command(
    name = "loam",
    version,
    about = "Curate web-crawl dumps into a pre-training corpus, then size and train a model on it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage, in DAG order, on this machine (shards in parallel).
    Run {
        /// The run's TOML config.
        config: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Write the run here instead of the config's run.dir (relative to the working directory).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Stop after this stage (default: run every stage, training last).
        #[arg(long, value_parser = ["ingest", "filter", "dedup", "tokenizer", "tokenize", "train"])]
        until: Option<String>,
    },
    /// Read WARC/WET/JSONL/Parquet inputs into canonical Parquet documents.
    Ingest(IngestArgs),
    /// Language id and the Gopher / C4 / FineWeb rules over what ingest kept.
    Filter(FilterArgs),
    /// Exact, MinHash-LSH and line-level dedup across every dump (signatures → cluster → apply).
    Dedup(DedupArgs),
    /// Train the run's byte-level BPE (or any text files'); encode/decode by hand.
    Tokenizer {
        #[command(subcommand)]
        action: TokenizerAction,
    },
    /// Encode the corpus into packed token shards with the run's tokenizer.
    Tokenize(TokenizeArgs),
    /// Train the LLaMA-style model on the token shards (CPU; CUDA with --features cuda).
    Train(ModelTrainArgs),
    /// Write the run's DAG for a scheduler (stdout): one task per stage shard.
    Dag {
        #[arg(long)]
        config: PathBuf,
        /// Only `airflow` for now.
        #[arg(long, default_value = "airflow", value_parser = ["airflow"])]
        format: String,
        /// The loam binary as the workers see it.
        #[arg(long, default_value = "loam")]
        binary: String,
        /// DAG id (default: loam_<run dir name>).
        #[arg(long)]
        dag_id: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Check that every stage's documents in = kept + dropped, and print the table.
    Ledger {
        run_dir: PathBuf,
        /// Print the ledger as JSON on stdout instead of the result line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenizerAction {
    /// Train a BBPE (DeepSeek pre-tokenizer unless tokenizer.bpe.pretokenizer_from is set):
    /// on the run's corpus sample (--config / --run), or on text files line by line
    /// (--input … --out DIR). Settings: --set tokenizer.bpe.vocab_size=8000 etc.
    Train(TrainArgs),
    /// Text on stdin → token ids as a JSON array on stdout (no special tokens added).
    Encode {
        #[arg(long)]
        tokenizer: PathBuf,
    },
    /// A JSON array of ids on stdin → their text on stdout.
    Decode {
        #[arg(long)]
        tokenizer: PathBuf,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// The run's TOML config.
    #[arg(long, conflicts_with_all = ["run", "input", "out"])]
    config: Option<PathBuf>,
    /// Run directory holding a committed corpus (default upstream: dedup/).
    #[arg(long, conflicts_with_all = ["input", "out"])]
    run: Option<PathBuf>,
    /// Text files to train on, line by line (repeatable); needs --out.
    #[arg(long, requires = "out")]
    input: Vec<PathBuf>,
    /// Folder for tokenizer.json and tokenizer_config.json (with --input).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct ModelTrainArgs {
    /// The run's TOML config; or give --run instead.
    #[arg(long, conflicts_with = "run")]
    config: Option<PathBuf>,
    /// Run directory holding committed token shards (tokenize/); output goes to RUN/train/.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Continue from the newest checkpoint in RUN/train/checkpoints (same settings).
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct TokenizeArgs {
    /// The run's TOML config; or give --run instead.
    #[arg(long, conflicts_with = "run")]
    config: Option<PathBuf>,
    /// Run directory holding a committed tokenizer/ and corpus.
    #[arg(long)]
    run: Option<PathBuf>,
    #[command(flatten)]
    split: Split,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct Common {
    /// Override a config value: --set ingest.max_record_bytes=1048576 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Worker threads (default: all cores). Output is identical at any count.
    #[arg(long)]
    threads: Option<usize>,
    /// Redo shards even when they are already committed.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct IngestArgs {
    /// The run's TOML config; or give --input/--out instead.
    #[arg(long, conflicts_with_all = ["input", "out", "dump"])]
    config: Option<PathBuf>,
    /// Input file, folder or glob (repeatable); with --out, no config is needed.
    #[arg(long, requires = "out")]
    input: Vec<String>,
    /// Dump name for the inputs (default: from a CC-MAIN-YYYY-WW in the path or the warcinfo record).
    #[arg(long)]
    dump: Option<String>,
    /// Run directory to write into.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    split: Split,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct FilterArgs {
    /// The run's TOML config; or give --run instead.
    #[arg(long, conflicts_with_all = ["run", "lid_model"])]
    config: Option<PathBuf>,
    /// Run directory holding a committed `ingest/`; the output goes to `RUN/filter/`.
    #[arg(long)]
    run: Option<PathBuf>,
    /// fastText lid.176.ftz (with --run; default data/lid/lid.176.ftz).
    #[arg(long)]
    lid_model: Option<PathBuf>,
    #[command(flatten)]
    split: Split,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct DedupArgs {
    /// The run's TOML config; or give --run instead.
    #[arg(long, conflicts_with = "run")]
    config: Option<PathBuf>,
    /// Run directory holding a committed `filter/` (or `ingest/` with --set dedup.upstream=ingest).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Which step: `signatures` and `apply` fan out over shards, `cluster` is one task;
    /// `all` runs the three on this machine.
    #[arg(long, default_value = "all", value_parser = ["all", "signatures", "cluster", "apply"])]
    phase: String,
    #[command(flatten)]
    split: Split,
    #[command(flatten)]
    common: Common,
}

/// `--shard I --of N`: one task of a fanned-out step.
#[derive(Args)]
struct Split {
    /// Process only this shard (0-based); with --of, as one task of a fanned-out step.
    #[arg(long, requires = "of")]
    shard: Option<usize>,
    /// Number of shards the step is split into (default: run.shards, or 1 with flags alone).
    #[arg(long)]
    of: Option<usize>,
}

impl Split {
    fn shards(&self, default_of: usize) -> Result<Vec<ShardId>> {
        let of = self.of.unwrap_or(default_of);
        match self.shard {
            Some(i) => Ok(vec![ShardId::new(i, of)?]),
            None => all_shards(of),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let raw_output = matches!(
        cli.command,
        Command::Dag { .. }
            | Command::Tokenizer {
                action: TokenizerAction::Encode { .. } | TokenizerAction::Decode { .. }
            }
    );
    match dispatch(cli) {
        Ok(Output::Line(line)) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Ok(Output::Text(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let usage = e.downcast_ref::<UsageError>().is_some()
                || matches!(
                    e.downcast_ref::<PipelineError>(),
                    Some(PipelineError::Config(_) | PipelineError::Tokenize(TokenizeError::Config(_)))
                )
                || matches!(e.downcast_ref::<TokenizeError>(), Some(TokenizeError::Config(_)));
            eprintln!("error: {e:#}");
            // `loam dag > file` must not leave a JSON line in the file.
            if !raw_output {
                println!("{}", serde_json::json!({"ok": false, "error": format!("{e:#}")}));
            }
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// What a subcommand prints on stdout: the one JSON result line, or (for `loam dag`) a
/// document meant to be redirected to a file.
enum Output {
    Line(serde_json::Value),
    Text(String),
}

fn dispatch(cli: Cli) -> Result<Output> {
    match cli.command {
        Command::Run {
            config,
            common,
            run_dir,
            until,
        } => {
            let mut cfg = config::load(&config, &common.overrides)?;
            if let Some(d) = run_dir {
                cfg.run_dir = config::normalize(&d);
            }
            run_all(&cfg, &common, until.as_deref().unwrap_or("train")).map(Output::Line)
        }
        Command::Ingest(args) => ingest_cmd(args).map(Output::Line),
        Command::Filter(args) => filter_cmd(args).map(Output::Line),
        Command::Dedup(args) => dedup_cmd(args).map(Output::Line),
        Command::Dag {
            config,
            binary,
            dag_id,
            overrides,
            ..
        } => {
            let cfg = config::load(&config, &overrides)?;
            dag::airflow(&cfg, &config, &binary, dag_id.as_deref()).map(Output::Text)
        }
        Command::Tokenizer {
            action: TokenizerAction::Train(args),
        } => tokens::train_cmd(args).map(Output::Line),
        Command::Tokenizer { action } => tokens::tokenizer_cmd(action).map(Output::Text),
        Command::Tokenize(args) => tokens::tokenize_cmd(args).map(Output::Line),
        Command::Train(args) => training::model_train_cmd(args).map(Output::Line),
        Command::Ledger { run_dir, json } => {
            let ledger = loam_pipeline::ledger::read_ledger(&run_dir)?;
            eprint!("{}", ledger.table());
            if json {
                println!("{}", serde_json::to_string_pretty(&ledger)?);
            }
            if !ledger.balanced() {
                anyhow::bail!("ledger of {} does not balance (see the table above)", run_dir.display());
            }
            Ok(Output::Line(
                serde_json::json!({"ok": true, "run_dir": run_dir, "ledger": "balanced"}),
            ))
        }
    }
}

/// The configuration of a step run with `--config FILE`, or with `--run DIR` (defaults for
/// the run directory, then `with_flags` applies the step's own flags); `hint` finishes the
/// error when neither is given.
fn step_config(
    config: Option<&Path>,
    run: Option<&Path>,
    overrides: &[String],
    of: usize,
    hint: &str,
    with_flags: impl FnOnce(&mut Resolved) -> Result<()>,
) -> Result<Resolved> {
    match (config, run) {
        (Some(c), _) => config::load(c, overrides),
        (None, Some(run)) => {
            let mut cfg = config::for_run_dir(run, of);
            with_flags(&mut cfg)?;
            Ok(cfg)
        }
        (None, None) => anyhow::bail!(UsageError(format!("give --config FILE, or --run DIR{hint}"))),
    }
}

fn threads(common: &Common) -> usize {
    common
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

fn all_shards(of: usize) -> Result<Vec<ShardId>> {
    (0..of).map(|i| ShardId::new(i, of).map_err(Into::into)).collect()
}

fn ingest_step(cfg: &Resolved, shards: &[ShardId], common: &Common) -> Result<StageSummary> {
    let (parallel, per_shard) = split_threads(threads(common), shards.len());
    let stage = Ingest::new(cfg.inputs.clone(), cfg.ingest.clone(), per_shard)?;
    let dir = cfg.run_dir.join("ingest");
    run_stage(&stage, &dir, shards, &stage.fingerprint(), common.force, parallel)
        .with_context(|| format!("ingest into {}", dir.display()))
}

fn ingest_cmd(args: IngestArgs) -> Result<serde_json::Value> {
    let cfg = match (&args.config, &args.out) {
        (Some(c), _) => config::load(c, &args.common.overrides)?,
        (None, Some(out)) => {
            if args.input.is_empty() {
                anyhow::bail!(UsageError("--out needs at least one --input".into()));
            }
            config::from_flags(&args.input, args.dump.clone(), out, args.split.of.unwrap_or(1))?
        }
        (None, None) => anyhow::bail!(UsageError(
            "give --config FILE, or --input PATH... --out DIR (see loam ingest --help)".into()
        )),
    };
    let shards = args.split.shards(cfg.shards)?;
    config::save(&cfg)?;
    let sum = ingest_step(&cfg, &shards, &args.common)?;
    Ok(serde_json::json!({"ok": true, "run_dir": cfg.run_dir, "stages": [sum]}))
}

fn filter_step(cfg: &Resolved, shards: &[ShardId], common: &Common) -> Result<StageSummary> {
    let (parallel, per_shard) = split_threads(threads(common), shards.len());
    let stage = Filter::new(&cfg.run_dir.join("ingest"), cfg.filter.clone(), per_shard)?;
    let dir = cfg.run_dir.join("filter");
    run_stage(&stage, &dir, shards, stage.fingerprint(), common.force, parallel)
        .with_context(|| format!("filter into {}", dir.display()))
}

fn filter_cmd(args: FilterArgs) -> Result<serde_json::Value> {
    let of = args.split.of.unwrap_or(1);
    let cfg = step_config(
        args.config.as_deref(),
        args.run.as_deref(),
        &args.common.overrides,
        of,
        " (see loam filter --help)",
        |cfg| {
            if let Some(m) = &args.lid_model {
                cfg.filter.lid_model = m.clone();
            }
            Ok(())
        },
    )?;
    let shards = args.split.shards(cfg.shards)?;
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let sum = filter_step(&cfg, &shards, &args.common)?;
    Ok(serde_json::json!({"ok": true, "run_dir": cfg.run_dir, "stages": [sum]}))
}

/// Runs `phase` of dedup for `shards` (of `cfg.shards`); returns the apply summary (if
/// apply ran) and the cluster summary (if the cluster step ran or had committed).
fn dedup_step(
    cfg: &Resolved,
    shards: &[ShardId],
    of: usize,
    phase: &str,
    common: &Common,
) -> Result<(Option<StageSummary>, Option<ClusterSummary>)> {
    let (parallel, per_shard) = split_threads(threads(common), shards.len());
    let upstream = cfg.run_dir.join(&cfg.dedup.upstream);
    let dir = cfg.run_dir.join("dedup");
    let sig = Signatures::new(&upstream, cfg.dedup.clone(), per_shard)
        .with_context(|| format!("dedup reading {}", upstream.display()))?;
    let all = phase == "all";
    if all || phase == "signatures" {
        let (done, secs) = run_signatures(&sig, &dir, shards, common.force, parallel)
            .with_context(|| format!("dedup signatures into {}", dir.display()))?;
        eprintln!(
            "dedup signatures: {done} shards computed, {} already committed ({secs:.1} s)",
            shards.len() - done
        );
    }
    let mut cluster = None;
    if all || phase == "cluster" {
        let out = run_cluster(&dir, &cfg.dedup, sig.fingerprint(), of, common.force)
            .with_context(|| format!("dedup cluster step in {}", dir.display()))?;
        let s = out.summary();
        eprintln!(
            "dedup cluster: {} documents ({} from earlier indexes), {} exact + {} near duplicates, {} recurring lines{}",
            s.documents,
            s.documents_from_previous_index,
            s.exact_duplicate,
            s.near_duplicate,
            s.recurring_lines,
            if matches!(out, ClusterOutcome::AlreadyDone(_)) { " (already committed)" } else { "" }
        );
        cluster = Some(out.summary().clone());
    }
    let mut applied = None;
    if all || phase == "apply" {
        let stage = Apply::new(&dir, sig, cfg.dedup.clone())?;
        let sum = run_stage(&stage, &dir, shards, stage.fingerprint(), common.force, parallel)
            .with_context(|| format!("dedup into {}", dir.display()))?;
        applied = Some(sum);
        if cluster.is_none() && phase == "apply" {
            cluster = read_summary(&IndexPaths::new(&dir).cluster).ok();
        }
    }
    Ok((applied, cluster))
}

fn dedup_cmd(args: DedupArgs) -> Result<serde_json::Value> {
    let of = args.split.of.unwrap_or(1);
    let cfg = step_config(
        args.config.as_deref(),
        args.run.as_deref(),
        &args.common.overrides,
        of,
        " (see loam dedup --help)",
        |cfg| {
            cfg.dedup = config::dedup_overrides(&args.common.overrides)?;
            Ok(())
        },
    )?;
    if args.split.shard.is_some() && !matches!(args.phase.as_str(), "signatures" | "apply") {
        anyhow::bail!(UsageError(
            "--shard runs one task of a fanned-out step: add --phase signatures or --phase apply".into()
        ));
    }
    let of = args.split.of.unwrap_or(cfg.shards);
    let shards = args.split.shards(cfg.shards)?;
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let (sum, cluster) = dedup_step(&cfg, &shards, of, &args.phase, &args.common)?;
    if let Some(c) = &cluster {
        eprint!("{}", c.curve_table());
    }
    Ok(serde_json::json!({
        "ok": true, "run_dir": cfg.run_dir, "stages": sum.into_iter().collect::<Vec<_>>(),
        "dedup_curve": cluster.map(|c| c.curve),
    }))
}

/// Runs every stage in DAG order up to and including `until`.
fn run_all(cfg: &Resolved, common: &Common, until: &str) -> Result<serde_json::Value> {
    const ORDER: [&str; 6] = ["ingest", "filter", "dedup", "tokenizer", "tokenize", "train"];
    let last = ORDER.iter().position(|s| *s == until).unwrap_or(ORDER.len() - 1);
    let wanted = |stage: &str| ORDER.iter().position(|s| *s == stage).is_some_and(|i| i <= last);
    config::save(cfg)?;
    let shards = all_shards(cfg.shards)?;
    let mut stages = Vec::new();
    for (name, step) in [("ingest", ingest_step as fn(&_, &_, &_) -> _), ("filter", filter_step)] {
        if wanted(name) {
            let sum = step(cfg, &shards, common)?;
            eprintln!("{sum}");
            stages.push(sum);
        }
    }
    let mut curve = None;
    if wanted("dedup") {
        let (sum, cluster) = dedup_step(cfg, &shards, cfg.shards, "all", common)?;
        if let Some(sum) = sum {
            eprintln!("{sum}");
            stages.push(sum);
        }
        curve = cluster.map(|c| {
            eprint!("{}", c.curve_table());
            c.curve
        });
    }
    if wanted("tokenizer") {
        tokens::tokenizer_step(cfg, common)?;
    }
    let mut tokens = None;
    if wanted("tokenize") {
        let sum = tokens::tokenize_step(cfg, &shards, common)?;
        eprintln!("{sum}");
        stages.push(sum);
        tokens = tokens::token_summary(cfg)?.map(|s| s.total);
    }
    // Resumes a killed run's training from its last checkpoint; a finished one is a no-op.
    let trained = if wanted("train") {
        Some(training::train_step(cfg, true)?)
    } else {
        None
    };
    let ledger = loam_pipeline::ledger::read_ledger(&cfg.run_dir)?;
    eprint!("{}", ledger.table());
    if !ledger.balanced() {
        anyhow::bail!(
            "ledger of {} does not balance (see the table above)",
            cfg.run_dir.display()
        );
    }
    eprintln!("outputs: {}", display(&cfg.run_dir));
    Ok(serde_json::json!({
        "ok": true, "run_dir": cfg.run_dir, "stages": stages, "ledger": "balanced", "dedup_curve": curve,
        "tokens": tokens, "train": trained,
    }))
}

fn display(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_owned())
        .display()
        .to_string()
}
