//! Crash safety and determinism of `loam ingest`: a run SIGKILLed at any point and rerun
//! leaves exactly the bytes of an uninterrupted run; 1 and 4 threads give identical bytes.
mod common;
use common::*;

use std::path::Path;

/// Small batches so a shard of the demo corpus writes several before it ends.
const BATCH_ROWS: &str = "8";

fn ingest_args(out: &Path) -> Vec<String> {
    [
        "ingest",
        "--config",
        "configs/demo.toml",
        "--set",
        &format!("run.dir={}", out.display()),
        "--threads",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn clean_run(out: &Path) {
    let o = loam()
        .args(ingest_args(out))
        .env("LOAM_BATCH_ROWS", BATCH_ROWS)
        .output()
        .expect("runs");
    ok(&o);
}

/// Starts ingest with a failpoint, waits until it is reached, SIGKILLs the process.
fn kill_at(out: &Path, failpoint: &str) {
    let mut cmd = loam();
    cmd.args(ingest_args(out)).env("LOAM_BATCH_ROWS", BATCH_ROWS);
    kill_at_failpoint(cmd, failpoint);
}

#[test]
fn killed_ingest_reruns_to_the_same_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let clean = tmp.path().join("clean");
    clean_run(&clean);
    let want = output_bytes(&clean.join("ingest"));
    assert!(want.iter().any(|(p, _)| p.ends_with(".parquet")));
    for point in [
        "mid_output@1",
        "after_output@0",
        "after_stats@2",
        "after_marker@1",
        "mid_output@3",
    ] {
        let dir = tmp.path().join(point.replace('@', "_"));
        kill_at(&dir, point);
        let o = loam()
            .args(ingest_args(&dir))
            .env("LOAM_BATCH_ROWS", BATCH_ROWS)
            .output()?;
        ok(&o);
        let got = output_bytes(&dir.join("ingest"));
        assert_same_outputs(&got, &want, &format!("after kill at {point} and rerun"));
        ledger_ok(&dir);
    }
    Ok(())
}

#[test]
fn one_and_four_threads_write_identical_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    // 4 shards: threads run shards side by side; 1 shard: threads extract HTML in parallel.
    for of in ["4", "1"] {
        let mut outs = Vec::new();
        for threads in ["1", "4"] {
            let dir = tmp.path().join(format!("of{of}-t{threads}"));
            let o = demo_ingest(&dir, &["--of", of, "--threads", threads]);
            ok(&o);
            outs.push(output_bytes(&dir.join("ingest")));
        }
        assert_same_outputs(&outs[0], &outs[1], &format!("between 1 and 4 threads (--of {of})"));
    }
    Ok(())
}

#[test]
fn one_shard_at_a_time_as_airflow_runs_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let whole = tmp.path().join("whole");
    ok(&demo_ingest(&whole, &[]));
    let split = tmp.path().join("split");
    for i in 0..4 {
        let o = demo_ingest(&split, &["--shard", &i.to_string(), "--of", "4"]);
        ok(&o);
        assert_eq!(result_line(&o)["stages"][0]["shards_run"], 1);
    }
    assert_eq!(output_bytes(&whole.join("ingest")), output_bytes(&split.join("ingest")));
    // A different split into the same folder is refused, naming the fix.
    let o = demo_ingest(&split, &["--of", "3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--of 4"), "{}", stderr(&o));
    Ok(())
}

#[test]
fn regression_output_does_not_depend_on_the_working_directory() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let config = repo().join("configs/demo.toml");
    let here = tmp.path().join("from-repo");
    ok(&demo_ingest(&here, &[]));
    let elsewhere = tmp.path().join("from-tmp");
    let o = loam()
        .current_dir(tmp.path())
        .args([
            "ingest",
            "--config",
            config.to_str().ok_or("path")?,
            "--set",
            &format!("run.dir={}", elsewhere.display()),
        ])
        .output()?;
    ok(&o);
    assert_eq!(
        output_bytes(&here.join("ingest")),
        output_bytes(&elsewhere.join("ingest"))
    );
    Ok(())
}

