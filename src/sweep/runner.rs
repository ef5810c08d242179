//! `sweep run`: one grid slot trained as an ordinary resumable train run in
//! `sweep/run-NNN/` with its outcome recorded, and `loam sweep`'s driver that runs every
//! unfinished slot as a concurrent child process of `threads_per_run` cores (a killed sweep,
//! rerun, continues every run from its last checkpoint; a finished one is a no-op).
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use loam_train::TrainError;
use serde::{Deserialize, Serialize};

use super::plan::{read_plan, sweep_dir, usage, Plan, PlannedRun};
use crate::config::Resolved;

pub const OUTCOME_SCHEMA: &str = "loam.sweep-run/1";

/// `sweep/run-NNN/outcome.json`: what one run gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub schema: String,
    pub slot: usize,
    /// `ok`, or `diverged` (non-finite loss: kept as a result, dropped from the fit).
    pub status: String,
    pub budget: f64,
    pub n_layer: usize,
    pub d_model: usize,
    pub m: f64,
    pub tokens: u64,
    /// C = M·D actually spent.
    pub compute: f64,
    pub steps: u64,
    /// Validation loss on the sweep's shared windows: nats per token and bits per byte.
    pub val_loss: Option<f64>,
    pub val_bpb: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub bytes_per_token_val: Option<f64>,
    pub detail: Option<String>,
    /// Wall and CPU seconds of the attempt that finished (and the step it resumed from).
    pub wall_s: f64,
    pub cpu_s: f64,
    pub threads: usize,
    pub resumed_from: Option<u64>,
}

impl Outcome {
    /// One line of progress: the run, its shape and budget, how it ended.
    fn line(&self, dir: &str) -> String {
        format!(
            "sweep: {dir} ({} × {}, C = {:.3e}) {}: {} bits/byte in {:.1} s ({:.1} CPU s)",
            self.n_layer,
            self.d_model,
            self.compute,
            self.status,
            self.val_bpb.map_or("-".into(), |b| format!("{b:.4}")),
            self.wall_s,
            self.cpu_s
        )
    }
}

fn outcome_path(run_dir: &Path, r: &PlannedRun) -> PathBuf {
    sweep_dir(run_dir).join(&r.dir).join("outcome.json")
}

pub(super) fn read_outcome(run_dir: &Path, r: &PlannedRun) -> Result<Option<Outcome>> {
    Ok(loam_pipeline::score::read_json::<Outcome>(&outcome_path(run_dir, r))?.filter(|o| o.schema == OUTCOME_SCHEMA))
}

/// CPU seconds of this process (user + system, every thread), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the `(comm)`: state is field 3, utime 14 and stime 15, in clock ticks
    // (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// A child of `loam sweep` exits when its parent dies, so a killed sweep leaves no run
/// writing behind the rerun's back (the run folder's lock covers any other case).
fn exit_with_parent() {
    let Some(pid) = std::env::var("LOAM_SWEEP_PARENT")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return;
    };
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != pid {
            eprintln!("sweep: the parent sweep (pid {pid}) is gone; stopping (rerun `loam sweep` to continue)");
            std::process::exit(137);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    });
}

