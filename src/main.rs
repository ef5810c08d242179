//! `loam`: the command line over loam's pipeline. Each subcommand is one DAG step (stage
//! name = subcommand = output folder), `run` runs every step in order, `ledger` checks a
//! run's books. Logs and progress go to stderr; stdout carries one JSON result line.
//!
//! Exit codes: 0 done; 1 failed (bad input file, I/O, unbalanced ledger); 2 bad usage or
//! configuration.
mod config;
mod dag;
mod runner;

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
use loam_pipeline::tokens::{
    run_tokenizer, write_summary, Tokenize, TokenizeSummary, TokenizerConfig, TokenizerOutcome,
};
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
        } => train_cmd(args).map(Output::Line),
        Command::Tokenizer { action } => tokenizer_cmd(action).map(Output::Text),
        Command::Tokenize(args) => tokenize_cmd(args).map(Output::Line),
        Command::Train(args) => model_train_cmd(args).map(Output::Line),
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

fn tokenizer_cmd(action: TokenizerAction) -> Result<String> {
    use std::io::Read;
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).context("reading stdin")?;
    let input = String::from_utf8(input).context("stdin is not UTF-8 text")?;
    match action {
        TokenizerAction::Encode { tokenizer } => {
            let tok = loam_tokenize::Tokenizer::load(&tokenizer)?;
            let ids = tok.encode(&input)?;
            Ok(serde_json::to_string(&ids)? + "\n")
        }
        TokenizerAction::Decode { tokenizer } => {
            let tok = loam_tokenize::Tokenizer::load(&tokenizer)?;
            let ids: Vec<u32> = serde_json::from_str(&input)
                .context("stdin is not a JSON array of token ids, e.g. [100000, 17464, 0]")?;
            Ok(tok.decode(&ids)?)
        }
        TokenizerAction::Train(_) => anyhow::bail!("internal: train is dispatched apart"),
    }
}

fn tokenizer_step(cfg: &Resolved, common: &Common) -> Result<TokenizerOutcome> {
    loam_tokenize::set_parallel(threads(common) > 1);
    let out = run_tokenizer(&cfg.run_dir, &cfg.tokenizer, cfg.seed, common.force)
        .with_context(|| format!("tokenizer step in {}", cfg.run_dir.join("tokenizer").display()))?;
    let m = out.meta();
    eprintln!(
        "tokenizer: {} ({} ids, embedding padded to {}; {} merges from {} documents, {:.1} MB){}",
        m.source,
        m.vocab_size,
        m.padded_vocab_size,
        m.merges.unwrap_or(0),
        m.sample_docs,
        m.sample_bytes as f64 / 1e6,
        if matches!(out, TokenizerOutcome::AlreadyDone(_)) {
            " (already committed)"
        } else {
            ""
        }
    );
    Ok(out)
}

fn train_cmd(args: TrainArgs) -> Result<serde_json::Value> {
    if let (Some(out), false) = (&args.out, args.input.is_empty()) {
        // Standalone: text files in, a tokenizer folder out; no run directory.
        let cfg: TokenizerConfig = config::section_overrides("tokenizer", &args.common.overrides)?;
        loam_tokenize::set_parallel(threads(&args.common) > 1);
        let started = std::time::Instant::now();
        let trained = loam_tokenize::train::train_from_files(&cfg.bpe, &args.input)?;
        let secs = started.elapsed().as_secs_f64();
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        loam_pipeline::stage::write_atomic(&out.join("tokenizer.json"), trained.tokenizer_json.as_bytes())?;
        loam_pipeline::stage::write_atomic(
            &out.join("tokenizer_config.json"),
            trained.tokenizer_config_json.as_bytes(),
        )?;
        return Ok(serde_json::json!({
            "ok": true, "out": out, "vocab_size": trained.vocab_size, "merges": trained.merges,
            "padded_vocab_size": trained.padded_vocab_size, "eos_id": trained.eos_id, "seconds": secs,
        }));
    }
    let cfg = match (&args.config, &args.run) {
        (Some(c), _) => config::load(c, &args.common.overrides)?,
        (None, Some(run)) => {
            let mut cfg = config::for_run_dir(run, 1);
            cfg.tokenizer = config::section_overrides("tokenizer", &args.common.overrides)?;
            cfg
        }
        (None, None) => anyhow::bail!(UsageError(
            "give --config FILE, --run DIR, or --input FILE... --out DIR (see loam tokenizer train --help)".into()
        )),
    };
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let out = tokenizer_step(&cfg, &args.common)?;
    Ok(serde_json::json!({"ok": true, "run_dir": cfg.run_dir, "tokenizer": out.meta()}))
}

