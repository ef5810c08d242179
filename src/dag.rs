//! The DAG as data: one table of steps — name, stage, the `loam` command of one task,
//! fan-out over shards or one global task, the steps it reads from, whether the ledger
//! counts it, and the function that runs it. `loam run` (and `--until`), `loam dag
//! --format airflow` and `loam ledger` all read this table; a subcommand runs its step
//! through the same function. Adding a stage is one entry here plus its module.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use loam_pipeline::stage::ShardId;

use crate::config::{Resolved, UsageError};
use crate::runner::StageSummary;
use crate::{corpus, quality, remix, score, sweep, tokens, training, Common};

/// One step of the DAG.
pub struct Step {
    /// The task (group) id in a scheduler, and the step's name in logs.
    pub name: &'static str,
    /// The stage the step belongs to: its output folder, and what `--until` names.
    pub stage: &'static str,
    /// `loam` arguments of one task, before `--config`.
    pub command: &'static str,
    /// One task for the whole run, one per shard, or one per sweep slot.
    pub fan: Fan,
    /// A global task that must know the split (`--of n`), e.g. to write per-shard decisions.
    pub needs_split: bool,
    /// Steps whose every task must finish first (their committed output is this one's input).
    pub after: &'static [&'static str],
    /// The stage writes documents: the ledger counts its shards (in table order).
    pub ledger: bool,
    /// Whether the run's config includes the step (quality needs configured models).
    pub enabled: fn(&Resolved) -> bool,
    pub run: fn(&mut Ctx<'_>) -> Result<()>,
}

/// How many tasks a step is in a scheduler.
#[derive(Clone, Copy)]
pub enum Fan {
    One,
    /// One per shard: `--shard i --of n`.
    Shards,
    /// One per slot of the sweep's grid (`--slot i`; budgets × per_budget, known from the
    /// config before the plan exists; a slot with no model of its own is a no-op).
    Slots,
}

fn always(_: &Resolved) -> bool {
    true
}

fn quality_on(cfg: &Resolved) -> bool {
    cfg.quality_enabled()
}

fn remix_on(cfg: &Resolved) -> bool {
    cfg.remix_enabled()
}

fn sweep_on(cfg: &Resolved) -> bool {
    cfg.sweep.enabled && quality_on(cfg)
}

fn remix_classifier_on(cfg: &Resolved) -> bool {
    cfg.remix_enabled() && cfg.remix.uses_classifier()
}

/// What a step runs with: the run's config, the shards of this invocation, and the report
/// the steps of one `loam` call add to (its stdout result line).
pub struct Ctx<'a> {
    pub cfg: &'a Resolved,
    pub common: &'a Common,
    /// Shards this invocation runs (every shard under `loam run`).
    pub shards: Vec<ShardId>,
    /// The split: shards of the whole step.
    pub of: usize,
    pub report: Report,
}

impl<'a> Ctx<'a> {
    /// A context for the shards `split` names (every shard when it names none).
    pub fn new(cfg: &'a Resolved, common: &'a Common, split: &crate::Split) -> Result<Self> {
        Ok(Self {
            cfg,
            common,
            shards: split.shards(cfg.shards)?,
            of: split.of.unwrap_or(cfg.shards),
            report: Report::default(),
        })
    }

    /// Runs the named steps in turn; the result line of all of them.
    pub fn run(mut self, steps: &[&str]) -> Result<serde_json::Value> {
        for s in steps {
            run_step(s, &mut self)?;
        }
        Ok(self.report.line(&self.cfg.run_dir, &[]))
    }

    /// (shards run side by side, threads inside each shard).
    pub fn threads(&self) -> (usize, usize) {
        crate::runner::split_threads(crate::threads(self.common), self.shards.len())
    }

