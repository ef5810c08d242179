//! The `filter` stage end to end: on the demo run, crash-safe, thread-count independent,
//! blocklist, and a clear error when ingest has not run.
mod common;
use common::*;

use std::path::Path;

fn filter_args(dir: &Path) -> Vec<String> {
    [
        "filter",
        "--config",
        "configs/demo.toml",
        "--set",
        &format!("run.dir={}", dir.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn ingested(dir: &Path) {
    ok(&demo_ingest(dir, &[]));
}

#[test]
fn demo_filter_keeps_english_and_chinese_with_signals() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("r");
    let o = run(&[
        "run",
        "configs/demo.toml",
        "--until",
        "dedup",
        "--run-dir",
        dir.to_str().ok_or("path")?,
    ]);
    ok(&o);
    let res = result_line(&o);
    assert_eq!(res["stages"][1]["stage"], "filter");
    assert_eq!(
        res["stages"][1]["docs_in"], res["stages"][0]["kept"],
        "filter reads what ingest kept"
    );
    let kept = read_rows(&dir.join("filter"));
    let langs = strings(&kept, "language");
    assert!(langs.len() > 100, "kept {}", langs.len());
    assert!(
        langs.iter().all(|l| matches!(l.as_deref(), Some("en" | "zh"))),
        "{langs:?}"
    );
    assert!(
        langs.iter().any(|l| l.as_deref() == Some("zh")),
        "Chinese poems survive"
    );
    let dropped = read_rows(&dir.join("filter/_dropped"));
    let reasons = strings(&dropped, "reason");
    // UDHR translations in other languages are dropped for their language, with its code.
    assert!(reasons.iter().any(|r| r.as_deref() == Some("language_not_kept")));
    let details = strings(&dropped, "detail");
    assert!(
        details.iter().flatten().any(|d| d.starts_with("language de")),
        "{details:?}"
    );
    assert!(total(&dir, "filter", "counters", "kept_language_en") > 0);
    ledger_ok(&dir);
    Ok(())
}

fn kill_filter_at(dir: &Path, failpoint: &str) {
    let mut cmd = loam();
    cmd.args(filter_args(dir))
        .args(["--threads", "1"])
        .env("LOAM_BATCH_ROWS", "8");
    kill_at_failpoint(cmd, failpoint);
}

#[test]
fn killed_filter_reruns_to_the_same_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let clean = tmp.path().join("clean");
    ingested(&clean);
    let o = loam()
        .args(filter_args(&clean))
        .args(["--threads", "1"])
        .env("LOAM_BATCH_ROWS", "8")
        .output()?;
    ok(&o);
    let want = output_bytes(&clean.join("filter"));
    for point in ["mid_output@1", "after_output@2", "after_stats@0", "after_marker@3"] {
        let dir = tmp.path().join(point.replace('@', "_"));
        ingested(&dir);
        kill_filter_at(&dir, point);
        let o = loam()
            .args(filter_args(&dir))
            .args(["--threads", "1"])
            .env("LOAM_BATCH_ROWS", "8")
            .output()?;
        ok(&o);
        let got = output_bytes(&dir.join("filter"));
        assert_same_outputs(&got, &want, &format!("after kill at {point} and rerun"));
        ledger_ok(&dir);
    }
    Ok(())
}

#[test]
fn filter_output_is_identical_at_1_and_4_threads() -> TestResult {
    let tmp = tempfile::tempdir()?;
    for of in ["4", "1"] {
        let mut outs = Vec::new();
        for threads in ["1", "4"] {
            let dir = tmp.path().join(format!("of{of}-t{threads}"));
            ok(&demo_ingest(&dir, &["--of", of]));
            let o = loam()
                .args(filter_args(&dir))
                .args(["--of", of, "--threads", threads])
                .output()?;
            ok(&o);
            outs.push(output_bytes(&dir.join("filter")));
        }
        assert_same_outputs(&outs[0], &outs[1], &format!("between 1 and 4 threads (--of {of})"));
    }
    Ok(())
}

#[test]
fn blocklisted_domains_are_dropped_with_their_reason() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("r");
    ingested(&dir);
    let list = tmp.path().join("blocked.txt");
    std::fs::write(&list, "# test list\nwhaling-library.example\n")?;
    let o = loam()
        .args(filter_args(&dir))
        .args(["--set", &format!("filter.blocklist={}", list.display())])
        .output()?;
    ok(&o);
    let blocked = total(&dir, "filter", "dropped", "url_blocklist");
    assert!(blocked > 0, "Moby-Dick pages are on books.whaling-library.example");
    let kept = read_rows(&dir.join("filter"));
    assert!(strings(&kept, "url")
        .iter()
        .flatten()
        .all(|u| !u.contains("whaling-library")));
    ledger_ok(&dir);
    Ok(())
}

#[test]
fn filter_before_ingest_fails_with_the_fix() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let o = loam().args(filter_args(&tmp.path().join("empty"))).output()?;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("run that stage first"), "{}", stderr(&o));
    // A missing model names the setting to fix.
    let dir = tmp.path().join("r");
    ingested(&dir);
    let o = loam()
        .args(filter_args(&dir))
        .args(["--set", "filter.lid_model=/nonexistent/lid.ftz"])
        .output()?;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("filter.lid_model"), "{}", stderr(&o));
    Ok(())
}