fn tokenize_step(cfg: &Resolved, shards: &[ShardId], common: &Common) -> Result<StageSummary> {
    let (parallel, per_shard) = split_threads(threads(common), shards.len());
    let stage = Tokenize::new(&cfg.run_dir, &cfg.tokenizer.upstream, cfg.tokenize.clone(), per_shard)?;
    let dir = cfg.run_dir.join("tokenize");
    run_stage(&stage, &dir, shards, stage.fingerprint(), common.force, parallel)
        .with_context(|| format!("tokenize into {}", dir.display()))
}

/// Writes `tokenize/summary.json` once every shard is committed; `None` before that.
fn token_summary(cfg: &Resolved) -> Result<Option<TokenizeSummary>> {
    let ledger = loam_pipeline::ledger::read_ledger(&cfg.run_dir)?;
    let complete = ledger
        .stages
        .iter()
        .any(|s| s.stage == "tokenize" && s.shards_committed == s.of && s.of > 0);
    if !complete {
        return Ok(None);
    }
    let s = write_summary(&cfg.run_dir)?;
    eprintln!(
        "tokenize: {} tokens in {} documents ({:.1} tokens/document, {:.2} bytes/token) -> {}",
        s.total.tokens,
        s.total.docs,
        s.total.tokens_per_doc,
        s.total.bytes_per_token,
        cfg.run_dir.join("tokenize").display()
    );
    Ok(Some(s))
}

fn train_step(cfg: &Resolved, resume: bool) -> Result<loam_train::TrainSummary> {
    use std::io::IsTerminal;
    let ledger = loam_pipeline::ledger::read_ledger(&cfg.run_dir)?;
    if !ledger
        .stages
        .iter()
        .any(|s| s.stage == "tokenize" && s.shards_committed == s.of && s.of > 0)
    {
        anyhow::bail!(UsageError(format!(
            "train reads {}, but not every tokenize shard is committed; run `loam tokenize` first (loam run does it in order)",
            cfg.run_dir.join("tokenize").display()
        )));
    }
    let out = cfg.run_dir.join("train");
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("   train [{bar:30}] {pos}/{len} steps {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let progress = |m: &loam_train::StepMetrics, total: u64| {
        let val = m
            .val_bpb
            .map(|b| format!(", val {:.3} bits/byte", b))
            .unwrap_or_default();
        match &bar {
            Some(b) => {
                b.set_length(total);
                b.set_position(m.step + 1);
                b.set_message(format!("loss {:.3}, {:.0} tok/s{val}", m.loss, m.tokens_per_s));
            }
            None => {
                if m.val_loss.is_some() || (m.step + 1).is_multiple_of((total / 10).max(1)) {
                    eprintln!(
                        "{}",
                        serde_json::json!({"event": "train_step", "step": m.step + 1, "of": total,
                        "loss": m.loss, "lr": m.lr, "grad_norm": m.grad_norm, "tokens_per_s": m.tokens_per_s,
                        "val_loss": m.val_loss, "val_bpb": m.val_bpb})
                    );
                }
            }
        }
    };
    let device = Default::default();
    let s = loam_train::train::<loam_train::DefaultBackend>(
        &cfg.train,
        &cfg.run_dir.join("tokenize"),
        &out,
        resume,
        &device,
        progress,
    )
    .map_err(|e| match e {
        loam_train::TrainError::Config(m) => anyhow::Error::new(UsageError(m)),
        other => anyhow::Error::new(other),
    })
    .with_context(|| format!("training into {}", out.display()))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    eprintln!(
        "train: {} steps, {} tokens, loss {:.3}, validation loss {}, {} bits/byte; {} params ({} non-embedding), M = {:.3e} FLOPs/token, C = M·D = {:.3e} -> {}",
        s.steps,
        s.tokens,
        s.final_loss,
        s.val_loss.map_or("-".into(), |v| format!("{v:.3}")),
        s.val_bpb.map_or("-".into(), |v| format!("{v:.3}")),
        s.params,
        s.non_embedding_params,
        s.m,
        s.compute,
        out.display()
    );
    Ok(s)
}

