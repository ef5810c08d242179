//! The `tokenizer` and `tokenize` subcommands: training (or adopting) the run's tokenizer,
//! encoding by hand, and encoding the corpus into token shards.
use anyhow::{Context, Result};
use loam_pipeline::tokens::{
    run_tokenizer, write_summary, Tokenize, TokenizeSummary, TokenizerConfig, TokenizerOutcome,
};

use crate::config::{self, Resolved};
use crate::corpus::run_one;
use crate::dag::Ctx;
use crate::{step_config, threads, Common, TokenizeArgs, TokenizerAction, TrainArgs};

pub fn tokenizer_cmd(action: TokenizerAction) -> Result<String> {
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

/// The DAG's `tokenizer` step (one task).
pub fn tokenizer_step(ctx: &mut Ctx<'_>) -> Result<()> {
    train_tokenizer(ctx.cfg, ctx.common).map(|_| ())
}

fn train_tokenizer(cfg: &Resolved, common: &Common) -> Result<TokenizerOutcome> {
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

pub fn train_cmd(args: TrainArgs) -> Result<serde_json::Value> {
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
    let hint = ", or --input FILE... --out DIR (see loam tokenizer train --help)";
    let cfg = step_config(
        args.config.as_deref(),
        args.run.as_deref(),
        &args.common.overrides,
        1,
        hint,
        |cfg| {
            cfg.tokenizer = config::section_overrides("tokenizer", &args.common.overrides)?;
            Ok(())
        },
    )?;
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let out = train_tokenizer(&cfg, &args.common)?;
    Ok(serde_json::json!({"ok": true, "run_dir": cfg.run_dir, "tokenizer": out.meta()}))
}

/// The DAG's `tokenize` step (per shard); once every shard is committed, the summary.
pub fn tokenize_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let cfg = ctx.cfg;
    let (parallel, per_shard) = ctx.threads();
    let stage = Tokenize::new(&cfg.run_dir, &cfg.tokenizer.upstream, cfg.tokenize.clone(), per_shard)?;
    ctx.run_stage(&stage, stage.fingerprint(), parallel)?;
    let summary = token_summary(cfg)?;
    ctx.report.set("tokens", summary.map(|s| s.total));
    Ok(())
}

/// Writes `tokenize/summary.json` once every shard is committed; `None` before that.
pub fn token_summary(cfg: &Resolved) -> Result<Option<TokenizeSummary>> {
    let ledger = crate::dag::ledger(&cfg.run_dir)?;
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

pub fn tokenize_cmd(args: TokenizeArgs) -> Result<serde_json::Value> {
    let of = args.split.of.unwrap_or(1);
    let cfg = step_config(
        args.config.as_deref(),
        args.run.as_deref(),
        &args.common.overrides,
        of,
        " (see loam tokenize --help)",
        |cfg| {
            cfg.tokenize = config::section_overrides("tokenize", &args.common.overrides)?;
            Ok(())
        },
    )?;
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    run_one("tokenize", &cfg, &args.common, &args.split)
}
