//! The dedup cluster step on the distributed engine (DataFusion + datafusion-distributed),
//! on one machine over loopback only: the in-process cluster (in-memory channels, no
//! sockets) and real `loam worker` processes give the local engine's bytes on the demo and
//! on a planted-duplicate corpus (both keep rules, and the incremental path); the plan has
//! network boundaries; a worker killed mid-query fails the step clearly and a rerun gives
//! the same bytes; a memory pool too small fails naming its setting.
#![cfg(feature = "distributed")]
mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// `loam worker` processes on 127.0.0.1 ports the system picks; killed on drop.
struct Workers {
    children: Vec<Child>,
    urls: Vec<String>,
    /// Lines of each worker's stderr, as they come.
    stderr: Vec<mpsc::Receiver<String>>,
}

impl Workers {
    fn start(n: usize, env: &[(&str, &str)]) -> Self {
        let mut w = Workers {
            children: Vec::new(),
            urls: Vec::new(),
            stderr: Vec::new(),
        };
        for _ in 0..n {
            let mut cmd = loam();
            cmd.args(["worker", "--listen", "127.0.0.1:0", "--memory-limit-mb", "512"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("spawn loam worker");
            let out = child.stdout.take().expect("stdout");
            let err = child.stderr.take().expect("stderr");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            let (utx, urx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(out).lines();
                if let Some(Ok(l)) = lines.next() {
                    let _ = utx.send(l);
                }
                for _ in lines {}
            });
            let line = urx
                .recv_timeout(Duration::from_secs(60))
                .expect("worker says where it listens");
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
            let url = v["worker"].as_str().expect("worker address").to_owned();
            assert!(url.starts_with("http://127.0.0.1:"), "{url}");
            w.urls.push(url);
            w.children.push(child);
            w.stderr.push(rx);
        }
        w
    }

    /// `--set dedup.workers=[…]`.
    fn set(&self) -> String {
        let list: Vec<String> = self.urls.iter().map(|u| format!("\"{u}\"")).collect();
        format!("dedup.workers=[{}]", list.join(", "))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const DISTRIBUTED: &str = "dedup.engine=\"distributed\"";

/// Runs a command, killing it if it outlives `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("command ran past {limit:?}: {cmd:?}");
        }
    }
}

/// `loam dedup --config CFG --set run.dir=RUN --phase PHASE --force SETS…`.
fn dedup(cfg: &Path, run: &Path, phase: &str, sets: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = loam();
    let dir = format!("run.dir={}", run.display());
    cmd.args([
        "dedup",
        "--config",
        path_str(cfg),
        "--set",
        &dir,
        "--phase",
        phase,
        "--force",
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, Duration::from_secs(600))
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Runs the local engine's dedup over the run `local` (ingested), then copies that run and
/// redoes its cluster step (and apply) on the distributed engine with `sets`; asserts the
/// two dedup folders hold the same bytes. Returns the distributed run.
fn same_as_local(cfg: &Path, local: &Path, extra: &[&str], sets: &[&str], env: &[(&str, &str)]) -> PathBuf {
    ok(&dedup(cfg, local, "all", extra, &[]));
    let dist = local.with_extension(format!("dist{}", RUNS.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dist);
    copy_tree(local, &dist).expect("copy the local run");
    let mut all: Vec<&str> = extra.to_vec();
    all.extend_from_slice(sets);
    let o = dedup(cfg, &dist, "cluster", &all, env);
    ok(&o);
    assert!(
        stderr(&o).contains("labels changed"),
        "the distributed engine ran:\n{}",
        stderr(&o)
    );
    ok(&dedup(cfg, &dist, "apply", &all, &[]));
    assert_same_outputs(
        &output_bytes(&dist.join("dedup")),
        &output_bytes(&local.join("dedup")),
        "between the distributed and the local engine",
    );
    let stats: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dist.join("dedup/_index/cluster/_stats/cluster.json")).expect("run stats"),
    )
    .expect("json");
    assert_eq!(stats["engine"], "distributed");
    assert!(stats["iterations"].as_u64().is_some_and(|r| r >= 1), "{stats}");
    dist
}

/// A copy of the demo run up to filter (made once per test binary) at `to`.
fn demo_run(to: &Path) -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("loam-dist-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ok(&demo_until(&dir, "filter", &[]));
        dir
    });
    copy_tree(base, to).expect("copy the demo run");
    to.to_owned()
}

