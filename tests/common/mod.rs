//! Helpers for the end-to-end tests: run the `loam` binary, find the shared real data,
//! read Parquet outputs back.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data` beside the checkout (CI lays a copy there), or `$LOAM_SHARED_DATA`.
pub fn shared() -> PathBuf {
    std::env::var_os("LOAM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"))
}

pub fn cc_dir() -> PathBuf {
    shared().join("crawl/cc-main-2014-35")
}

pub const CC_STEM: &str = "CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal";

pub fn loam() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loam"));
    c.env_remove("LOAM_FAILPOINT").env_remove("LOAM_BATCH_ROWS");
    c
}

/// Runs `loam args…`, returning the output; panics with stderr if it crashed (exit 101).
pub fn run(args: &[&str]) -> Output {
    let out = loam().args(args).output().expect("loam binary runs");
    assert_ne!(
        out.status.code(),
        Some(101),
        "loam panicked:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The single JSON result line on stdout.
pub fn result_line(o: &Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold one JSON line, got {s:?}\nstderr: {}",
        stderr(o)
    );
    serde_json::from_str(lines[0]).expect("stdout is JSON")
}

pub fn ok(o: &Output) {
    assert!(o.status.success(), "loam failed ({:?}):\n{}", o.status, stderr(o));
}

/// All rows of every `*.parquet` directly in `dir`, in file order.
pub fn read_rows(dir: &Path) -> Vec<RecordBatch> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("stage dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(File::open(&f).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        out.extend(r.map(|b| b.expect("batch")));
    }
    out
}

/// Values of a string column across batches (None for nulls).
pub fn strings(batches: &[RecordBatch], col: &str) -> Vec<Option<String>> {
    let mut v = Vec::new();
    for b in batches {
        let a = b.column_by_name(col).unwrap_or_else(|| panic!("no column {col}"));
        let s = a.as_string::<i32>();
        for i in 0..s.len() {
            v.push((!s.is_null(i)).then(|| s.value(i).to_owned()));
        }
    }
    v
}

pub fn stats(run_dir: &Path, stage: &str) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(run_dir.join(stage).join("_stats"))
        .expect("stats dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json"))
        .collect()
}

/// Sum of `dropped[reason]` (or `counters[name]` with `section = "counters"`) over shards.
pub fn total(run_dir: &Path, stage: &str, section: &str, key: &str) -> u64 {
    stats(run_dir, stage)
        .iter()
        .map(|s| s[section][key].as_u64().unwrap_or(0))
        .sum()
}

pub fn sum_field(run_dir: &Path, stage: &str, field: &str) -> u64 {
    stats(run_dir, stage)
        .iter()
        .map(|s| s[field].as_u64().unwrap_or(0))
        .sum()
}

/// Every regular file under `dir` (relative path → bytes), for byte-identity checks.
/// Stats (timings) are left out: they are the only output allowed to differ.
pub fn output_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "_stats") {
                    continue;
                }
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).expect("prefix").display().to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Asserts two [`output_bytes`] listings hold the same files with the same bytes, naming
/// the first file that differs (a full byte dump would drown the message).
pub fn assert_same_outputs(got: &[(String, Vec<u8>)], want: &[(String, Vec<u8>)], context: &str) {
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "files {context}");
    for ((p, a), (_, b)) in got.iter().zip(want) {
        assert!(a == b, "{p} differs {context}");
    }
}

pub fn ledger_ok(run_dir: &Path) {
    let o = run(&["ledger", run_dir.to_str().expect("utf-8 path")]);
    assert!(o.status.success(), "ledger does not balance:\n{}", stderr(&o));
}

/// `loam ingest --config configs/demo.toml --set run.dir=DIR EXTRA…`.
pub fn demo_ingest(dir: &Path, extra: &[&str]) -> Output {
    let set = format!("run.dir={}", dir.display());
    let mut args = vec!["ingest", "--config", "configs/demo.toml", "--set", &set];
    args.extend_from_slice(extra);
    run(&args)
}

/// `loam run configs/demo.toml --until STAGE --run-dir DIR EXTRA…`.
pub fn demo_until(dir: &Path, until: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "configs/demo.toml",
        "--until",
        until,
        "--run-dir",
        dir.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Runs `cmd` with `LOAM_FAILPOINT=point`, waits until the process says it reached it, and
/// SIGKILLs it there (std's `kill` sends SIGKILL on Unix).
pub fn kill_at_failpoint(mut cmd: Command, point: &str) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .env("LOAM_FAILPOINT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let reached = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("failpoint") && l.contains("reached"));
    assert!(reached, "failpoint {point} never reached");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

/// The virtualenv holding real Airflow (apache-airflow 3.3.2 under
/// tests/airflow/constraints-3.3.2.txt; `.ci/run` makes it): `$LOAM_AIRFLOW_VENV`, else
/// `~/.cache/loam-airflow-3.3.2`.
pub fn airflow_venv() -> PathBuf {
    let venv = std::env::var_os("LOAM_AIRFLOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/loam-airflow-3.3.2")
        });
    assert!(
        venv.join("bin/airflow").is_file(),
        "no Airflow at {}: run `bash .ci/run` once (it makes the venv), or set LOAM_AIRFLOW_VENV",
        venv.display()
    );
    venv
}

/// `program` (`airflow` or `python`) of the Airflow venv, with its home and DAG folder in
/// `home` (SQLite metadata, no examples).
pub fn airflow_cmd(program: &str, home: &Path) -> Command {
    let mut c = Command::new(airflow_venv().join("bin").join(program));
    c.env("AIRFLOW_HOME", home)
        .env("AIRFLOW__CORE__DAGS_FOLDER", home.join("dags"))
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .env("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "120")
        .env_remove("LOAM_FAILPOINT");
    c
}

/// A path as a `&str` argument (tests' temporary paths are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Copies a file, or a folder and everything under it.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}
