//! `loam report` on the demo run: report.json against its golden file, the page in a real
//! browser (headless Chromium with the network cut), the dataset card, and a report
//! rebuilt from the run directory alone.
//!
//! The golden file is regenerated, never edited: `LOAM_REGENERATE_GOLDEN=1 cargo test
//! --test report`. The screenshot stays under `target/tmp/report-demo/` (the path is
//! printed) for CI to keep.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{ok, repo, result_line, run, stderr, TestResult};
use serde_json::Value;

const GOLDEN: &str = "tests/golden/report.demo.json";

/// Where this file's demo run and browser artifacts live (kept after the tests).
fn work() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-demo")
}

/// The demo run, once for every test here; training shortened to 50 steps (the report
/// reads what training wrote, however long it ran).
fn demo() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = work().join("demo");
        let _ = std::fs::remove_dir_all(work());
        let o = run(&[
            "run",
            "configs/demo.toml",
            "--run-dir",
            dir.to_str().unwrap_or_default(),
            "--set",
            "train.tokens=44800",
        ]);
        ok(&o);
        let line = result_line(&o);
        assert_eq!(line["ledger"], "balanced");
        assert!(
            line["report"]["html"].is_string(),
            "the DAG's last step wrote the report: {line}"
        );
        dir
    })
}

fn read_json(path: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

/// report.json with what legitimately differs between runs taken out: timings, the
/// checkout's and the run's paths (and so the config's hash), and the trainer's floats
/// (its matrix kernels pick instructions by CPU, so losses differ in the last digits
/// across machines; the number of points and the token counts stay).
fn stable(mut r: Value, run_dir: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    for s in r["header"]["seconds"].as_array_mut().ok_or("header.seconds")? {
        s["seconds"] = Value::Null;
    }
    r["header"]["config_sha256"] = "<volatile>".into();
    let t = &mut r["train"];
    for k in ["final_loss", "val_loss", "val_bpb"] {
        assert!(t[k].as_f64().is_some_and(f64::is_finite), "train.{k} = {}", t[k]);
        t[k] = Value::Null;
    }
    let curve = t["curve"].as_array().ok_or("train.curve")?;
    assert!(curve.iter().all(|p| p.as_array().is_some_and(|p| p.len() == 4)));
    t["curve"] = curve.len().into();
    let val = t["val_curve"].as_array().ok_or("train.val_curve")?;
    assert!(!val.is_empty(), "no validation points");
    t["val_curve"] = val.len().into();
    let text = serde_json::to_string_pretty(&r)?;
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned()).display().to_string();
    let text = text
        .replace(&canon(run_dir), "<RUN>")
        .replace(&canon(&repo()), "<REPO>");
    Ok(serde_json::from_str(&text)?)
}

#[test]
fn demo_report_json_matches_its_golden_file() -> TestResult {
    let dir = demo();
    let got = stable(read_json(&dir.join("report/report.json"))?, dir)?;
    assert_eq!(got["schema"], "loam.report/1");
    let golden = repo().join(GOLDEN);
    if std::env::var_os("LOAM_REGENERATE_GOLDEN").is_some() {
        std::fs::write(&golden, serde_json::to_string_pretty(&got)? + "\n")?;
        eprintln!("regenerated {}", golden.display());
    }
    let want = read_json(&golden).map_err(|e| format!("{GOLDEN}: {e} (LOAM_REGENERATE_GOLDEN=1 writes it)"))?;
    if got != want {
        // Name the first differing section, so a change is easy to judge.
        let keys: Vec<&String> = want.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        let first = keys.iter().find(|k| got[k.as_str()] != want[k.as_str()]);
        panic!(
            "report.json differs from {GOLDEN} in {first:?}; if the change is intended, regenerate it with LOAM_REGENERATE_GOLDEN=1\n got: {}",
            first.map(|k| got[k.as_str()].to_string()).unwrap_or_default()
        );
    }
    Ok(())
}

#[test]
fn report_is_rebuilt_from_the_run_dir_alone_byte_for_byte() -> TestResult {
    let dir = demo();
    let out = work().join("again");
    let o = run(&[
        "report",
        "--run",
        dir.to_str().ok_or("path")?,
        "--out",
        out.to_str().ok_or("path")?,
    ]);
    ok(&o);
    for f in ["report.json", "report.html", "README.md"] {
        assert_eq!(
            std::fs::read(out.join(f))?,
            std::fs::read(dir.join("report").join(f))?,
            "{f} differs between the DAG step and `loam report`"
        );
    }
    // The dataset card: Hugging Face front matter, then the datasheet's sections.
    let card = std::fs::read_to_string(out.join("README.md"))?;
    let front = card
        .strip_prefix("---\n")
        .and_then(|c| c.split_once("\n---\n"))
        .ok_or("no YAML front matter")?
        .0;
    for k in ["language:", "size_categories:", "license:"] {
        assert!(front.contains(k), "front matter lacks {k}:\n{front}");
    }
    assert!(front.contains("- \"en\""), "{front}");
    for h in [
        "## Motivation",
        "## Composition",
        "## Collection process",
        "## Uses",
        "## Distribution",
        "## Maintenance",
    ] {
        assert!(card.contains(h), "card lacks {h}");
    }
    assert!(card.contains("not stated"));
    // A directory that is not a run is named, with the fix.
    let o = run(&["report", "--run", work().join("nowhere").to_str().ok_or("path")?]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("config.resolved.toml") && stderr(&o).contains("--run"),
        "{}",
        stderr(&o)
    );
    Ok(())
}