    /// Runs a document stage over this context's shards into `RUN/<stage name>` with
    /// `parallel` shards at once, and reports it.
    pub fn run_stage(
        &mut self,
        stage: &dyn loam_pipeline::stage::Stage,
        fingerprint: &str,
        parallel: usize,
    ) -> Result<()> {
        let dir = self.cfg.run_dir.join(stage.name());
        let sum = crate::runner::run_stage(stage, &dir, &self.shards, fingerprint, self.common.force, parallel)
            .with_context(|| format!("{} into {}", stage.name(), dir.display()))?;
        self.report.stage(sum);
        Ok(())
    }
}

/// What the steps of one invocation did, for the result line.
#[derive(Default)]
pub struct Report {
    pub stages: Vec<StageSummary>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Records a stage's summary (and says it on stderr).
    pub fn stage(&mut self, sum: StageSummary) {
        eprintln!("{sum}");
        self.stages.push(sum);
    }

    /// Sets a top-level key of the result line (`dedup_curve`, `tokens`, `train`, …).
    pub fn set(&mut self, key: &str, value: impl serde::Serialize) {
        self.extra
            .insert(key.to_owned(), serde_json::to_value(value).unwrap_or_default());
    }

    /// The result line: `ok`, `run_dir`, `stages`, then the keys steps set.
    pub fn line(self, run_dir: &Path, more: &[(&str, serde_json::Value)]) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("ok".into(), true.into());
        m.insert("run_dir".into(), serde_json::json!(run_dir));
        m.insert("stages".into(), serde_json::json!(self.stages));
        for (k, v) in more {
            m.insert((*k).to_owned(), v.clone());
        }
        m.extend(self.extra);
        serde_json::Value::Object(m)
    }
}

