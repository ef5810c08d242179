//! The run ledger: for every stage in a run directory, documents in = kept + Σ dropped
//! per shard and in total, every shard of the split committed, and each stage's input
//! equal to the rows written by the stage it read (recorded in its stats; else the stage
//! before it in the DAG order the caller gives). A stage that repeats documents (remix)
//! counts each distinct document once as kept and its copies as `rows_out`: in = kept +
//! dropped, out = Σ copies.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::stage::{read_stats, ShardStats, DONE_DIR, STATS_DIR};

#[derive(Debug, Clone, Default, Serialize)]
pub struct StageLedger {
    pub stage: String,
    pub of: usize,
    pub shards_committed: usize,
    pub docs_in: u64,
    pub kept: u64,
    /// Rows written when the stage repeats documents (remix: Σ copies); the next stage
    /// reads this many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<u64>,
    pub dropped: BTreeMap<String, u64>,
    /// The stage whose kept documents this one read, as its shards recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    pub stages: Vec<StageLedger>,
    pub problems: Vec<String>,
}

impl Ledger {
    pub fn balanced(&self) -> bool {
        self.problems.is_empty() && self.stages.iter().all(|s| s.problems.is_empty())
    }

    /// The ledger as a plain-text table: one line per stage and per drop reason.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<10} {:>7} {:>12} {:>12} {:>12}  status",
            "stage", "shards", "in", "kept", "dropped"
        );
        for s in &self.stages {
            let dropped: u64 = s.dropped.values().sum();
            let status = if s.problems.is_empty() {
                "balanced"
            } else {
                "NOT BALANCED"
            };
            let _ = writeln!(
                t,
                "{:<10} {:>3}/{:<3} {:>12} {:>12} {:>12}  {status}",
                s.stage, s.shards_committed, s.of, s.docs_in, s.kept, dropped
            );
            if let Some(r) = s.rows_out {
                let _ = writeln!(t, "{:<10}   {:<36} {:>12}", "", "rows out (copies)", r);
            }
            for (reason, n) in &s.dropped {
                let _ = writeln!(t, "{:<10}   {:<36} {:>12}", "", reason, n);
            }
            for p in &s.problems {
                let _ = writeln!(t, "  ! {p}");
            }
        }
        for p in &self.problems {
            let _ = writeln!(t, "! {p}");
        }
        t
    }
}

/// The stats of a stage folder's committed shards, in file-name order (none when it has no
/// `_stats/`). Stats without a completion marker belong to a shard that did not finish.
pub fn committed_stats(dir: &Path) -> Result<Vec<ShardStats>> {
    let stats_dir = dir.join(STATS_DIR);
    let entries = match std::fs::read_dir(&stats_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PipelineError::io(&stats_dir, e)),
    };
    let mut names: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    names.sort();
    let mut shards = Vec::new();
    for p in names {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir.join(DONE_DIR).join(&stem).exists() {
            shards.push(read_stats(&p)?);
        }
    }
    Ok(shards)
}

fn stage_ledger(stage: &str, dir: &Path) -> Result<StageLedger> {
    let mut l = StageLedger {
        stage: stage.to_owned(),
        ..Default::default()
    };
    let shards = committed_stats(dir)?;
    l.of = shards.first().map_or(0, |s| s.of);
    l.shards_committed = shards.len();
    for s in &shards {
        if s.of != l.of {
            l.problems.push(format!(
                "shard {} is of a {}-way split, others of {}",
                s.shard, s.of, l.of
            ));
        }
        if !s.balanced() {
            l.problems.push(format!(
                "shard {}: {} in but {} kept + {} dropped",
                s.shard,
                s.docs_in,
                s.kept,
                s.dropped_total()
            ));
        }
        if l.upstream.is_none() {
            l.upstream.clone_from(&s.upstream);
        }
        l.docs_in += s.docs_in;
        l.kept += s.kept;
        if let Some(r) = s.rows_out {
            *l.rows_out.get_or_insert(0) += r;
        }
        for (r, n) in &s.dropped {
            *l.dropped.entry(r.clone()).or_default() += n;
        }
    }
    if l.shards_committed < l.of {
        let done: Vec<usize> = shards.iter().map(|s| s.shard).collect();
        let missing: Vec<String> = (0..l.of).filter(|i| !done.contains(i)).map(|i| i.to_string()).collect();
        l.problems.push(format!("shards not committed: {}", missing.join(", ")));
    }
    if l.shards_committed == 0 {
        l.problems.push("no committed shard".into());
    }
    Ok(l)
}

/// Reads the committed stats of every stage of `stages` (document stages, in DAG order)
/// found under `run_dir` and checks the books.
pub fn read_ledger(run_dir: &Path, stages: &[&str]) -> Result<Ledger> {
    if !run_dir.is_dir() {
        return Err(PipelineError::Config(format!(
            "{} is not a run directory (no such folder); pass the `dir` of a run",
            run_dir.display()
        )));
    }
    let mut ledger = Ledger::default();
    for stage in stages {
        let dir = run_dir.join(stage);
        if dir.join(STATS_DIR).is_dir() {
            ledger.stages.push(stage_ledger(stage, &dir)?);
        }
    }
    if ledger.stages.is_empty() {
        ledger
            .problems
            .push(format!("{} holds no stage output", run_dir.display()));
    }
    for (i, s) in ledger.stages.iter().enumerate().skip(1) {
        let up = match &s.upstream {
            Some(u) => ledger.stages[..i].iter().find(|p| &p.stage == u),
            None => ledger.stages.get(i - 1),
        };
        match up {
            Some(up) if up.rows_out.unwrap_or(up.kept) != s.docs_in => ledger.problems.push(format!(
                "{} read {} documents but {} wrote {}",
                s.stage,
                s.docs_in,
                up.stage,
                up.rows_out.unwrap_or(up.kept)
            )),
            Some(_) => {}
            None => ledger.problems.push(format!(
                "{} read {}, which has no committed output in this run",
                s.stage,
                s.upstream.as_deref().unwrap_or("?")
            )),
        }
    }
    Ok(ledger)
}
