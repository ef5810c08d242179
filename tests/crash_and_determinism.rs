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
    // The task graph itself is checked in real Airflow: tests/airflow_real.rs.
    Ok(())
}

#[test]
fn regression_filter_fingerprint_ignores_how_the_config_path_is_spelled() -> TestResult {
    // A scheduler passes the config's absolute path; a user reruns with a relative one.
    // The lid model's path in the fingerprint made the second see another configuration.
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("r");
    ok(&demo_ingest(&dir, &[]));
    let set = format!("run.dir={}", dir.display());
    ok(&run(&["filter", "--config", "configs/demo.toml", "--set", &set]));
    let abs = repo().join("configs/demo.toml").canonicalize()?;
    let o = run(&["filter", "--config", abs.to_str().ok_or("path")?, "--set", &set]);
    ok(&o);
    assert_eq!(result_line(&o)["stages"][0]["shards_run"], 0, "{}", stderr(&o));
    Ok(())
}