fn chapter(n: usize) -> String {
    let p = shared().join(format!("text/moby-dick/chapter_{n}.txt"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Replaces a share `rate` of the words (a fixed LCG picks them) with new tokens.
fn edit(text: &str, rate: f64, seed: u64) -> String {
    let mut st = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    text.split(' ')
        .enumerate()
        .map(|(i, w)| {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if ((st >> 33) as f64 / (1u64 << 31) as f64) < rate {
                format!("zq{i}x{seed}")
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_jsonl(path: &Path, docs: &[(String, String)]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, text)| serde_json::json!({"id": id, "text": text}).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

/// `(id, text)` of the documents of one input file.
type Docs = Vec<(String, String)>;

/// Three dumps of real text with planted exact and near duplicates across and within
/// dumps, the same id in two files of one dump, and site furniture in every page.
fn planted(dir: &Path, dumps: &[&str], shards: usize, extra_toml: &str) -> PathBuf {
    let input = dir.join("in");
    let page = |body: &str| format!("Home | Chapters | Search\n\n{body}\n\nAll texts in the public domain");
    let mut by_dump: Vec<(&str, Docs, Docs)> = Vec::new();
    let d1: Vec<(String, String)> = (1..=14).map(|n| (format!("a/ch{n}"), page(&chapter(n)))).collect();
    let mut d2: Vec<(String, String)> = (1..=3).map(|n| (format!("b/copy{n}"), page(&chapter(n)))).collect();
    d2.extend((4..=7).map(|n| (format!("b/edit{n}"), page(&edit(&chapter(n), 0.02, n as u64)))));
    d2.extend((15..=18).map(|n| (format!("b/ch{n}"), page(&chapter(n)))));
    let d2b = vec![
        ("same-id".to_owned(), page(&chapter(20))),
        ("b/ch21".to_owned(), page(&chapter(21))),
    ];
    let mut d3: Vec<(String, String)> = vec![
        ("c/copy1".into(), page(&chapter(1))),
        ("c/edit4".into(), page(&edit(&chapter(4), 0.01, 99))),
        ("c/edit15".into(), page(&edit(&chapter(15), 0.03, 7))),
        ("c/upper16".into(), page(&chapter(16).to_uppercase())),
    ];
    d3.extend((22..=26).map(|n| (format!("c/ch{n}"), page(&chapter(n)))));
    let d3b = vec![
        ("same-id".to_owned(), page(&chapter(20))),
        ("c/ch27".to_owned(), page(&chapter(27))),
    ];
    by_dump.push(("SIM-2024-01", d1, Vec::new()));
    by_dump.push(("SIM-2024-02", d2, d2b));
    by_dump.push(("SIM-2024-03", d3, d3b));
    let mut toml = format!("[run]\ndir = \"{}\"\nshards = {shards}\n", path_str(&dir.join("run")));
    for (name, a, b) in by_dump.iter().filter(|(n, _, _)| dumps.contains(n)) {
        write_jsonl(&input.join(name).join("part-a.jsonl"), a);
        if !b.is_empty() {
            write_jsonl(&input.join(name).join("part-b.jsonl"), b);
        }
        toml += &format!(
            "[[dumps]]\nname = \"{name}\"\ninputs = [\"{}\"]\n",
            path_str(&input.join(name))
        );
    }
    toml += &format!("[dedup]\nupstream = \"ingest\"\n{extra_toml}\n");
    let cfg = dir.join("loam.toml");
    std::fs::write(&cfg, toml).expect("config");
    // dedup reads ingest directly.
    let o = run(&["ingest", "--config", path_str(&cfg)]);
    ok(&o);
    cfg
}

fn in_process(n: usize) -> String {
    format!("dedup.in_process_workers={n}")
}

#[test]
fn in_process_cluster_gives_the_local_bytes_on_the_demo() {
    let tmp = tempfile::tempdir().expect("tmp");
    let local = demo_run(&tmp.path().join("demo"));
    let cfg = repo().join("configs/demo.toml");
    let dist = same_as_local(
        &cfg,
        &local,
        &[],
        &[DISTRIBUTED, &in_process(3)],
        &[("LOAM_DEDUP_SCAN_BYTES", "1")],
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("dedup/_index/cluster/summary.json")).expect("summary"))
            .expect("json");
    assert!(summary["near_duplicate"].as_u64().is_some_and(|n| n > 0), "{summary}");
    let dumps = summary["dumps"].as_array().map_or(0, Vec::len);
    assert!(dumps >= 3, "{summary}");
    assert_eq!(summary["curve"].as_array().map(Vec::len), Some(dumps));
}

#[test]
fn in_process_cluster_gives_the_local_bytes_on_planted_duplicates() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dumps = ["SIM-2024-01", "SIM-2024-02", "SIM-2024-03"];
    let cfg = planted(tmp.path(), &dumps, 3, "");
    let env = [("LOAM_DEDUP_SCAN_BYTES", "1")];
    let local = tmp.path().join("run");
    let dist = same_as_local(&cfg, &local, &[], &[DISTRIBUTED, &in_process(2)], &env);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("dedup/_index/cluster/summary.json"))?)?;
    assert!(summary["exact_duplicate"].as_u64().is_some_and(|n| n >= 4), "{summary}");
    assert!(summary["near_duplicate"].as_u64().is_some_and(|n| n >= 3), "{summary}");
    // The freshest copy wins under keep = "latest": the same bytes again.
    let latest = tmp.path().join("latest");
    copy_tree(&local, &latest)?;
    let keep = ["dedup.keep=\"latest\""];
    same_as_local(&cfg, &latest, &keep, &[DISTRIBUTED, &in_process(3)], &env);
    // Without exact hashing or line dedup (empty relations on the way).
    let bare = tmp.path().join("bare");
    copy_tree(&local, &bare)?;
    let off = ["dedup.exact=false", "dedup.lines.enabled=false"];
    same_as_local(&cfg, &bare, &off, &[DISTRIBUTED, &in_process(2)], &env);
    Ok(())
}

#[test]
fn incremental_runs_give_the_local_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    // Run 1: two dumps, local. Run 2: the third, against run 1's index.
    let first = tmp.path().join("first");
    std::fs::create_dir_all(&first)?;
    let cfg1 = planted(&first, &["SIM-2024-01", "SIM-2024-02"], 2, "");
    ok(&dedup(&cfg1, &first.join("run"), "all", &[], &[]));
    let second = tmp.path().join("second");
    std::fs::create_dir_all(&second)?;
    let index = first.join("run/dedup/_index");
    let cfg2 = planted(
        &second,
        &["SIM-2024-03"],
        2,
        &format!("previous_index = [\"{}\"]", path_str(&index)),
    );
    let dist = same_as_local(
        &cfg2,
        &second.join("run"),
        &[],
        &[DISTRIBUTED, &in_process(2)],
        &[("LOAM_DEDUP_SCAN_BYTES", "1")],
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("dedup/_index/cluster/summary.json"))?)?;
    assert!(
        summary["documents_from_previous_index"].as_u64().is_some_and(|n| n > 0),
        "{summary}"
    );
    Ok(())
}

#[test]
fn three_worker_processes_give_the_local_bytes_over_a_network_boundary() -> TestResult {
    let workers = Workers::start(3, &[]);
    let tmp = tempfile::tempdir()?;
    let local = demo_run(&tmp.path().join("demo"));
    let cfg = repo().join("configs/demo.toml");
    let set = workers.set();
    let env = [("LOAM_DEDUP_SCAN_BYTES", "1")];
    let dist = same_as_local(&cfg, &local, &[], &[DISTRIBUTED, &set], &env);
    let plans = std::fs::read_to_string(dist.join("dedup/_index/cluster/_stats/distributed-plans.txt"))?;
    assert!(
        plans.contains("NetworkShuffleExec") && plans.contains("Stage 2"),
        "the plan crosses the network:\n{plans}"
    );
    assert!(
        plans.contains("LoamSinkExec"),
        "the workers write the relations:\n{plans}"
    );
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("dedup/_index/cluster/_stats/cluster.json"))?)?;
    assert_eq!(stats["workers"], 3);
    assert!(stats["shuffled_bytes"].as_u64().is_some_and(|b| b > 0), "{stats}");

    // The same on planted duplicates.
    let planted_dir = tmp.path().join("planted");
    std::fs::create_dir_all(&planted_dir)?;
    let planted_cfg = planted(&planted_dir, &["SIM-2024-01", "SIM-2024-02", "SIM-2024-03"], 3, "");
    same_as_local(&planted_cfg, &planted_dir.join("run"), &[], &[DISTRIBUTED, &set], &env);
    Ok(())
}

