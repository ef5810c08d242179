//! The quality steps (`quality_train`, `quality_score`, `quality_threshold`, `quality`)
//! and the `loam quality` subcommand.
use anyhow::{Context, Result};
use loam_pipeline::quality::apply::Apply;
use loam_pipeline::quality::score::{run_threshold, Scorer, ThresholdOutcome};
use loam_pipeline::quality::train::{run_train, ModelCard, TrainOutcome};
use loam_pipeline::quality::QualityPaths;
use loam_pipeline::stage::for_each_shard_parallel;

use crate::config::{self, UsageError};
use crate::dag::Ctx;
use crate::{QualityArgs, QualityTrainArgs};

fn card_line(c: &ModelCard) -> String {
    let h = c.heldout.as_ref();
    format!(
        "quality model {} ({}): trained on {} hq + {} cc, held out {} + {}: ROC-AUC {}, at the F1-best threshold {} precision {} recall {}",
        c.language,
        c.model,
        c.train_examples.hq,
        c.train_examples.cc,
        c.heldout_examples.hq,
        c.heldout_examples.cc,
        h.map_or("-".into(), |h| format!("{:.4}", h.roc_auc)),
        h.map_or("-".into(), |h| format!("{:.3}", h.best_f1.threshold)),
        h.map_or("-".into(), |h| format!("{:.3}", h.best_f1.precision)),
        h.map_or("-".into(), |h| format!("{:.3}", h.best_f1.recall)),
    )
}

pub fn quality_train_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let cfg = ctx.cfg;
    let out = run_train(&cfg.run_dir, &cfg.quality, cfg.seed, ctx.common.force)
        .with_context(|| format!("quality train in {}", QualityPaths::new(&cfg.run_dir).model.display()))?;
    for c in out.cards() {
        eprintln!(
            "{}{}",
            card_line(c),
            if matches!(out, TrainOutcome::AlreadyDone(_)) {
                " (already committed)"
            } else {
                ""
            }
        );
    }
    ctx.report.set("quality_models", out.cards());
    Ok(())
}

fn scorer(ctx: &Ctx<'_>, threads: usize) -> Result<Scorer> {
    let cfg = ctx.cfg;
    Scorer::new(&cfg.run_dir, &cfg.quality, cfg.seed, threads)
        .with_context(|| format!("quality reading {}", cfg.run_dir.join(&cfg.quality.upstream).display()))
}

pub fn quality_score_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let (parallel, per_shard) = ctx.threads();
    let s = scorer(ctx, per_shard)?;
    let force = ctx.common.force;
    let (done, secs) = for_each_shard_parallel(&ctx.shards, parallel, |shard| s.run(shard, force))
        .with_context(|| format!("quality scores into {}", s.dir().display()))?;
    eprintln!(
        "quality scores: {done} shards scored, {} already committed ({secs:.1} s)",
        ctx.shards.len() - done
    );
    Ok(())
}

pub fn quality_threshold_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let s = scorer(ctx, 1)?;
    let out = run_threshold(&s, ctx.of, ctx.common.force).context("quality threshold step")?;
    let t = out.threshold();
    for m in &t.models {
        eprintln!(
            "quality threshold ({:?}) for model {}: {} of {} scored documents kept{}{}",
            t.rule,
            m.language,
            m.keep,
            m.scored,
            m.threshold_score
                .map_or(String::new(), |s| format!(", lowest kept score {s:.4}")),
            if matches!(out, ThresholdOutcome::AlreadyDone(_)) {
                " (already committed)"
            } else {
                ""
            }
        );
    }
    if t.unscored > 0 {
        eprintln!(
            "quality: {} documents in languages without a model pass through",
            t.unscored
        );
    }
    ctx.report.set("quality_threshold", t);
    Ok(())
}

pub fn quality_apply_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let cfg = ctx.cfg;
    let (parallel, per_shard) = ctx.threads();
    let stage = Apply::new(&cfg.run_dir, scorer(ctx, per_shard)?, &cfg.quality, cfg.seed, ctx.of)?;
    ctx.run_stage(&stage, stage.fingerprint(), parallel)
}

fn quality_config(config: Option<&std::path::Path>, run: bool, overrides: &[String]) -> Result<config::Resolved> {
    let Some(c) = config else {
        anyhow::bail!(UsageError(format!(
            "loam quality needs --config FILE: its models and their sources live in the config{}",
            if run { " (--run DIR alone cannot name them)" } else { "" }
        )));
    };
    let cfg = config::load(c, overrides)?;
    if !cfg.quality_enabled() {
        anyhow::bail!(UsageError(format!(
            "{}: quality is off (no [[quality.models]], or quality.enabled = false); add a model with its positives and negatives",
            c.display()
        )));
    }
    config::save(&cfg)?;
    Ok(cfg)
}

pub fn quality_train_cmd(args: QualityTrainArgs) -> Result<serde_json::Value> {
    let cfg = quality_config(args.config.as_deref(), args.run.is_some(), &args.common.overrides)?;
    Ctx::new(&cfg, &args.common, &crate::Split::default())?.run(&["quality_train"])
}

pub fn quality_cmd(args: QualityArgs) -> Result<serde_json::Value> {
    let cfg = quality_config(args.config.as_deref(), args.run.is_some(), &args.common.overrides)?;
    if args.split.shard.is_some() && !matches!(args.phase.as_str(), "score" | "apply") {
        anyhow::bail!(UsageError(
            "--shard runs one task of a fanned-out step: add --phase score or --phase apply".into()
        ));
    }
    let steps: &[&str] = match args.phase.as_str() {
        "score" => &["quality_score"],
        "threshold" => &["quality_threshold"],
        "apply" => &["quality"],
        _ => &["quality_train", "quality_score", "quality_threshold", "quality"],
    };
    Ctx::new(&cfg, &args.common, &args.split)?.run(steps)
}
