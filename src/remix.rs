//! The remix steps (`remix_assign`, `remix_plan`, `remix`) and the `loam remix` subcommand.
use anyhow::{Context, Result};
use loam_pipeline::remix::apply::Apply;
use loam_pipeline::remix::assign::AssignStep;
use loam_pipeline::remix::plan::{run_plan, PlanOutcome};
use loam_pipeline::stage::for_each_shard_parallel;

use crate::config::{self, UsageError};
use crate::dag::Ctx;
use crate::RemixArgs;

fn assign_step(ctx: &Ctx<'_>) -> Result<AssignStep> {
    let cfg = ctx.cfg;
    AssignStep::new(&cfg.run_dir, &cfg.remix, cfg.seed)
        .with_context(|| format!("remix reading {}", cfg.run_dir.join(&cfg.remix.upstream).display()))
}

pub fn remix_train_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let cfg = ctx.cfg;
    let Some(topic) = &cfg.remix.classifier else {
        return Ok(());
    };
    let (card, trained) = loam_pipeline::remix::topic::run_train(&cfg.run_dir, topic, cfg.seed, ctx.common.force)
        .context("remix topic classifier")?;
    eprintln!(
        "remix topic classifier ({} labels){}: held-out accuracy {:.3}, macro F1 {:.3}, {:.1}% of held-out documents at or above min_score {}",
        card.labels.len(),
        if trained { "" } else { " (already committed)" },
        card.heldout_accuracy,
        card.macro_f1,
        100.0 * card.heldout_coverage,
        card.min_score
    );
    for l in &card.labels {
        eprintln!(
            "  {:<16} train {:>6}  held out {:>6}  precision {:.3}  recall {:.3}  F1 {:.3}",
            l.label, l.train_docs, l.heldout_docs, l.precision, l.recall, l.f1
        );
    }
    ctx.report.set("remix_classifier", &card);
    Ok(())
}

pub fn remix_assign_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let (parallel, _) = ctx.threads();
    let s = assign_step(ctx)?;
    let force = ctx.common.force;
    let (done, secs) = for_each_shard_parallel(&ctx.shards, parallel, |shard| s.run(shard, force))
        .with_context(|| format!("remix domains into {}", s.dir().display()))?;
    eprintln!(
        "remix domains: {done} shards assigned, {} already committed ({secs:.1} s)",
        ctx.shards.len() - done
    );
    Ok(())
}

pub fn remix_plan_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let s = assign_step(ctx)?;
    let cfg = ctx.cfg;
    let out = run_plan(&cfg.run_dir, &s, &cfg.remix, ctx.of, ctx.common.force).context("remix plan step")?;
    let plan = out.plan();
    eprint!(
        "{}{}",
        plan.table(),
        if matches!(out, PlanOutcome::AlreadyDone(_)) {
            "(plan already committed)\n"
        } else {
            ""
        }
    );
    for w in &plan.warnings {
        eprintln!("warning: remix: {w}");
    }
    ctx.report.set(
        "remix",
        serde_json::json!({
            "l1_target_achieved": plan.l1_target_achieved, "rows_out": plan.rows_out,
            "docs_in": plan.docs_in, "unique_fraction_out": plan.unique_fraction_out,
            "plan": config::normalize(&loam_pipeline::remix::RemixPaths::new(&cfg.run_dir).plan_report()),
        }),
    );
    Ok(())
}

pub fn remix_apply_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let cfg = ctx.cfg;
    let (parallel, _) = ctx.threads();
    let stage = Apply::new(&cfg.run_dir, assign_step(ctx)?, &cfg.remix, cfg.seed, ctx.of)?;
    ctx.run_stage(&stage, stage.fingerprint(), parallel)
}

pub fn remix_cmd(args: RemixArgs) -> Result<serde_json::Value> {
    let cfg = config::load(&args.config, &args.common.overrides)?;
    if !cfg.remix_enabled() {
        anyhow::bail!(UsageError(format!(
            "{}: remix is off (no [remix] section, or remix.enabled = false); add [remix] with a [remix.target]",
            args.config.display()
        )));
    }
    if args.phase == "train" && !cfg.remix.uses_classifier() {
        anyhow::bail!(UsageError(format!(
            "{}: --phase train trains the topic classifier, but remix.assign does not name \"classifier\" (or [remix.classifier] is missing)",
            args.config.display()
        )));
    }
    if args.split.shard.is_some() && !matches!(args.phase.as_str(), "assign" | "apply") {
        anyhow::bail!(UsageError(
            "--shard runs one task of a fanned-out step: add --phase assign or --phase apply".into()
        ));
    }
    config::save(&cfg)?;
    let steps: &[&str] = match args.phase.as_str() {
        "train" => &["remix_train"],
        "assign" => &["remix_assign"],
        "plan" => &["remix_plan"],
        "apply" => &["remix"],
        _ if cfg.remix.uses_classifier() => &["remix_train", "remix_assign", "remix_plan", "remix"],
        _ => &["remix_assign", "remix_plan", "remix"],
    };
    Ctx::new(&cfg, &args.common, &args.split)?.run(steps)
}
