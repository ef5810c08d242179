//! The exported DAG in real Airflow (apache-airflow 3.3.2, the venv `.ci/run` makes):
//! its task graph as Airflow's own DAG object holds it, `airflow dags test` of the demo
//! config end to end (every task succeeds; the run's outputs are the bytes `loam run`
//! writes), and a shard that fails makes `dags test` fail with its downstream tasks not run.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

/// `loam dag` of the demo config into `home/dags/`, the run going to `run_dir`.
fn export_dag(home: &Path, run_dir: &Path, dag_id: &str, extra: &[&str]) -> TestResult {
    let set = format!("run.dir={}", run_dir.display());
    let mut args = vec![
        "dag",
        "--config",
        "configs/demo.toml",
        "--binary",
        env!("CARGO_BIN_EXE_loam"),
        "--dag-id",
        dag_id,
        "--set",
        &set,
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    ok(&o);
    std::fs::create_dir_all(home.join("dags"))?;
    std::fs::write(home.join(format!("dags/{dag_id}.py")), &o.stdout)?;
    Ok(())
}

fn migrate(home: &Path) -> TestResult {
    let o = airflow_cmd("airflow", home).args(["db", "migrate"]).output()?;
    assert!(o.status.success(), "airflow db migrate: {}", stderr(&o));
    Ok(())
}

/// Task id → state of the DAG's (one) run, from Airflow's metadata database.
fn task_states(home: &Path, dag_id: &str) -> Result<BTreeMap<String, Option<String>>, Box<dyn std::error::Error>> {
    let script = "import json, sqlite3, sys\n\
                  db = sqlite3.connect(sys.argv[1])\n\
                  rows = db.execute('select task_id, state from task_instance where dag_id = ?', (sys.argv[2],)).fetchall()\n\
                  print(json.dumps(dict(rows)))";
    let o = airflow_cmd("python", home)
        .args(["-c", script, path_str(&home.join("airflow.db")), dag_id])
        .output()?;
    assert!(o.status.success(), "{}", stderr(&o));
    Ok(serde_json::from_slice(&o.stdout)?)
}

#[test]
fn airflow_holds_the_exported_task_graph() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("airflow");
    export_dag(
        &home,
        &tmp.path().join("run"),
        "loam_graph",
        &[
            "--retries",
            "3",
            "--pool",
            "loam",
            "--dedup-workers",
            "http://127.0.0.1:50051,http://127.0.0.1:50052",
        ],
    )?;
    // Airflow's own DAG object, as its DAG processor builds it from the file.
    let driver = "import json, runpy, sys\n\
                  d = runpy.run_path(sys.argv[1])['dag']\n\
                  print(json.dumps({t.task_id: [t.bash_command, sorted(t.upstream_task_ids), t.retries, t.pool, t.trigger_rule] for t in d.tasks}))";
    let o = airflow_cmd("python", &home)
        .args(["-c", driver, path_str(&home.join("dags/loam_graph.py"))])
        .output()?;
    assert!(o.status.success(), "{}", stderr(&o));
    let tasks: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let tasks = tasks.as_object().ok_or("tasks")?;
    // ingest, filter, dedup signatures, dedup apply, quality scores, quality apply, remix
    // assign, remix apply, tokenize: 4 shards each; one dedup cluster, quality train,
    // quality threshold, remix plan, tokenizer, score and train task; the ledger; the
    // report; the verdict (fails the run when any task failed).
    assert_eq!(tasks.len(), 9 * 4 + 7 + 1 + 1 + 1);
    let up = |t: &str| tasks[t][1].clone();
    let cmd = |t: &str| tasks[t][0].as_str().unwrap_or_default().to_owned();
    let set = format!("--set 'run.dir={}'", tmp.path().join("run").display());
    assert_eq!(
        cmd("filter_00002_of_00004"),
        format!(
            "{} filter --config '{}' --shard 2 --of 4 {set}",
            env!("CARGO_BIN_EXE_loam"),
            repo().join("configs/demo.toml").canonicalize()?.display()
        )
    );
    assert!(
        tasks
            .iter()
            .all(|(id, t)| (t[2] == 3 || id == "verdict") && t[3] == "loam"),
        "retries and pool on every task"
    );
    assert!(up("ingest_00000_of_00004").as_array().is_some_and(Vec::is_empty));
    assert_eq!(up("filter_00002_of_00004").as_array().map(Vec::len), Some(4));
    assert_eq!(up("dedup_cluster").as_array().map(Vec::len), Some(4));
    assert_eq!(up("dedup_00001_of_00004"), serde_json::json!(["dedup_cluster"]));
    assert!(cmd("dedup_cluster").contains("dedup --phase cluster --config") && cmd("dedup_cluster").contains("--of 4"));
    // The cluster task, and only it, runs on the given `loam worker`s.
    assert!(
        cmd("dedup_cluster").ends_with(
            "--set 'dedup.engine=\"distributed\"' --set 'dedup.workers=[\"http://127.0.0.1:50051\", \"http://127.0.0.1:50052\"]'"
        ),
        "{}",
        cmd("dedup_cluster")
    );
    assert!(tasks
        .iter()
        .all(|(id, t)| id == "dedup_cluster" || !t[0].as_str().unwrap_or_default().contains("dedup.workers")));
    // Quality trains on the filter's pool, scores what dedup kept, thresholds globally.
    assert!(up("quality_train")[0]
        .as_str()
        .is_some_and(|t| t.starts_with("filter_")));
    assert_eq!(up("quality_score_00002_of_00004").as_array().map(Vec::len), Some(5));
    assert_eq!(up("quality_00000_of_00004"), serde_json::json!(["quality_threshold"]));
    assert!(up("remix_assign_00001_of_00004")[0]
        .as_str()
        .is_some_and(|t| t.starts_with("quality_0")));
    assert_eq!(up("remix_00002_of_00004"), serde_json::json!(["remix_plan"]));
    assert!(up("tokenizer")[0].as_str().is_some_and(|t| t.starts_with("remix_0")));
    assert_eq!(up("tokenize_00003_of_00004"), serde_json::json!(["tokenizer"]));
    assert_eq!(up("score").as_array().map(Vec::len), Some(4));
    assert_eq!(up("train"), serde_json::json!(["score"]));
    assert!(cmd("train").contains("train --resume --config"));
    assert_eq!(up("ledger"), serde_json::json!(["train"]));
    // The report runs after the ledger whatever its verdict.
    assert_eq!(up("report"), serde_json::json!(["ledger", "score", "train"]));
    assert_eq!(tasks["report"][4], "all_done");
    assert_eq!(tasks["verdict"][4], "one_failed");
    assert_eq!(up("verdict").as_array().map(Vec::len), Some(tasks.len() - 1));
    Ok(())
}