/// The steps, in the order `loam run` runs them. Dedup is three steps: signatures per
/// shard, one global cluster task, then apply per shard. The tokenizer is trained by one
/// task, and so is the model (`--resume`: a retried task continues from its checkpoint).
pub const STEPS: &[Step] = &[
    Step {
        name: "ingest",
        stage: "ingest",
        command: "ingest",
        fan: Fan::Shards,
        needs_split: false,
        after: &[],
        ledger: true,
        enabled: always,
        run: corpus::ingest_step,
    },
    Step {
        name: "filter",
        stage: "filter",
        command: "filter",
        fan: Fan::Shards,
        needs_split: false,
        after: &["ingest"],
        ledger: true,
        enabled: always,
        run: corpus::filter_step,
    },
    Step {
        name: "dedup_signatures",
        stage: "dedup",
        command: "dedup --phase signatures",
        fan: Fan::Shards,
        needs_split: false,
        after: &["filter"],
        ledger: false,
        enabled: always,
        run: corpus::dedup_signatures_step,
    },
    Step {
        name: "dedup_cluster",
        stage: "dedup",
        command: "dedup --phase cluster",
        fan: Fan::One,
        needs_split: true,
        after: &["dedup_signatures"],
        ledger: false,
        enabled: always,
        run: corpus::dedup_cluster_step,
    },
    Step {
        name: "dedup",
        stage: "dedup",
        command: "dedup --phase apply",
        fan: Fan::Shards,
        needs_split: false,
        after: &["dedup_cluster"],
        ledger: true,
        enabled: always,
        run: corpus::dedup_apply_step,
    },
    // Quality: one training task (its pool negatives come from the filter stage), scores
    // per shard, one global threshold task, then the keep rule per shard.
    Step {
        name: "quality_train",
        stage: "quality",
        command: "quality train",
        fan: Fan::One,
        needs_split: false,
        after: &["filter"],
        ledger: false,
        enabled: quality_on,
        run: quality::quality_train_step,
    },
    Step {
        name: "quality_score",
        stage: "quality",
        command: "quality --phase score",
        fan: Fan::Shards,
        needs_split: false,
        after: &["quality_train", "dedup"],
        ledger: false,
        enabled: quality_on,
        run: quality::quality_score_step,
    },
    Step {
        name: "quality_threshold",
        stage: "quality",
        command: "quality --phase threshold",
        fan: Fan::One,
        needs_split: true,
        after: &["quality_score"],
        ledger: false,
        enabled: quality_on,
        run: quality::quality_threshold_step,
    },
    Step {
        name: "quality",
        stage: "quality",
        command: "quality --phase apply",
        fan: Fan::Shards,
        needs_split: false,
        after: &["quality_threshold"],
        ledger: true,
        enabled: quality_on,
        run: quality::quality_apply_step,
    },
    // Remix: domains per shard, one global plan (rates, exact cuts, the achieved mixture),
    // then the copies per shard.
    Step {
        name: "remix_train",
        stage: "remix",
        command: "remix --phase train",
        fan: Fan::One,
        needs_split: false,
        after: &[],
        ledger: false,
        enabled: remix_classifier_on,
        run: remix::remix_train_step,
    },
    Step {
        name: "remix_assign",
        stage: "remix",
        command: "remix --phase assign",
        fan: Fan::Shards,
        needs_split: false,
        after: &["quality", "remix_train"],
        ledger: false,
        enabled: remix_on,
        run: remix::remix_assign_step,
    },
    Step {
        name: "remix_plan",
        stage: "remix",
        command: "remix --phase plan",
        fan: Fan::One,
        needs_split: true,
        after: &["remix_assign"],
        ledger: false,
        enabled: remix_on,
        run: remix::remix_plan_step,
    },
    Step {
        name: "remix",
        stage: "remix",
        command: "remix --phase apply",
        fan: Fan::Shards,
        needs_split: false,
        after: &["remix_plan"],
        ledger: true,
        enabled: remix_on,
        run: remix::remix_apply_step,
    },
    Step {
        name: "tokenizer",
        stage: "tokenizer",
        command: "tokenizer train",
        fan: Fan::One,
        needs_split: false,
        after: &["remix"],
        ledger: false,
        enabled: always,
        run: tokens::tokenizer_step,
    },
    Step {
        name: "tokenize",
        stage: "tokenize",
        command: "tokenize",
        fan: Fan::Shards,
        needs_split: false,
        after: &["tokenizer"],
        ledger: true,
        enabled: always,
        run: tokens::tokenize_step,
    },
    // One global task: q from the final corpus and the token counts, then the allocation
    // the trainer reads (`train.from_score`).
    Step {
        name: "score",
        stage: "score",
        command: "score",
        fan: Fan::One,
        needs_split: false,
        after: &["tokenize"],
        ledger: false,
        enabled: quality_on,
        run: score::score_step,
    },
    Step {
        name: "train",
        stage: "train",
        command: "train --resume",
        fan: Fan::One,
        needs_split: false,
        after: &["score"],
        ledger: false,
        enabled: always,
        run: training::train_step,
    },
    // The IsoFLOP sweep: one plan from score.json, one resumable training task per grid
    // slot, then the fit and the check of the score's prediction.
    Step {
        name: "sweep_plan",
        stage: "sweep",
        command: "sweep plan",
        fan: Fan::One,
        needs_split: false,
        after: &["score"],
        ledger: false,
        enabled: sweep_on,
        run: sweep::sweep_plan_step,
    },
    Step {
        name: "sweep_run",
        stage: "sweep",
        command: "sweep run",
        fan: Fan::Slots,
        needs_split: false,
        after: &["sweep_plan"],
        ledger: false,
        enabled: sweep_on,
        run: sweep::sweep_run_step,
    },
    Step {
        name: "sweep_fit",
        stage: "sweep",
        command: "sweep fit",
        fan: Fan::One,
        needs_split: false,
        after: &["sweep_run"],
        ledger: false,
        enabled: sweep_on,
        run: sweep::sweep_fit_step,
    },
    // Last: the dataset quality report, from whatever the steps above wrote.
    Step {
        name: REPORT_STEP,
        stage: "report",
        command: "report",
        fan: Fan::One,
        needs_split: false,
        after: &["train", "sweep_fit"],
        ledger: false,
        enabled: always,
        run: crate::report::report_step,
    },
];