#[test]
fn a_worker_killed_mid_query_fails_the_step_clearly_and_a_rerun_gives_the_local_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cfg = planted(tmp.path(), &["SIM-2024-01", "SIM-2024-02", "SIM-2024-03"], 3, "");
    let local = tmp.path().join("run");
    ok(&dedup(&cfg, &local, "all", &[], &[]));
    let dist = tmp.path().join("dist");
    copy_tree(&local, &dist)?;

    // Every worker stops inside its first write; one is killed there.
    let workers = Workers::start(3, &[("LOAM_FAILPOINT", "dedup_worker_sink")]);
    let mut cmd = loam();
    let dir = format!("run.dir={}", dist.display());
    let set = workers.set();
    cmd.args([
        "dedup",
        "--config",
        path_str(&cfg),
        "--set",
        &dir,
        "--phase",
        "cluster",
        "--force",
    ])
    .args(["--set", DISTRIBUTED, "--set", &set])
    .env("LOAM_DEDUP_SCAN_BYTES", "1");
    let (tx, rx) = mpsc::channel();
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let stopped = 'wait: loop {
        assert!(Instant::now() < deadline, "no worker reached the failpoint");
        for (i, rx) in workers.stderr.iter().enumerate() {
            while let Ok(line) = rx.try_recv() {
                if line.contains("failpoint dedup_worker_sink") && line.contains("reached") {
                    break 'wait i;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut workers = workers;
    workers.children[stopped].kill()?;
    workers.children[stopped].wait()?;
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(o) => o?,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the cluster step hung after its worker was killed");
        }
    };
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("distributed dedup") && err.contains("worker") && err.contains("rerun"),
        "a clear error:\n{err}"
    );
    assert!(
        !dist.join("dedup/_index/cluster/_done/cluster").exists(),
        "nothing committed"
    );
    drop(workers);

    // Fresh workers, the same command: the local engine's bytes.
    let workers = Workers::start(3, &[]);
    let set = workers.set();
    let o = dedup(
        &cfg,
        &dist,
        "cluster",
        &[DISTRIBUTED, &set],
        &[("LOAM_DEDUP_SCAN_BYTES", "1")],
    );
    ok(&o);
    ok(&dedup(&cfg, &dist, "apply", &[], &[]));
    assert_same_outputs(
        &output_bytes(&dist.join("dedup")),
        &output_bytes(&local.join("dedup")),
        "after a rerun with fresh workers",
    );
    Ok(())
}