#[test]
fn airflow_dags_test_runs_the_demo_as_loam_run_does() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("airflow");
    let dag_run = tmp.path().join("by-airflow");
    export_dag(&home, &dag_run, "loam_demo_ok", &[])?;
    migrate(&home)?;
    let o = airflow_cmd("airflow", &home)
        .args(["dags", "test", "loam_demo_ok"])
        .output()?;
    assert!(o.status.success(), "airflow dags test failed:\n{}", stderr(&o));
    let mut states = task_states(&home, "loam_demo_ok")?;
    assert_eq!(states.remove("verdict"), Some(Some("skipped".into())), "nothing failed");
    assert_eq!(states.len(), 45, "{states:?}");
    let not_ok: Vec<_> = states.iter().filter(|(_, s)| s.as_deref() != Some("success")).collect();
    assert!(not_ok.is_empty(), "tasks not successful: {not_ok:?}");
    ledger_ok(&dag_run);

    // The same config through `loam run`, into the same path (fingerprints name upstream
    // folders): the same bytes wherever loam promises them.
    let by_airflow = tmp.path().join("by-airflow-moved");
    std::fs::rename(&dag_run, &by_airflow)?;
    let direct = dag_run.clone();
    let dag_run = by_airflow;
    ok(&run(&["run", "configs/demo.toml", "--run-dir", path_str(&direct)]));
    for stage in [
        "ingest",
        "filter",
        "dedup",
        "quality",
        "remix",
        "tokenizer",
        "tokenize",
        "score",
    ] {
        assert_same_outputs(
            &output_bytes(&dag_run.join(stage)),
            &output_bytes(&direct.join(stage)),
            &format!("in {stage}/ (Airflow vs loam run)"),
        );
    }
    let weights = |d: &Path| -> std::io::Result<Vec<u8>> {
        let latest = std::fs::read_to_string(d.join("train/checkpoints/latest"))?;
        std::fs::read(
            d.join("train/checkpoints")
                .join(latest.trim())
                .join("model.safetensors"),
        )
    };
    assert!(
        weights(&dag_run)? == weights(&direct)?,
        "trained weights differ (Airflow vs loam run)"
    );
    assert!(dag_run.join("report/report.html").is_file());
    Ok(())
}

#[test]
fn a_failing_shard_fails_dags_test_and_stops_its_downstream() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("airflow");
    export_dag(&home, &tmp.path().join("run"), "loam_demo_fail", &["--retries", "0"])?;
    migrate(&home)?;
    // Ingest's shard 1 exits 1 after writing its output, before committing it.
    let o = airflow_cmd("airflow", &home)
        .env("LOAM_FAILPOINT", "after_output@1:exit")
        .args(["dags", "test", "loam_demo_fail"])
        .output()?;
    assert!(
        !o.status.success(),
        "dags test passed with a failing shard:\n{}",
        stderr(&o)
    );
    let states = task_states(&home, "loam_demo_fail")?;
    let state = |t: &str| states.get(t).cloned().flatten();
    assert_eq!(state("ingest_00001_of_00004").as_deref(), Some("failed"), "{states:?}");
    for t in ["ingest_00000_of_00004", "ingest_00002_of_00004"] {
        assert_eq!(state(t).as_deref(), Some("success"), "{t}: {states:?}");
    }
    assert_eq!(state("verdict").as_deref(), Some("failed"), "the verdict fails the run");
    // Nothing downstream ran: filter never started, the ledger never ran.
    for t in [
        "filter_00000_of_00004",
        "filter_00001_of_00004",
        "dedup_cluster",
        "train",
        "ledger",
    ] {
        assert_ne!(state(t).as_deref(), Some("success"), "{t} ran: {states:?}");
    }
    assert!(
        !tmp.path().join("run/filter/_done").exists(),
        "filter committed a shard"
    );
    Ok(())
}
