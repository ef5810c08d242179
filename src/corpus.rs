//! The document stages before quality: `ingest`, `filter` and the three steps of `dedup`
//! (their DAG steps and their subcommands).
use anyhow::{Context, Result};
use loam_pipeline::dedup::apply::Apply;
use loam_pipeline::dedup::cluster::{read_summary, ClusterOutcome};
use loam_pipeline::dedup::{run_signatures, IndexPaths, Signatures};
use loam_pipeline::filter::Filter;
use loam_pipeline::ingest::Ingest;

use crate::config::{self, UsageError};
use crate::dag::{self, Ctx};
use crate::{step_config, DedupArgs, FilterArgs, IngestArgs};

pub fn ingest_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let (parallel, per_shard) = ctx.threads();
    let stage = Ingest::new(ctx.cfg.inputs.clone(), ctx.cfg.ingest.clone(), per_shard)?;
    ctx.run_stage(&stage, &stage.fingerprint(), parallel)
}

pub fn ingest_cmd(args: IngestArgs) -> Result<serde_json::Value> {
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
    config::save(&cfg)?;
    run_one("ingest", &cfg, &args.common, &args.split)
}

pub fn filter_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let (parallel, per_shard) = ctx.threads();
    let stage = Filter::new(&ctx.cfg.run_dir.join("ingest"), ctx.cfg.filter.clone(), per_shard)?;
    ctx.run_stage(&stage, stage.fingerprint(), parallel)
}

pub fn filter_cmd(args: FilterArgs) -> Result<serde_json::Value> {
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
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    run_one("filter", &cfg, &args.common, &args.split)
}

/// Runs one DAG step as a subcommand: for `--shard i` alone, or for every shard.
pub fn run_one(
    step: &str,
    cfg: &config::Resolved,
    common: &crate::Common,
    split: &crate::Split,
) -> Result<serde_json::Value> {
    Ctx::new(cfg, common, split)?.run(&[step])
}

fn signatures(ctx: &Ctx<'_>, per_shard: usize) -> Result<Signatures> {
    let upstream = ctx.cfg.run_dir.join(&ctx.cfg.dedup.upstream);
    Signatures::new(&upstream, ctx.cfg.dedup.clone(), per_shard)
        .with_context(|| format!("dedup reading {}", upstream.display()))
}

pub fn dedup_signatures_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let (parallel, per_shard) = ctx.threads();
    let sig = signatures(ctx, per_shard)?;
    let dir = ctx.cfg.run_dir.join("dedup");
    let (done, secs) = run_signatures(&sig, &dir, &ctx.shards, ctx.common.force, parallel)
        .with_context(|| format!("dedup signatures into {}", dir.display()))?;
    eprintln!(
        "dedup signatures: {done} shards computed, {} already committed ({secs:.1} s)",
        ctx.shards.len() - done
    );
    Ok(())
}

pub fn dedup_cluster_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let sig = signatures(ctx, 1)?;
    let dir = ctx.cfg.run_dir.join("dedup");
    let out = crate::worker::run_cluster(&dir, &ctx.cfg.dedup, sig.fingerprint(), ctx.of, ctx.common.force)
        .with_context(|| format!("dedup cluster step in {}", dir.display()))?;
    let s = out.summary();
    eprintln!(
        "dedup cluster: {} documents ({} from earlier indexes), {} exact + {} near duplicates, {} recurring lines{}",
        s.documents,
        s.documents_from_previous_index,
        s.exact_duplicate,
        s.near_duplicate,
        s.recurring_lines,
        if matches!(out, ClusterOutcome::AlreadyDone(_)) {
            " (already committed)"
        } else {
            ""
        }
    );
    eprint!("{}", s.curve_table());
    ctx.report.set("dedup_curve", &s.curve);
    Ok(())
}

pub fn dedup_apply_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let (parallel, per_shard) = ctx.threads();
    let sig = signatures(ctx, per_shard)?;
    let dir = ctx.cfg.run_dir.join("dedup");
    let stage = Apply::new(&dir, sig, ctx.cfg.dedup.clone())?;
    ctx.run_stage(&stage, stage.fingerprint(), parallel)?;
    if !ctx.report.extra.contains_key("dedup_curve") {
        if let Ok(s) = read_summary(&IndexPaths::new(&dir).cluster) {
            ctx.report.set("dedup_curve", &s.curve);
        }
    }
    Ok(())
}

pub fn dedup_cmd(args: DedupArgs) -> Result<serde_json::Value> {
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
    if args.config.is_some() {
        config::save(&cfg)?;
    }
    let mut ctx = Ctx::new(&cfg, &args.common, &args.split)?;
    let steps: &[&str] = match args.phase.as_str() {
        "signatures" => &["dedup_signatures"],
        "cluster" => &["dedup_cluster"],
        "apply" => &["dedup"],
        _ => &["dedup_signatures", "dedup_cluster", "dedup"],
    };
    for s in steps {
        dag::run_step(s, &mut ctx)?;
    }
    let curve = ctx.report.extra.remove("dedup_curve").unwrap_or_default();
    Ok(ctx.report.line(&cfg.run_dir, &[("dedup_curve", curve)]))
}
