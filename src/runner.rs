//! Runs a stage's shards on this machine: a fixed pool of workers takes shard indices in
//! order; outputs do not depend on the number of workers. Progress goes to stderr — a bar
//! on a terminal, JSON lines otherwise.
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use indicatif::{ProgressBar, ProgressStyle};
use loam_pipeline::stage::{run_shard, ShardId, ShardOutcome, Stage};
use serde::Serialize;

/// What a stage invocation did, summed over its shards.
#[derive(Debug, Default, Serialize)]
pub struct StageSummary {
    pub stage: String,
    pub output: String,
    pub shards_run: usize,
    pub shards_already_done: usize,
    pub docs_in: u64,
    pub kept: u64,
    pub dropped: u64,
}

impl std::fmt::Display for StageSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} documents in, {} kept, {} dropped ({} shards run, {} already committed) -> {}",
            self.stage, self.docs_in, self.kept, self.dropped, self.shards_run, self.shards_already_done, self.output
        )
    }
}

/// Splits `threads` between parallel shards and threads inside each shard.
pub fn split_threads(threads: usize, shards: usize) -> (usize, usize) {
    let parallel = threads.clamp(1, shards.max(1));
    (parallel, (threads / parallel).max(1))
}

/// Runs `shards` of `stage` under `stage_dir` with `parallel` workers.
pub fn run_stage(
    stage: &dyn Stage,
    stage_dir: &Path,
    shards: &[ShardId],
    fingerprint: &str,
    force: bool,
    parallel: usize,
) -> Result<StageSummary> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(shards.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} shards {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_prefix(stage.name());
        b
    });
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, shards.len().max(1)) {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&shard) = shards.get(i) else { return };
                let r = run_shard(stage, stage_dir, shard, fingerprint, force);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                if let Ok(o) = &r {
                    report(stage.name(), shard, o, bar.as_ref());
                }
                if let Ok(mut v) = results.lock() {
                    v.push((shard.index(), r));
                }
            });
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut results = results.into_inner().map_err(|_| anyhow!("a shard worker panicked"))?;
    results.sort_by_key(|(i, _)| *i);
    let mut sum = StageSummary {
        stage: stage.name().to_owned(),
        output: stage_dir.display().to_string(),
        ..Default::default()
    };
    for (_, r) in results {
        let o = r?;
        match &o {
            ShardOutcome::Done(_) => sum.shards_run += 1,
            ShardOutcome::AlreadyDone(_) => sum.shards_already_done += 1,
        }
        let st = o.stats();
        sum.docs_in += st.docs_in;
        sum.kept += st.kept;
        sum.dropped += st.dropped_total();
    }
    Ok(sum)
}

fn report(stage: &str, shard: ShardId, o: &ShardOutcome, bar: Option<&ProgressBar>) {
    let st = o.stats();
    let event = match o {
        ShardOutcome::Done(_) => "shard_done",
        ShardOutcome::AlreadyDone(_) => "shard_already_done",
    };
    match bar {
        Some(b) => {
            b.inc(1);
            if matches!(o, ShardOutcome::AlreadyDone(_)) {
                b.set_message(format!("shard {} already committed, skipped", shard.index()));
            }
        }
        None => eprintln!(
            "{}",
            serde_json::json!({
                "event": event, "stage": stage, "shard": shard.index(), "of": shard.of(),
                "docs_in": st.docs_in, "kept": st.kept, "dropped": st.dropped_total(),
                "seconds": (st.seconds * 1000.0).round() / 1000.0,
            })
        ),
    }
}