#[test]
fn a_memory_pool_too_small_fails_naming_the_setting() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cfg = planted(tmp.path(), &["SIM-2024-01", "SIM-2024-02"], 2, "");
    let run_dir = tmp.path().join("run");
    ok(&dedup(&cfg, &run_dir, "signatures", &[], &[]));
    let o = dedup(
        &cfg,
        &run_dir,
        "cluster",
        &[DISTRIBUTED, &in_process(2)],
        &[("LOAM_DEDUP_POOL_BYTES", "16384")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--memory-limit-mb") && stderr(&o).contains("dedup.memory_limit_mb"),
        "{}",
        stderr(&o)
    );
    Ok(())
}

#[test]
fn workers_bind_loopback_unless_asked() {
    let o = run(&["worker", "--listen", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--allow-remote"), "{}", stderr(&o));
}

#[test]
fn distributed_settings_are_checked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = format!("run.dir={}", tmp.path().display());
    let o = run(&[
        "dedup",
        "--config",
        "configs/demo.toml",
        "--set",
        &dir,
        "--set",
        DISTRIBUTED,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("dedup.workers"), "{}", stderr(&o));
    let o = run(&[
        "dedup",
        "--config",
        "configs/demo.toml",
        "--set",
        &dir,
        "--set",
        DISTRIBUTED,
        "--set",
        "dedup.workers=[\"127.0.0.1:50051\"]",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("http://HOST:PORT"), "{}", stderr(&o));
}
