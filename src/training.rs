//! The `train` subcommand: the model trained on the run's token shards, with progress on
//! stderr and a summary line.
use anyhow::{Context, Result};

use crate::config::{self, UsageError};
use crate::dag::Ctx;
use crate::{step_config, ModelTrainArgs, Resolved};

/// The DAG's `train` step: always resumes, so a killed run continues from its last
/// checkpoint and a finished one is a no-op.
pub fn train_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let s = train(ctx.cfg, true, true)?;
    ctx.report.set("train", s);
    Ok(())
}

/// `train.from_score`: the shape, peak LR, batch and tokens of `score.json`'s first budget,
/// except where the config set a value; `train_provenance` records which won.
fn apply_score(cfg: &mut Resolved) -> Result<()> {
    let path = crate::score::score_path(&cfg.run_dir);
    let s: crate::score::ScoreFile = loam_pipeline::score::read_json(&path)?.ok_or_else(|| {
        UsageError(format!(
            "train.from_score = true reads {}, which is missing: run `loam score` first (loam run does it in order; it needs [[quality.models]])",
            path.display()
        ))
    })?;
    if s.schema != crate::score::SCORE_SCHEMA {
        anyhow::bail!(UsageError(format!(
            "{}: schema {:?}, this loam reads {:?}; rerun `loam score --force`",
            path.display(),
            s.schema,
            crate::score::SCORE_SCHEMA
        )));
    }
    let p = s.train.clone();
    if p.seq_len != cfg.train.model.seq_len {
        anyhow::bail!(UsageError(format!(
            "{} was sized for l_seq {}, but train.model.seq_len is {}; rerun `loam score --force`",
            path.display(),
            p.seq_len,
            cfg.train.model.seq_len
        )));
    }
    let from = format!("score.json (C = {:.3e}, q = {:.3}, a = {:.4})", p.budget, s.q, s.a);
    let explicit = cfg.train_explicit.clone();
    let mut prov = std::collections::BTreeMap::new();
    let t = &mut cfg.train;
    let mut set = |key: &str, apply: &mut dyn FnMut()| {
        if explicit.iter().any(|k| k == &format!("train.{key}")) {
            prov.insert(key.to_owned(), "config".to_owned());
        } else {
            apply();
            prov.insert(key.to_owned(), from.clone());
        }
    };
    set("model.n_layer", &mut || t.model.n_layer = p.n_layer);
    set("model.d_model", &mut || t.model.d_model = p.d_model);
    set("model.n_heads", &mut || t.model.n_heads = p.n_heads);
    set("model.n_kv_heads", &mut || t.model.n_kv_heads = p.n_kv_heads);
    set("schedule.peak_lr", &mut || t.schedule.peak_lr = p.peak_lr);
    set("tokens", &mut || t.tokens = p.tokens);
    // The batch: micro-batches of at most 16 sequences, accumulated up to B_opt.
    let (micro_set, accum_set) = (
        explicit.iter().any(|k| k == "train.micro_batch"),
        explicit.iter().any(|k| k == "train.grad_accum"),
    );
    match (micro_set, accum_set) {
        (true, true) => {}
        (true, false) => t.grad_accum = p.batch_seqs.div_ceil(t.micro_batch.max(1)),
        (false, true) => t.micro_batch = p.batch_seqs.div_ceil(t.grad_accum.max(1)),
        (false, false) => {
            t.grad_accum = p.batch_seqs.div_ceil(16);
            t.micro_batch = p.batch_seqs.div_ceil(t.grad_accum);
        }
    }
    for (key, set) in [("micro_batch", micro_set), ("grad_accum", accum_set)] {
        prov.insert(
            key.to_owned(),
            if set {
                "config".to_owned()
            } else {
                format!("{from}: batch {} sequences", p.batch_seqs)
            },
        );
    }
    cfg.train_provenance = prov;
    Ok(())
}

fn train(cfg: &Resolved, resume: bool, save: bool) -> Result<loam_train::TrainSummary> {
    use std::io::IsTerminal;
    let mut owned;
    let cfg = if cfg.train.from_score {
        owned = cfg.clone();
        apply_score(&mut owned)?;
        if save {
            config::save(&owned)?;
        }
        eprintln!(
            "train: from score.json: {} layers × {} wide, {} heads / {} kv, peak LR {:.3e}, batch {} × {} sequences, {} tokens",
            owned.train.model.n_layer,
            owned.train.model.d_model,
            owned.train.model.n_heads,
            owned.train.model.n_kv_heads,
            owned.train.schedule.peak_lr,
            owned.train.micro_batch,
            owned.train.grad_accum,
            owned.train.tokens
        );
        &owned
    } else {
        cfg
    };
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
            for o in &args.common.overrides {
                if let Some((k, _)) = o.split_once('=') {
                    cfg.train_explicit.push(k.trim().to_owned());
                }
            }
            Ok(())
        },
    )?;
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let s = train(&cfg, args.resume, args.config.is_some())?;
    Ok(serde_json::json!({"ok": true, "run_dir": cfg.run_dir, "train": s}))
}