fn model_train_cmd(args: ModelTrainArgs) -> Result<serde_json::Value> {
    let cfg = match (&args.config, &args.run) {
        (Some(c), _) => config::load(c, &args.common.overrides)?,
        (None, Some(run)) => {
            let mut cfg = config::for_run_dir(run, 1);
            cfg.train = config::section_overrides("train", &args.common.overrides)?;
            cfg
        }
        (None, None) => anyhow::bail!(UsageError(
            "give --config FILE, or --run DIR (see loam train --help)".into()
        )),
    };
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let s = train_step(&cfg, args.resume)?;
    Ok(serde_json::json!({"ok": true, "run_dir": cfg.run_dir, "train": s}))
}

fn tokenize_cmd(args: TokenizeArgs) -> Result<serde_json::Value> {
    let cfg = match (&args.config, &args.run) {
        (Some(c), _) => config::load(c, &args.common.overrides)?,
        (None, Some(run)) => {
            let mut cfg = config::for_run_dir(run, args.split.of.unwrap_or(1));
            cfg.tokenize = config::section_overrides("tokenize", &args.common.overrides)?;
            cfg
        }
        (None, None) => anyhow::bail!(UsageError(
            "give --config FILE, or --run DIR (see loam tokenize --help)".into()
        )),
    };
    let shards = args.split.shards(cfg.shards)?;
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let sum = tokenize_step(&cfg, &shards, &args.common)?;
    let summary = token_summary(&cfg)?;
    Ok(serde_json::json!({"ok": true, "run_dir": cfg.run_dir, "stages": [sum], "tokens": summary.map(|s| s.total)}))
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
    let cfg = match (&args.config, &args.run) {
        (Some(c), _) => config::load(c, &args.common.overrides)?,
        (None, Some(run)) => {
            let mut cfg = config::for_run_dir(run, args.split.of.unwrap_or(1));
            if let Some(m) = &args.lid_model {
                cfg.filter.lid_model = m.clone();
            }
            cfg
        }
        (None, None) => anyhow::bail!(UsageError(
            "give --config FILE, or --run DIR (see loam filter --help)".into()
        )),
    };
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
    let cfg = match (&args.config, &args.run) {
        (Some(c), _) => config::load(c, &args.common.overrides)?,
        (None, Some(run)) => {
            let mut cfg = config::for_run_dir(run, args.split.of.unwrap_or(1));
            cfg.dedup = config::dedup_overrides(&args.common.overrides)?;
            cfg
        }
        (None, None) => anyhow::bail!(UsageError(
            "give --config FILE, or --run DIR (see loam dedup --help)".into()
        )),
    };
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
        tokenizer_step(cfg, common)?;
    }
    let mut tokens = None;
    if wanted("tokenize") {
        let sum = tokenize_step(cfg, &shards, common)?;
        eprintln!("{sum}");
        stages.push(sum);
        tokens = token_summary(cfg)?.map(|s| s.total);
    }
    // Resumes a killed run's training from its last checkpoint; a finished one is a no-op.
    let trained = if wanted("train") {
        Some(train_step(cfg, true)?)
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