/// Trains slot `slot` of the plan (a no-op when it is finished or was dropped).
pub fn run_slot(run_dir: &Path, slot: usize) -> Result<serde_json::Value> {
    let plan = read_plan(run_dir)?;
    if slot >= plan.slots {
        anyhow::bail!(usage(format!(
            "--slot {slot}: the plan has slots 0–{}",
            plan.slots.saturating_sub(1)
        )));
    }
    let Some(r) = plan.runs.iter().find(|r| r.grid.slot == slot) else {
        eprintln!("sweep: slot {slot} has no model of its own (its shape is another slot's); nothing to run");
        return Ok(serde_json::json!({"ok": true, "slot": slot, "status": "dropped"}));
    };
    exit_with_parent();
    let dir = sweep_dir(run_dir).join(&r.dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // One process per run folder: a second waits, then finds the run finished.
    let lock_path = dir.join("_lock");
    let lock = std::fs::File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if let Some(o) = read_outcome(run_dir, r)? {
        return Ok(serde_json::json!({"ok": true, "slot": slot, "status": o.status, "outcome": o}));
    }
    let (wall0, cpu0) = (Instant::now(), cpu_seconds());
    let device = Default::default();
    let total = r.train.total_steps();
    let progress = |m: &loam_train::StepMetrics, of: u64| {
        if (m.step + 1).is_multiple_of((of / 4).max(1)) || m.step + 1 == of {
            eprintln!(
                "{}",
                serde_json::json!({"event": "sweep_step", "run": r.dir, "step": m.step + 1, "of": of,
                    "loss": m.loss, "tokens_per_s": m.tokens_per_s, "val_bpb": m.val_bpb})
            );
        }
    };
    let res = loam_train::train::<loam_train::DefaultBackend>(
        &r.train,
        &run_dir.join("tokenize"),
        &dir,
        true,
        &device,
        progress,
    );
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| crate::threads_or_all(None));
    let mut o = Outcome {
        schema: OUTCOME_SCHEMA.into(),
        slot,
        status: "ok".into(),
        budget: r.grid.budget,
        n_layer: r.grid.shape.n_layer,
        d_model: r.grid.shape.d_model,
        m: r.grid.shape.m,
        tokens: r.train.tokens,
        compute: r.grid.compute,
        steps: total,
        val_loss: None,
        val_bpb: None,
        final_train_loss: None,
        bytes_per_token_val: None,
        detail: None,
        wall_s: 0.0,
        cpu_s: 0.0,
        threads,
        resumed_from: None,
    };
    match res {
        Ok(s) => {
            o.m = s.m;
            o.tokens = s.tokens;
            o.compute = s.compute;
            o.steps = s.steps;
            o.val_loss = s.val_loss;
            o.val_bpb = s.val_bpb;
            o.final_train_loss = Some(s.final_loss);
            o.bytes_per_token_val = Some(s.bytes_per_token_val);
            o.resumed_from = s.resumed_from;
        }
        Err(TrainError::Diverged { step, loss }) => {
            o.status = "diverged".into();
            o.steps = step;
            o.detail = Some(format!("loss {loss} at step {step}"));
        }
        Err(TrainError::Config(m)) => return Err(usage(format!("{}: {m}", dir.display()))),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("sweep run {}", dir.display()))),
    }
    o.wall_s = wall0.elapsed().as_secs_f64();
    o.cpu_s = cpu_seconds() - cpu0;
    crate::config::write_creating(&outcome_path(run_dir, r), &serde_json::to_vec_pretty(&o)?)?;
    eprintln!("{}", o.line(&r.dir));
    Ok(serde_json::json!({"ok": true, "slot": slot, "status": o.status, "outcome": o}))
}

/// Runs every unfinished slot as a child `loam sweep run`, `jobs` at a time, each with
/// `threads_per_run` compute threads; the costliest first, so the last to start are short.
pub fn run_slots(cfg: &Resolved, plan: &Plan, jobs: usize) -> Result<()> {
    let run_dir = &cfg.run_dir;
    let mut todo: Vec<&PlannedRun> = Vec::new();
    for r in &plan.runs {
        if read_outcome(run_dir, r)?.is_none() {
            todo.push(r);
        }
    }
    if todo.is_empty() {
        eprintln!("sweep: every run of the plan is finished");
        return Ok(());
    }
    todo.sort_by(|a, b| {
        let cost = |r: &PlannedRun| r.grid.shape.total_flops * r.train.tokens as f64;
        cost(b).total_cmp(&cost(a)).then(a.grid.slot.cmp(&b.grid.slot))
    });
    let exe = std::env::current_exe().context("finding the loam binary to run the sweep's runs")?;
    let jobs = jobs.clamp(1, todo.len());
    eprintln!(
        "sweep: {} of {} runs to train, {jobs} at a time, {} thread(s) each",
        todo.len(),
        plan.runs.len(),
        cfg.sweep.threads_per_run
    );
    let queue = Mutex::new(todo.into_iter().rev().collect::<Vec<_>>());
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                while let Some(r) = queue.lock().ok().and_then(|mut q| q.pop()) {
                    let dir = sweep_dir(run_dir).join(&r.dir);
                    let log = dir.join("log.txt");
                    let res = std::fs::create_dir_all(&dir)
                        .and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(&log))
                        .and_then(|f| {
                            std::process::Command::new(&exe)
                                .args(["sweep", "run", "--run"])
                                .arg(run_dir)
                                .args(["--slot", &r.grid.slot.to_string()])
                                .env("RAYON_NUM_THREADS", cfg.sweep.threads_per_run.to_string())
                                .env("LOAM_SWEEP_PARENT", std::process::id().to_string())
                                .stdout(std::process::Stdio::null())
                                .stderr(f)
                                .status()
                        });
                    let problem = match res {
                        Ok(st) if st.success() => None,
                        Ok(st) => Some(format!("{} exited with {st} (see {})", r.dir, log.display())),
                        Err(e) => Some(format!("{}: {e}", r.dir)),
                    };
                    if let Some(p) = problem {
                        if let Ok(mut f) = failed.lock() {
                            f.push(p);
                        }
                    } else if let Ok(Some(o)) = read_outcome(run_dir, r) {
                        eprintln!("{}", o.line(&r.dir));
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_default();
    if !failed.is_empty() {
        anyhow::bail!("{} sweep run(s) failed: {}", failed.len(), failed.join("; "));
    }
    Ok(())
}

/// Runs at once: `[sweep] jobs` (`--jobs` sets it), else the cores over threads_per_run.
pub fn jobs(cfg: &Resolved, threads: usize) -> usize {
    if cfg.sweep.jobs > 0 {
        cfg.sweep.jobs
    } else {
        (threads / cfg.sweep.threads_per_run).max(1)
    }
}
