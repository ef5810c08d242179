//! SIGKILL at seeded random moments, per stage: each trial starts `loam run --until STAGE`
//! on a copy of a run whose earlier stages are committed, kills it after a random delay
//! within the stage's measured duration, reruns it, and requires the stage's folder to be
//! byte-identical to an uninterrupted run's, with a balanced ledger (nothing duplicated or
//! lost). `LOAM_KILL_TRIALS` trials per stage (default 1; bench/kill.sh runs 20),
//! `LOAM_KILL_SEED` the seed, `LOAM_KILL_STAGES` a comma list of the stages to kill (default
//! all). Each trial's line goes to stderr; a summary per stage at the end.
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Stages in DAG order (`--until` names); train's promise is its checkpoint weights.
const STAGES: [&str; 9] = [
    "ingest",
    "filter",
    "dedup",
    "quality",
    "remix",
    "tokenizer",
    "tokenize",
    "score",
    "train",
];

/// splitmix64: a seeded, dependency-free source of delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn until(dir: &Path, stage: &str) -> std::process::Command {
    let mut c = loam();
    c.args(["run", "configs/demo.toml", "--until", stage, "--run-dir"])
        .arg(dir)
        .args(["--threads", "2"]);
    c
}

/// What a stage promises byte for byte: its folder (stats' timings aside), or for train
/// the newest checkpoint's weights and data position.
fn promised(dir: &Path, stage: &str) -> Vec<(String, Vec<u8>)> {
    if stage != "train" {
        return output_bytes(&dir.join(stage));
    }
    let ckpts = dir.join("train/checkpoints");
    let latest = std::fs::read_to_string(ckpts.join("latest")).unwrap_or_default();
    ["model.safetensors", "optimizer.safetensors"]
        .iter()
        .map(|f| {
            let p = ckpts.join(latest.trim()).join(f);
            (format!("{latest}/{f}"), std::fs::read(&p).unwrap_or_default())
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_then_rerun_gives_the_same_bytes() -> TestResult {
    let trials: u64 = std::env::var("LOAM_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let seed: u64 = std::env::var("LOAM_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let only: Option<Vec<String>> = std::env::var("LOAM_KILL_STAGES")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    if let Some(only) = &only {
        for s in only {
            assert!(
                STAGES.contains(&s.as_str()),
                "LOAM_KILL_STAGES: no stage {s:?}; stages are {STAGES:?}"
            );
        }
    }
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir()?;
    // The reference: every stage uninterrupted, one at a time, timing each.
    let reference = tmp.path().join("reference");
    let mut took = Vec::new();
    for stage in STAGES {
        let t = Instant::now();
        ok(&until(&reference, stage).output()?);
        took.push(t.elapsed());
    }
    ledger_ok(&reference);
    let mut summary = Vec::new();
    for (i, stage) in STAGES.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.iter().any(|s| s == stage)) {
            // Draw the same delays a full run would, so a stage's trials do not depend on
            // which others were selected.
            (0..trials).for_each(|_| {
                rng.next();
            });
            continue;
        }
        let want = promised(&reference, stage);
        assert!(!want.is_empty(), "{stage}: nothing promised");
        // A copy of the reference with this stage and everything after it removed.
        let base = tmp.path().join(format!("base-{stage}"));
        std::fs::create_dir_all(&base)?;
        for e in std::fs::read_dir(&reference)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if STAGES[i..].contains(&name.as_str()) || name == "report" {
                continue;
            }
            copy_tree(&e.path(), &base.join(&name))?;
        }
        let (mut killed, mut finished_first) = (0, 0);
        for trial in 0..trials {
            let dir = tmp.path().join(format!("{stage}-{trial}"));
            copy_tree(&base, &dir)?;
            // Uniform over the stage's duration plus start-up, in milliseconds.
            let span = took[i].as_millis().max(50) as u64;
            let delay = Duration::from_millis(rng.next() % span);
            let mut child = until(&dir, stage)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            std::thread::sleep(delay);
            let was_running = child.try_wait()?.is_none();
            child.kill()?;
            child.wait()?;
            if was_running {
                killed += 1;
            } else {
                finished_first += 1;
            }
            let o = until(&dir, stage).output()?;
            ok(&o);
            assert_same_outputs(
                &promised(&dir, stage),
                &want,
                &format!(
                    "in {stage} after SIGKILL at {} ms and a rerun (seed {seed}, trial {trial})",
                    delay.as_millis()
                ),
            );
            ledger_ok(&dir);
            eprintln!(
                "kill {stage} trial {trial}: {} ms of {span} ms, {}: rerun identical, ledger balanced",
                delay.as_millis(),
                if was_running { "killed" } else { "had finished" }
            );
            std::fs::remove_dir_all(&dir)?;
        }
        summary.push(format!(
            "{stage}: {trials} trials, {killed} killed mid-run, {finished_first} finished before the kill, all identical"
        ));
    }
    eprintln!("{}", summary.join("\n"));
    Ok(())
}