fn chromium() -> String {
    let found = std::env::var("LOAM_CHROMIUM").ok().or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find(|c| {
                Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .map(str::to_owned)
    });
    found.unwrap_or_else(|| {
        panic!("the report's browser test needs Chromium: apt-get install chromium fonts-noto-cjk (.ci/run does), or set LOAM_CHROMIUM")
    })
}

/// Headless Chromium on `page` with no network (a fresh network namespace: `unshare
/// -rn`), `what` being `--dump-dom` or `--screenshot=FILE`; returns (stdout, stderr).
fn browse(page: &Path, what: &str) -> Result<(String, String), Box<dyn std::error::Error>> {
    let profile = tempfile::tempdir()?;
    let o = Command::new("unshare")
        .args(["--net", "--map-root-user", &chromium()])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(what)
        .arg(format!("file://{}", page.canonicalize()?.display()))
        .output()?;
    assert!(
        o.status.success(),
        "chromium failed ({:?}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    Ok((
        String::from_utf8(o.stdout)?,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

/// The page's console messages (CSP violations, script errors) as Chromium logs them;
/// Chromium's own pages (`source: chrome://…`, e.g. a "slow network" note of its new-tab
/// UI) are not the page's.
fn console(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(":CONSOLE") && !l.contains("source: chrome://"))
        .collect()
}

#[test]
fn report_html_renders_offline_in_chromium_with_every_section_and_chart() -> TestResult {
    let dir = demo();
    let page = dir.join("report/report.html");
    let html = std::fs::read_to_string(&page)?;
    let report = read_json(&dir.join("report/report.json"))?;

    let (dom, log) = browse(&page, "--dump-dom")?;
    assert!(console(&log).is_empty(), "the page logged: {:?}", console(&log));
    // Every stage of the demo has its section (no sweep ran, so none is drawn for it).
    for id in [
        "header",
        "funnel",
        "ingest",
        "filter",
        "dedup",
        "quality",
        "remix",
        "tokenize",
        "score",
        "train",
        "datasheet",
        "provenance",
    ] {
        assert!(dom.contains(&format!(r#"<section id="{id}">"#)), "section {id} missing");
    }
    assert!(!dom.contains(r#"<section id="sweep">"#));
    // Every chart the demo's data supports is drawn (a <svg> in its figure), including
    // one per-rule histogram pair per rule quantity and one quality histogram per model.
    let mut charts: Vec<String> = [
        "stage-seconds",
        "funnel-docs",
        "funnel-bytes",
        "ingest-formats",
        "ingest-reasons",
        "filter-reasons",
        "filter-reasons-bytes",
        "filter-languages",
        "dedup-curve",
        "dedup-split",
        "dedup-clusters",
        "remix-shares",
        "remix-epochs",
        "tokens-per-doc",
        "bytes-per-token-language",
        "bytes-per-token-domain",
        "bytes-per-token-dump",
        "score-p",
        "train-loss",
        "train-bpb",
        "train-lr",
        "train-gradnorm",
    ]
    .map(str::to_owned)
    .to_vec();
    let rules = report["filter"]["rule_histograms"].as_array().map_or(0, Vec::len);
    assert!(rules >= 8, "{rules} per-rule histograms");
    for i in 0..rules / 2 {
        charts.push(format!("filter-rule-{i}"));
        charts.push(format!("filter-rule-{i}-bytes"));
    }
    for i in 0..2 {
        charts.push(format!("filter-hist-{i}"));
        charts.push(format!("filter-hist-{i}-bytes"));
    }
    charts.push("quality-hist-0".into());
    for c in &charts {
        assert!(
            dom.contains(&format!(r#"<figure data-chart="{c}"><svg"#)),
            "chart {c} not drawn"
        );
    }
    // What the file holds, the browser built: no figure or chart lost to a parse error.
    for tag in ["<figure", "<svg", "<section", "<table"] {
        assert_eq!(dom.matches(tag).count(), html.matches(tag).count(), "{tag} count");
    }
    // The embedded report.json is the file's, intact.
    let start = html.find(r#"id="report-data">"#).ok_or("no data block")? + r#"id="report-data">"#.len();
    let end = start + html[start..].find("</script>").ok_or("data block unterminated")?;
    assert_eq!(
        serde_json::from_str::<Value>(&html[start..end].replace("<\\/", "</"))?,
        report
    );

    let shot = work().join("report-1280.png");
    let (_, log) = browse(&page, &format!("--screenshot={}", shot.display()))?;
    assert!(console(&log).is_empty(), "the page logged: {:?}", console(&log));
    let png = std::fs::read(&shot)?;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert_eq!(width, 1280);
    println!("report screenshot (CI artifact): {}", shot.display());

    // The console check can fail: the same page with one inline style attribute, which
    // its Content-Security-Policy forbids, is reported.
    let bad = work().join("csp-violation.html");
    std::fs::write(&bad, html.replacen("<body>", r#"<body><p style="color:red">x</p>"#, 1))?;
    let (_, log) = browse(&bad, "--dump-dom")?;
    assert!(
        console(&log).iter().any(|l| l.contains("Content Security Policy")),
        "a CSP violation went unreported: {log}"
    );
    Ok(())
}
