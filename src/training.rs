//! The `train` subcommand: the model trained on the run's token shards, with progress on
//! stderr and a summary line.
use anyhow::{Context, Result};

use crate::config::{self, UsageError};
use crate::dag::Ctx;
use crate::{step_config, ModelTrainArgs, Resolved};

/// The DAG's `train` step: always resumes, so a killed run continues from its last
/// checkpoint and a finished one is a no-op.
pub fn train_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let s = train(ctx.cfg, true)?;
    ctx.report.set("train", s);
    Ok(())
}

fn train(cfg: &Resolved, resume: bool) -> Result<loam_train::TrainSummary> {
    use std::io::IsTerminal;
    let ledger = crate::dag::ledger(&cfg.run_dir)?;
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

pub fn model_train_cmd(args: ModelTrainArgs) -> Result<serde_json::Value> {
    let cfg = step_config(
        args.config.as_deref(),
        args.run.as_deref(),
        &args.common.overrides,
        1,
        " (see loam train --help)",
        |cfg| {
            cfg.train = config::section_overrides("train", &args.common.overrides)?;
            Ok(())
        },
    )?;
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let s = train(&cfg, args.resume)?;
    Ok(serde_json::json!({"ok": true, "run_dir": cfg.run_dir, "train": s}))
}