/// The DAG's last step, which reads what every other step wrote.
const REPORT_STEP: &str = "report";

/// The step called `name`.
pub fn step(name: &str) -> Result<&'static Step> {
    STEPS
        .iter()
        .find(|s| s.name == name)
        .with_context(|| format!("internal: no DAG step {name}"))
}

/// Stage names in DAG order, each once (what `--until` accepts).
pub fn stages() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in STEPS {
        if !out.contains(&s.stage) {
            out.push(s.stage);
        }
    }
    out
}

/// Document stages in DAG order: the ledger's rows.
pub fn ledger_stages() -> Vec<&'static str> {
    STEPS.iter().filter(|s| s.ledger).map(|s| s.stage).collect()
}

/// Runs one step for `ctx`'s shards.
pub fn run_step(name: &str, ctx: &mut Ctx<'_>) -> Result<()> {
    (step(name)?.run)(ctx)
}

/// Runs every step in table order up to and including the last step of stage `until`.
pub fn run_all(ctx: &mut Ctx<'_>, until: &str) -> Result<()> {
    let order = stages();
    let Some(last) = order.iter().position(|s| *s == until) else {
        anyhow::bail!(UsageError(format!(
            "--until {until}: not a stage; use one of {}",
            order.join(", ")
        )));
    };
    for s in STEPS {
        if (s.enabled)(ctx.cfg) && order.iter().position(|x| *x == s.stage).is_some_and(|i| i <= last) {
            (s.run)(ctx).with_context(|| format!("step {}", s.name))?;
        }
    }
    Ok(())
}

/// The enabled steps `name` waits for: its `after` list, a disabled step replaced by the
/// steps that one waits for.
fn upstream_steps(name: &str, cfg: &Resolved) -> Vec<&'static str> {
    let mut out = Vec::new();
    let Ok(s) = step(name) else { return out };
    for up in s.after {
        match step(up) {
            Ok(u) if (u.enabled)(cfg) => out.push(u.name),
            Ok(u) => {
                for x in upstream_steps(u.name, cfg) {
                    if !out.contains(&x) {
                        out.push(x);
                    }
                }
            }
            Err(_) => {}
        }
    }
    out
}

/// Reads the run's ledger over the DAG's document stages.
pub fn ledger(run_dir: &Path) -> Result<loam_pipeline::ledger::Ledger> {
    Ok(loam_pipeline::ledger::read_ledger(run_dir, &ledger_stages())?)
}

fn py_str(s: &str) -> String {
    // JSON string literals are valid Python string literals.
    serde_json::Value::String(s.to_owned()).to_string()
}

/// How the exported DAG's tasks run on the workers.
pub struct AirflowOptions {
    /// The loam binary as the workers see it.
    pub binary: String,
    pub dag_id: Option<String>,
    /// `--set KEY=VALUE` overrides the DAG was made with: every task gets them too, so the
    /// tasks run the configuration the DAG's shape came from.
    pub overrides: Vec<String>,
    /// Tries after a failure (shard jobs are idempotent, so a retry is safe).
    pub retries: u32,
    pub retry_delay_s: u64,
    /// Airflow pool the tasks take slots from (size it to the workers' cores).
    pub pool: String,
    /// `loam worker` addresses the dedup cluster task runs on (`dedup.engine =
    /// "distributed"`); empty: the run's own dedup settings.
    pub dedup_workers: Vec<String>,
}

