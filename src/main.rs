//! `loam`: the command line over loam's pipeline. Each subcommand is one DAG step (stage
//! name = subcommand = output folder), `run` runs every step in order, `ledger` checks a
//! run's books. Logs and progress go to stderr; stdout carries one JSON result line.
//!
//! Exit codes: 0 done; 1 failed (bad input file, I/O, unbalanced ledger); 2 bad usage or
//! configuration.
mod config;
mod corpus;
mod dag;
mod export;
mod quality;
mod remix;
mod report;
mod runner;
mod score;
mod sweep;
mod tokens;
mod training;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use loam_pipeline::stage::ShardId;
use loam_pipeline::PipelineError;
use loam_tokenize::TokenizeError;

use config::{Resolved, UsageError};

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
        /// Stop after this stage (default: every stage): ingest, filter, dedup, quality,
        /// remix, tokenizer, tokenize, score, train or sweep (which runs only with [sweep]).
        #[arg(long)]
        until: Option<String>,
    },
    /// Read WARC/WET/JSONL/Parquet inputs into canonical Parquet documents.
    Ingest(IngestArgs),
    /// Language id and the Gopher / C4 / FineWeb rules over what ingest kept.
    Filter(FilterArgs),
    /// Exact, MinHash-LSH and line-level dedup across every dump (signatures → cluster → apply).
    Dedup(DedupArgs),
    /// The fastText quality (reference-likeness) classifier: `quality train`, then
    /// score → global threshold → keep rule (`--phase`).
    #[command(args_conflicts_with_subcommands = true)]
    Quality(QualityArgs),
    /// Mixture domains, a target mixture, and deterministic up/down-sampling with an epoch
    /// cap (assign → plan → apply, `--phase`).
    Remix(RemixArgs),
    /// Train the run's byte-level BPE (or any text files'); encode/decode by hand.
    Tokenizer {
        #[command(subcommand)]
        action: TokenizerAction,
    },
    /// Encode the corpus into packed token shards with the run's tokenizer.
    Tokenize(TokenizeArgs),
    /// The corpus quality score q, the scaling exponents it implies, and for each compute
    /// budget the model shape, learning rate, batch and tokens (`score/score.json`).
    Score(ScoreArgs),
    /// The IsoFLOP sweep on the run's tokens (`--config`: plan → runs → fit, `sweep/`), and
    /// scaling-law fits of points you have (`sweep fit --points FILE.csv`).
    Sweep(sweep::SweepArgs),
    /// Train the LLaMA-style model on the token shards (CPU; CUDA with --features cuda).
    Train(ModelTrainArgs),
    /// The dataset quality report of a run: report/report.json, report.html (one offline
    /// page with charts) and README.md (a dataset card).
    Report(report::ReportArgs),
    /// A trained checkpoint as a Hugging Face `LlamaForCausalLM` folder (config.json,
    /// model.safetensors with HF names and layouts, generation_config.json, the tokenizer).
    Export(export::ExportArgs),
    /// Greedy continuation of a prompt with a checkpoint (CPU): the reference an export is
    /// checked against; `--logits F` also writes the prompt's logits.
    Generate(export::GenerateArgs),
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
        /// Overrides of the config; every task gets them too.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Tries after a failed task (shard jobs are idempotent).
        #[arg(long, default_value_t = 2)]
        retries: u32,
        /// Seconds between tries.
        #[arg(long, default_value_t = 60)]
        retry_delay_s: u64,
        /// Airflow pool the tasks take slots from.
        #[arg(long, default_value = "default_pool")]
        pool: String,
        /// Run the dedup cluster task on these `loam worker` addresses (comma-separated
        /// http://HOST:PORT): it gets dedup.engine = "distributed" and dedup.workers.
        #[arg(long, value_delimiter = ',')]
        dedup_workers: Vec<String>,
    },
    /// A worker of the distributed dedup cluster step (`dedup.engine = "distributed"`):
    /// serves DataFusion stages over Arrow Flight until stopped (needs `--features distributed`).
    Worker(worker::WorkerArgs),
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
pub struct Common {
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

#[derive(Args)]
struct QualityArgs {
    #[command(subcommand)]
    action: Option<QualityAction>,
    /// The run's TOML config (the models and their sources live there).
    #[arg(long, conflicts_with = "run")]
    config: Option<PathBuf>,
    #[arg(long, hide = true)]
    run: Option<PathBuf>,
    /// Which step: `score` and `apply` fan out over shards, `threshold` is one task; `all`
    /// runs train, score, threshold and apply on this machine.
    #[arg(long, default_value = "all", value_parser = ["all", "score", "threshold", "apply"])]
    phase: String,
    #[command(flatten)]
    split: Split,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct ScoreArgs {
    /// The run's TOML config ([score] budgets and calibration live there).
    #[arg(long)]
    config: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct RemixArgs {
    /// The run's TOML config (the target mixture lives there).
    #[arg(long)]
    config: PathBuf,
    /// Which step: `train` (the topic classifier) and `plan` are one task each, `assign`
    /// and `apply` fan out over shards; `all` runs them in turn on this machine.
    #[arg(long, default_value = "all", value_parser = ["all", "train", "assign", "plan", "apply"])]
    phase: String,
    #[command(flatten)]
    split: Split,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum QualityAction {
    /// Train (or adopt) the run's quality models and write their model cards (one task).
    Train(QualityTrainArgs),
}

#[derive(Args)]
struct QualityTrainArgs {
    /// The run's TOML config.
    #[arg(long, conflicts_with = "run")]
    config: Option<PathBuf>,
    #[arg(long, hide = true)]
    run: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// `--shard I --of N`: one task of a fanned-out step.
#[derive(Args, Default)]
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
            run_all(&cfg, &common, until.as_deref()).map(Output::Line)
        }
        Command::Ingest(args) => corpus::ingest_cmd(args).map(Output::Line),
        Command::Filter(args) => corpus::filter_cmd(args).map(Output::Line),
        Command::Dedup(args) => corpus::dedup_cmd(args).map(Output::Line),
        Command::Quality(QualityArgs {
            action: Some(QualityAction::Train(args)),
            ..
        }) => quality::quality_train_cmd(args).map(Output::Line),
        Command::Quality(args) => quality::quality_cmd(args).map(Output::Line),
        Command::Remix(args) => remix::remix_cmd(args).map(Output::Line),
        Command::Score(args) => score::score_cmd(args).map(Output::Line),
        Command::Report(args) => report::report_cmd(&args).map(Output::Line),
        Command::Sweep(args) => sweep::sweep_cmd(args).map(Output::Line),
        Command::Dag {
            config,
            binary,
            dag_id,
            overrides,
            retries,
            retry_delay_s,
            pool,
            dedup_workers,
            ..
        } => {
            let cfg = config::load(&config, &overrides)?;
            let opts = dag::AirflowOptions {
                binary,
                dag_id,
                overrides,
                retries,
                retry_delay_s,
                pool,
                dedup_workers,
            };
            dag::airflow(&cfg, &config, &opts).map(Output::Text)
        }
        Command::Tokenizer {
            action: TokenizerAction::Train(args),
        } => tokens::train_cmd(args).map(Output::Line),
        Command::Tokenizer { action } => tokens::tokenizer_cmd(action).map(Output::Text),
        Command::Tokenize(args) => tokens::tokenize_cmd(args).map(Output::Line),
        Command::Train(args) => training::model_train_cmd(args).map(Output::Line),
        Command::Export(args) => export::export_cmd(&args).map(Output::Line),
        Command::Generate(args) => export::generate_cmd(&args).map(Output::Line),
        Command::Worker(args) => worker::worker_cmd(&args).map(Output::Text),
        Command::Ledger { run_dir, json } => {
            let ledger = dag::ledger(&run_dir)?;
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
            config::settle_run_dir(&mut cfg);
            Ok(cfg)
        }
        (None, None) => anyhow::bail!(UsageError(format!("give --config FILE, or --run DIR{hint}"))),
    }
}

/// Runs every step of the DAG up to `until` on this machine, then checks the ledger.
fn run_all(cfg: &Resolved, common: &Common, until: Option<&str>) -> Result<serde_json::Value> {
    config::save(cfg)?;
    let mut ctx = dag::Ctx {
        cfg,
        common,
        shards: all_shards(cfg.shards)?,
        of: cfg.shards,
        report: dag::Report::default(),
    };
    let last = dag::stages().last().copied().unwrap_or("train");
    dag::run_all(&mut ctx, until.unwrap_or(last))?;
    let ledger = dag::ledger(&cfg.run_dir)?;
    eprint!("{}", ledger.table());
    if !ledger.balanced() {
        anyhow::bail!(
            "ledger of {} does not balance (see the table above)",
            cfg.run_dir.display()
        );
    }
    eprintln!("outputs: {}", display(&cfg.run_dir));
    let mut report = ctx.report;
    let mut keys = Vec::new();
    for k in [
        "dedup_curve",
        "quality_threshold",
        "remix",
        "tokens",
        "score",
        "train",
        "sweep",
        "report",
    ] {
        keys.push((k, report.extra.remove(k).unwrap_or_default()));
    }
    let mut line = report.line(&cfg.run_dir, &[("ledger", "balanced".into())]);
    if let Some(m) = line.as_object_mut() {
        m.extend(keys.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
    Ok(line)
}

fn threads(common: &Common) -> usize {
    threads_or_all(common.threads)
}

/// `--threads N`, or every core when it is not given.
fn threads_or_all(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

fn all_shards(of: usize) -> Result<Vec<ShardId>> {
    (0..of).map(|i| ShardId::new(i, of).map_err(Into::into)).collect()
}

fn display(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_owned())
        .display()
        .to_string()
}