#[test]
fn ledger_fails_on_tampered_or_missing_shards() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("r");
    ok(&demo_ingest(&dir, &[]));
    ledger_ok(&dir);
    let stats = dir.join("ingest/_stats/part-00001-of-00004.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats)?)?;
    v["kept"] = serde_json::json!(v["kept"].as_u64().ok_or("kept")? + 1);
    std::fs::write(&stats, serde_json::to_vec(&v)?)?;
    let o = run(&["ledger", dir.to_str().ok_or("path")?]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("NOT BALANCED") && stderr(&o).contains("shard 1"),
        "{}",
        stderr(&o)
    );
    // An uncommitted shard (no marker) is reported missing.
    std::fs::remove_file(dir.join("ingest/_done/part-00002-of-00004"))?;
    let o = run(&["ledger", dir.to_str().ok_or("path")?]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("shards not committed: 2"), "{}", stderr(&o));
    Ok(())
}

#[test]
fn airflow_dag_fans_out_every_stage_shard() -> TestResult {
    let o = run(&[
        "dag",
        "--config",
        "configs/demo.toml",
        "--format",
        "airflow",
        "--binary",
        "/opt/loam/bin/loam",
    ]);
    ok(&o);
    let py = String::from_utf8(o.stdout)?;
    assert!(py.contains("LOAM = \"/opt/loam/bin/loam\""), "{py}");
    assert!(py.contains("SHARDS = 4"));
    assert!(py.contains("{LOAM} ingest --config '{CONFIG}' --shard {i} --of {SHARDS}"));
    assert!(
        py.contains("t.set_upstream(ingest_tasks)"),
        "filter waits for every ingest shard"
    );
    assert!(py.contains("ledger.set_upstream(train_tasks)"));
    // Run it against a minimal stand-in for Airflow's DAG and BashOperator (Airflow itself
    // is not installed here) and check the task graph.
    let tmp = tempfile::tempdir()?;
    std::fs::create_dir_all(tmp.path().join("airflow/operators"))?;
    std::fs::write(
        tmp.path().join("airflow/__init__.py"),
        "class DAG:\n    def __init__(self, **kw): self.kw = kw\n    def __enter__(self): return self\n    def __exit__(self, *a): return False\n",
    )?;
    std::fs::write(tmp.path().join("airflow/operators/__init__.py"), "")?;
    std::fs::write(
        tmp.path().join("airflow/operators/bash.py"),
        "TASKS = {}\nclass BashOperator:\n    def __init__(self, task_id, bash_command, **kw):\n        self.task_id, self.cmd, self.up = task_id, bash_command, set()\n        TASKS[task_id] = self\n    def set_upstream(self, ts):\n        self.up |= {t.task_id for t in ts}\n",
    )?;
    std::fs::write(tmp.path().join("loam_demo.py"), &py)?;
    let driver = "import json, runpy; runpy.run_path('loam_demo.py'); from airflow.operators.bash import TASKS; print(json.dumps({k: [v.cmd, sorted(v.up)] for k, v in TASKS.items()}))";
    let c = std::process::Command::new("python3")
        .current_dir(tmp.path())
        .env("PYTHONPATH", tmp.path())
        .args(["-c", driver])
        .output()?;
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let tasks: serde_json::Value = serde_json::from_slice(&c.stdout)?;
    let tasks = tasks.as_object().ok_or("tasks")?;
    // ingest, filter, dedup signatures, dedup apply, quality scores, quality apply, remix
    // assign, remix apply, tokenize: 4 shards each; one dedup cluster, quality train,
    // quality threshold, remix plan, tokenizer, score and train task; the ledger; the
    // report, after the ledger and everything it reads.
    assert_eq!(tasks.len(), 9 * 4 + 7 + 1 + 1);
    // Remix assigns what quality kept, plans globally, then applies per shard.
    assert_eq!(
        tasks["remix_assign_00001_of_00004"][1].as_array().map(Vec::len),
        Some(4)
    );
    assert!(tasks["remix_assign_00001_of_00004"][1][0]
        .as_str()
        .is_some_and(|t| t.starts_with("quality_0")));
    assert!(tasks["remix_plan"][0]
        .as_str()
        .is_some_and(|c| c.contains("remix --phase plan --config") && c.ends_with("--of 4")));
    assert_eq!(tasks["remix_00002_of_00004"][1], serde_json::json!(["remix_plan"]));
    // Quality trains on the filter's pool, scores what dedup kept, thresholds globally.
    assert_eq!(tasks["quality_train"][1].as_array().map(Vec::len), Some(4));
    assert!(tasks["quality_train"][1][0]
        .as_str()
        .is_some_and(|t| t.starts_with("filter_")));
    assert_eq!(
        tasks["quality_score_00002_of_00004"][1].as_array().map(Vec::len),
        Some(5)
    );
    assert!(tasks["quality_threshold"][0]
        .as_str()
        .is_some_and(|c| c.contains("quality --phase threshold --config") && c.ends_with("--of 4")));
    assert_eq!(
        tasks["quality_00000_of_00004"][1],
        serde_json::json!(["quality_threshold"])
    );
    assert!(tasks["tokenizer"][1][0]
        .as_str()
        .is_some_and(|t| t.starts_with("remix_0")));
    // Score reads every token shard; train waits for the plan it writes.
    assert_eq!(tasks["score"][1].as_array().map(Vec::len), Some(4));
    assert!(tasks["score"][1][0]
        .as_str()
        .is_some_and(|t| t.starts_with("tokenize_0")));
    assert!(tasks["score"][0]
        .as_str()
        .is_some_and(|c| c.contains("score --config") && !c.contains("--of")));
    assert_eq!(tasks["train"][1], serde_json::json!(["score"]));
    assert!(tasks["train"][0]
        .as_str()
        .is_some_and(|c| c.contains("train --resume --config")));
    assert_eq!(tasks["tokenizer"][1].as_array().map(Vec::len), Some(4));
    assert!(tasks["tokenizer"][0]
        .as_str()
        .is_some_and(|c| c.contains("tokenizer train --config") && !c.contains("--of")));
    assert_eq!(tasks["tokenize_00003_of_00004"][1], serde_json::json!(["tokenizer"]));
    assert_eq!(tasks["dedup_cluster"][1].as_array().map(Vec::len), Some(4));
    assert_eq!(tasks["dedup_00001_of_00004"][1], serde_json::json!(["dedup_cluster"]));
    assert!(tasks["dedup_cluster"][0]
        .as_str()
        .is_some_and(|c| c.contains("dedup --phase cluster --config") && c.ends_with("--of 4")));
    let ingest: Vec<&String> = tasks.keys().filter(|k| k.starts_with("ingest_")).collect();
    assert_eq!(tasks["filter_00002_of_00004"][1].as_array().map(Vec::len), Some(4));
    assert!(ingest
        .iter()
        .all(|k| tasks[k.as_str()][1].as_array().is_some_and(Vec::is_empty)));
    assert_eq!(
        tasks["filter_00002_of_00004"][0],
        "/opt/loam/bin/loam filter --config '".to_owned()
            + &repo().join("configs/demo.toml").canonicalize()?.display().to_string()
            + "' --shard 2 --of 4"
    );
    assert_eq!(tasks["ledger"][1], serde_json::json!(["train"]));
    assert_eq!(tasks["report"][1], serde_json::json!(["ledger", "score", "train"]));
    let report_cmd = format!(
        "report --config '{}'",
        repo().join("configs/demo.toml").canonicalize()?.display()
    );
    assert!(tasks["report"][0].as_str().is_some_and(|c| c.ends_with(&report_cmd)));
    Ok(())
}