/// The `--set` flags that point the dedup cluster task at `workers` (none when empty),
/// checked as the task will check them.
fn dedup_cluster_sets(cfg: &Resolved, workers: &[String]) -> Result<String> {
    if workers.is_empty() {
        return Ok(String::new());
    }
    let mut dedup = cfg.dedup.clone();
    dedup.engine = loam_pipeline::dedup::Engine::Distributed;
    dedup.workers = workers.to_vec();
    dedup.in_process_workers = 0;
    dedup
        .validate()
        .map_err(|e| UsageError(format!("--dedup-workers: {e}")))?;
    let list: Vec<String> = workers.iter().map(|w| py_str(w)).collect();
    Ok(format!(
        " --set {} --set {}",
        sh_quote("dedup.engine=\"distributed\""),
        sh_quote(&format!("dedup.workers=[{}]", list.join(", ")))
    ))
}

/// A POSIX-shell single-quoted word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The Airflow DAG for `cfg` (loaded from `config`): one `BashOperator` per task of each
/// step, each task after every task of the steps it reads, `loam ledger` last. Airflow 3
/// (`airflow.sdk`, the standard provider's BashOperator), falling back to 2.10's imports.
pub fn airflow(cfg: &Resolved, config: &Path, opts: &AirflowOptions) -> Result<String> {
    let (binary, dag_id) = (opts.binary.as_str(), opts.dag_id.as_deref());
    let config = std::fs::canonicalize(config).with_context(|| format!("resolving {}", config.display()))?;
    let run_dir = std::env::current_dir()?.join(&cfg.run_dir);
    let run_dir = crate::config::normalize(&run_dir);
    let default_id = format!(
        "loam_{}",
        run_dir
            .file_name()
            .map(|n| n.to_string_lossy().replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
            .unwrap_or_default()
    );
    let mut py = String::new();
    let _ = writeln!(
        py,
        "# Generated by `loam dag --format airflow` from {}; regenerate, do not edit.",
        config.display()
    );
    let _ = writeln!(
        py,
        "# One task per stage shard; a step starts once every task of the steps it reads is done."
    );
    let _ = writeln!(py, "from datetime import datetime, timedelta\n");
    let _ = writeln!(py, "try:  # Airflow 3");
    let _ = writeln!(py, "    from airflow.sdk import DAG");
    let _ = writeln!(
        py,
        "    from airflow.providers.standard.operators.bash import BashOperator"
    );
    let _ = writeln!(py, "except ImportError:  # Airflow 2.10");
    let _ = writeln!(py, "    from airflow import DAG");
    let _ = writeln!(py, "    from airflow.operators.bash import BashOperator\n");
    let _ = writeln!(py, "LOAM = {}  # the loam binary on the workers", py_str(binary));
    let _ = writeln!(py, "CONFIG = {}", py_str(&config.display().to_string()));
    let _ = writeln!(py, "RUN_DIR = {}", py_str(&run_dir.display().to_string()));
    let _ = writeln!(py, "SHARDS = {}", cfg.shards);
    let sets: String = opts
        .overrides
        .iter()
        .map(|o| format!(" --set {}", sh_quote(o)))
        .collect();
    let _ = writeln!(
        py,
        "SETS = {}  # the --set overrides the DAG was made with",
        py_str(&sets)
    );
    let _ = writeln!(
        py,
        "RETRIES = {}  # shard jobs are idempotent: a retry is safe",
        opts.retries
    );
    let _ = writeln!(py, "RETRY_DELAY = timedelta(seconds={})", opts.retry_delay_s);
    let _ = writeln!(py, "POOL = {}  # size it to the workers' cores", py_str(&opts.pool));
    let dedup_sets = dedup_cluster_sets(cfg, &opts.dedup_workers)?;
    let _ = writeln!(
        py,
        "DEDUP_SETS = {}  # the dedup cluster task's engine: `loam worker` addresses",
        py_str(&dedup_sets)
    );
    if sweep_on(cfg) {
        let _ = writeln!(
            py,
            "SWEEP_SLOTS = {}  # [sweep] budgets x per_budget",
            cfg.sweep.budgets.len() * cfg.sweep.per_budget
        );
    }
    let _ = writeln!(py);
    let _ = writeln!(
        py,
        "with DAG(dag_id={}, start_date=datetime(2024, 1, 1), schedule=None, catchup=False, tags=[\"loam\"],\n         default_args={{\"retries\": RETRIES, \"retry_delay\": RETRY_DELAY, \"pool\": POOL}}) as dag:",
        py_str(dag_id.unwrap_or(&default_id))
    );
    let mut read: Vec<&str> = Vec::new();
    let enabled: Vec<&Step> = STEPS.iter().filter(|s| (s.enabled)(cfg)).collect();
    for step in &enabled {
        let (name, args) = (step.name, step.command);
        let fanned = match step.fan {
            Fan::Slots => Some(("{i:03d}", "--slot {i}", "SWEEP_SLOTS")),
            Fan::Shards => Some(("{i:05d}_of_{SHARDS:05d}", "--shard {i} --of {SHARDS}", "SHARDS")),
            Fan::One => None,
        };
        if let Some((id, flags, count)) = fanned {
            let _ = writeln!(py, "    {name}_tasks = [");
            let _ = writeln!(py, "        BashOperator(");
            let _ = writeln!(py, "            task_id=f\"{name}_{id}\",");
            let _ = writeln!(
                py,
                "            bash_command=f\"{{LOAM}} {args} --config '{{CONFIG}}' {flags}{{SETS}}\","
            );
            let _ = writeln!(py, "        )");
            let _ = writeln!(py, "        for i in range({count})");
            let _ = writeln!(py, "    ]");
        } else {
            let of = if step.needs_split { " --of {SHARDS}" } else { "" };
            let dedup = if name == "dedup_cluster" { "{DEDUP_SETS}" } else { "" };
            let _ = writeln!(
                py,
                "    {name}_tasks = [BashOperator(task_id=\"{name}\", bash_command=f\"{{LOAM}} {args} --config '{{CONFIG}}'{of}{{SETS}}{dedup}\")]"
            );
        }
        // The report (the last step) also waits for the ledger, not the ledger for it.
        let is_report = step.name == REPORT_STEP;
        for up in upstream_steps(name, cfg) {
            let _ = writeln!(py, "    for t in {name}_tasks:");
            let _ = writeln!(py, "        t.set_upstream({up}_tasks)");
            if !is_report {
                read.push(up);
            }
        }
    }
    let _ = writeln!(
        py,
        "    ledger = BashOperator(task_id=\"ledger\", bash_command=f\"{{LOAM}} ledger '{{RUN_DIR}}'\")"
    );
    // The ledger waits for the steps nothing else reads: the ends of the DAG.
    for s in enabled
        .iter()
        .filter(|s| !read.contains(&s.name) && s.name != REPORT_STEP)
    {
        let _ = writeln!(py, "    ledger.set_upstream({}_tasks)", s.name);
    }
    // The report runs after the ledger whatever its verdict: its badge shows it.
    let _ = writeln!(py, "    for t in {REPORT_STEP}_tasks:");
    let _ = writeln!(py, "        t.trigger_rule = \"all_done\"");
    let _ = writeln!(py, "        t.set_upstream([ledger])");
    // Airflow sets a run's state from its leaves; the report (all_done) would be the only
    // one and mark a run whose shard failed successful. The watcher fails it instead, and
    // is skipped when nothing failed.
    let _ = writeln!(
        py,
        "    verdict = BashOperator(task_id=\"verdict\", trigger_rule=\"one_failed\", retries=0,\n        bash_command=\"echo 'a loam task failed: see its log, then loam ledger and the report' >&2; exit 1\")"
    );
    let _ = writeln!(
        py,
        "    verdict.set_upstream([t for t in dag.tasks if t.task_id != \"verdict\"])"
    );
    Ok(py)
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn overrides_are_quoted_for_the_shell() {
        assert_eq!(sh_quote("run.dir=/data/x y"), "'run.dir=/data/x y'");
        // A quote ends the word, is escaped, and the word resumes.
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
    }
}
