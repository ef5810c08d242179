//! The `dedup` stage end to end: planted near-duplicates of real text at known Jaccard
//! levels, string-level dedup, the demo run (ledger, curve), identical bytes at 1 and 4
//! threads and after spilling, SIGKILL and rerun, and the incremental path.
mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use loam_pipeline::dedup::text::{for_each_shingle, words};

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn shingles(text: &str) -> HashSet<u64> {
    let (mut buf, mut spans) = (Vec::new(), Vec::new());
    words(text, &mut buf, &mut spans);
    let mut set = HashSet::new();
    for_each_shingle(&buf, &spans, 5, |h| {
        set.insert(h);
    });
    set
}

fn jaccard(a: &str, b: &str) -> f64 {
    let (x, y) = (shingles(a), shingles(b));
    x.intersection(&y).count() as f64 / x.union(&y).count().max(1) as f64
}

/// Replaces a share `rate` of the words (chosen by a fixed LCG) with new tokens.
fn edit_words(text: &str, rate: f64, seed: u64) -> String {
    let mut st = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut n = 0;
    text.split(' ')
        .map(|w| {
            st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if ((st >> 33) as f64 / (1u64 << 31) as f64) < rate {
                n += 1;
                format!("zq{n}x{seed}")
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn chapter(n: usize) -> String {
    let p = shared().join(format!("text/moby-dick/chapter_{n}.txt"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const HEADER: &str = "Home | Chapters | Search the Whaling Library";
const FOOTER: &str = "© The Whaling Library — all texts in the public domain";

fn page(body: &str) -> String {
    format!("{HEADER}\n\n{body}\n\n{FOOTER}")
}

fn write_jsonl(path: &Path, docs: &[(String, String)]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, text)| serde_json::json!({"id": id, "text": text}).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

/// A config over JSONL dumps under `input`, dedup reading ingest directly.
fn jsonl_config(dir: &Path, input: &Path, dumps: &[&str], extra: &str) -> PathBuf {
    let mut toml = format!("[run]\ndir = \"{}\"\nshards = 2\n", path_str(&dir.join("run")));
    for d in dumps {
        toml += &format!(
            "[[dumps]]\nname = \"{d}\"\ninputs = [\"{}\"]\n",
            path_str(&input.join(d))
        );
    }
    toml += &format!("[dedup]\nupstream = \"ingest\"\n{extra}\n");
    let cfg = dir.join("loam.toml");
    std::fs::write(&cfg, toml).expect("config");
    cfg
}

/// (id → (reason or "kept", dup_cluster)) over a dedup output folder.
fn decisions(dedup: &Path) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    for (sub, dropped) in [("", false), ("_dropped", true)] {
        for b in read_rows(&dedup.join(sub)) {
            let ids = b.column_by_name("id").expect("id").as_string::<i32>().clone();
            let cl = b
                .column_by_name("dup_cluster")
                .expect("dup_cluster")
                .as_primitive::<UInt64Type>()
                .clone();
            let reasons = dropped.then(|| b.column_by_name("reason").expect("reason").as_string::<i32>().clone());
            for i in 0..b.num_rows() {
                let r = reasons.as_ref().map_or("kept".to_owned(), |r| r.value(i).to_owned());
                out.insert(ids.value(i).to_owned(), (r, cl.value(i)));
            }
        }
    }
    out
}

#[test]
fn planted_near_duplicates_are_removed_by_jaccard_level() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in");
    // Dump 1: twelve real Moby-Dick chapters as pages with the same header and footer.
    let originals: Vec<(String, String)> = (1..=12).map(|n| (format!("ch{n}"), page(&chapter(n)))).collect();
    let mut d1 = originals.clone();
    // A page of nothing but site furniture: emptied by string-level dedup.
    d1.push(("nav-only".into(), format!("{HEADER}\n\n{FOOTER}")));
    write_jsonl(&input.join("SIM-2024-01/part.jsonl"), &d1);
    // Dump 2: copies of chapters 1–6 at known edit rates, and two new chapters.
    let body = |n: usize| chapter(n);
    let variants: Vec<(&str, String, String)> = vec![
        (
            "ch1-exact",
            "ch1".into(),
            page(&body(1).to_uppercase().replace(' ', "  ")),
        ),
        ("ch2-0.5pct", "ch2".into(), page(&edit_words(&body(2), 0.005, 2))),
        ("ch3-1pct", "ch3".into(), page(&edit_words(&body(3), 0.01, 3))),
        ("ch4-cut", "ch4".into(), page(&body(4)[..body(4).len() * 9 / 10])),
        ("ch5-10pct", "ch5".into(), page(&edit_words(&body(5), 0.10, 5))),
        ("ch6-25pct", "ch6".into(), page(&edit_words(&body(6), 0.25, 6))),
    ];
    let mut d2: Vec<(String, String)> = variants.iter().map(|(id, _, t)| (id.to_string(), t.clone())).collect();
    d2.push(("ch13".into(), page(&chapter(13))));
    d2.push(("ch14".into(), page(&chapter(14))));
    write_jsonl(&input.join("SIM-2024-02/part.jsonl"), &d2);

    let cfg = jsonl_config(tmp.path(), &input, &["SIM-2024-01", "SIM-2024-02"], "");
    ok(&run(&["ingest", "--config", path_str(&cfg)]));
    let o = run(&["dedup", "--config", path_str(&cfg)]);
    ok(&o);
    let got = decisions(&tmp.path().join("run/dedup"));
    let dump_of: BTreeMap<&str, &str> = d1
        .iter()
        .map(|(id, _)| (id.as_str(), "SIM-2024-01"))
        .chain(d2.iter().map(|(id, _)| (id.as_str(), "SIM-2024-02")))
        .collect();
    let of = |id: &str| {
        got.get(&format!("{}/{id}", dump_of.get(id).copied().unwrap_or("?")))
            .cloned()
    };
    let text_of = |id: &str| {
        originals
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, t)| t.clone())
            .expect("original")
    };
    for (id, base, text) in &variants {
        let j = jaccard(text, &text_of(base));
        let (reason, cluster) = of(id).ok_or("variant missing from the output")?;
        let (base_reason, base_cluster) = of(base).ok_or("original missing")?;
        assert_eq!(base_reason, "kept", "{base}: the earliest copy survives");
        if *id == "ch1-exact" {
            assert_eq!(reason, "exact_duplicate", "{id}");
        } else if j >= 0.85 {
            assert_eq!(reason, "near_duplicate", "{id}: Jaccard {j:.3}");
        } else {
            assert!(j <= 0.5, "{id}: planted Jaccard {j:.3} should be clearly low");
            assert_eq!(reason, "kept", "{id}: Jaccard {j:.3}");
        }
        assert_eq!(reason == "kept", cluster != base_cluster, "{id}: dup_cluster");
    }
    for n in [7, 8, 9, 10, 11, 12] {
        assert_eq!(of(&format!("ch{n}")).map(|d| d.0).as_deref(), Some("kept"));
    }
    assert_eq!(of("ch13").map(|d| d.0).as_deref(), Some("kept"));
    // The header and footer recur in more than 10 survivors: removed from every one.
    assert_eq!(of("nav-only").map(|d| d.0).as_deref(), Some("emptied_by_line_dedup"));
    let kept = read_rows(&tmp.path().join("run/dedup"));
    let texts = strings(&kept, "text");
    assert!(texts
        .iter()
        .flatten()
        .all(|t| !t.contains(HEADER) && !t.contains(FOOTER)));
    assert!(texts.iter().flatten().any(|t| t.contains("Call me Ishmael")));
    assert_eq!(
        total(&tmp.path().join("run"), "dedup", "counters", "dup_lines_removed"),
        2 * (12 + 2 + 2) + 2,
        "header and footer of the 16 surviving pages, and of the emptied one"
    );
    ledger_ok(&tmp.path().join("run"));
    let res = result_line(&o);
    let curve = res["dedup_curve"].as_array().ok_or("curve")?;
    assert_eq!(curve.len(), 2);
    assert_eq!(curve[0]["removed"], 0);
    assert_eq!(
        curve[1]["removed"], 4,
        "exact + three near duplicates across the two dumps"
    );
    Ok(())
}

fn demo_run(dir: &Path, threads: &str, env: &[(&str, &str)]) {
    let mut cmd = loam();
    cmd.args([
        "run",
        "configs/demo.toml",
        "--until",
        "dedup",
        "--run-dir",
        path_str(dir),
        "--threads",
        threads,
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("runs");
    ok(&o);
}

#[test]
fn demo_dedup_balances_curve_rises_and_bytes_do_not_depend_on_threads_or_spilling() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (one, four, spill) = (tmp.path().join("1"), tmp.path().join("4"), tmp.path().join("s"));
    demo_run(&one, "1", &[]);
    demo_run(&four, "4", &[]);
    // A 2 KB sort budget: every external sort spills dozens of runs.
    demo_run(&spill, "2", &[("LOAM_DEDUP_SORT_BYTES", "2048")]);
    ledger_ok(&one);
    let want = output_bytes(&one.join("dedup"));
    assert_same_outputs(&output_bytes(&four.join("dedup")), &want, "at 4 threads vs 1");
    assert_same_outputs(&output_bytes(&spill.join("dedup")), &want, "spilled vs in memory");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spill.join("dedup/_index/cluster/_stats/cluster.json"))?)?;
    assert!(
        summary["spilled_bytes"].as_u64().unwrap_or(0) > 0,
        "the tiny budget spilled"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(one.join("dedup/_index/cluster/summary.json"))?)?;
    let curve = summary["curve"].as_array().ok_or("curve")?;
    // Three simulated dumps and WEB-1997 survive the filter (the CC-MAIN-2014-35 pages do
    // not); dumps enter the curve in name order.
    let names: Vec<&str> = curve.iter().filter_map(|p| p["last_dump"].as_str()).collect();
    assert_eq!(names, ["SIM-2024-10", "SIM-2024-18", "SIM-2024-26", "WEB-1997"]);
    // Each re-crawl dump removes a larger share; WEB-1997 shares nothing with them, so its
    // documents only add to the denominator. What is removed never shrinks.
    let shares: Vec<f64> = curve.iter().filter_map(|p| p["removed_share"].as_f64()).collect();
    assert!(
        shares[..3].windows(2).all(|w| w[0] <= w[1]),
        "curve must not fall while re-crawls are added: {shares:?}"
    );
    assert!(shares[2] > shares[0], "re-crawls are removed: {shares:?}");
    assert!(shares[3] < shares[2], "{shares:?}");
    let removed: Vec<u64> = curve.iter().filter_map(|p| p["removed"].as_u64()).collect();
    assert!(removed.windows(2).all(|w| w[0] <= w[1]), "{removed:?}");
    // The curve's end equals what the stage dropped as duplicates.
    let exact = total(&one, "dedup", "dropped", "exact_duplicate");
    let near = total(&one, "dedup", "dropped", "near_duplicate");
    assert_eq!(curve[3]["removed"].as_u64(), Some(exact + near));
    assert!(exact > 0 && near > 0);
    Ok(())
}

fn dedup_cmd(dir: &Path) -> std::process::Command {
    let mut c = loam();
    c.args([
        "dedup",
        "--config",
        "configs/demo.toml",
        "--set",
        &format!("run.dir={}", dir.display()),
        "--threads",
        "2",
    ])
    .env("LOAM_BATCH_ROWS", "8");
    c
}

#[test]
fn killed_dedup_reruns_to_the_same_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let clean = tmp.path().join("clean");
    demo_run(&clean, "2", &[]);
    // Dedup again under small batches, for the byte comparison below.
    std::fs::remove_dir_all(clean.join("dedup"))?;
    ok(&dedup_cmd(&clean).output()?);
    let want = output_bytes(&clean.join("dedup"));
    for point in [
        "after_signatures@1",
        "before_cluster_marker",
        "mid_output@2",
        "after_marker@0",
    ] {
        let dir = tmp.path().join(point.replace('@', "-"));
        std::fs::create_dir_all(&dir)?;
        for stage in ["ingest", "filter"] {
            copy_dir(&clean.join(stage), &dir.join(stage))?;
        }
        kill_at_failpoint(dedup_cmd(&dir), point);
        let o = dedup_cmd(&dir).output()?;
        ok(&o);
        assert_same_outputs(
            &output_bytes(&dir.join("dedup")),
            &want,
            &format!("after a kill at {point}"),
        );
        ledger_ok(&dir);
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// Documents a dedup run did not drop as duplicates (kept, or emptied by line removal).
fn survivors(run: &Path) -> BTreeSet<String> {
    decisions(&run.join("dedup"))
        .into_iter()
        .filter(|(_, (r, _))| r != "exact_duplicate" && r != "near_duplicate")
        .map(|(id, _)| id)
        .collect()
}

fn demo_config(dir: &Path, dumps: &[&str], extra: &str) -> PathBuf {
    let demo = repo().join("data/demo");
    let mut toml = format!("[run]\ndir = \"{}\"\nshards = 3\n", path_str(dir));
    for d in dumps {
        toml += &format!(
            "[[dumps]]\nname = \"{d}\"\ninputs = [\"{}\"]\n",
            path_str(&demo.join(d))
        );
    }
    toml += &format!("[dedup]\nupstream = \"ingest\"\n{extra}\n");
    let cfg = dir.with_extension("toml");
    std::fs::write(&cfg, toml).expect("config");
    cfg
}

#[test]
fn incremental_dump_gives_the_survivors_of_a_full_run() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let all = ["SIM-2024-10", "SIM-2024-18", "SIM-2024-26"];
    let (full, early, late) = (
        tmp.path().join("full"),
        tmp.path().join("early"),
        tmp.path().join("late"),
    );
    for (dir, dumps, extra) in [
        (&full, &all[..], String::new()),
        (&early, &all[..2], String::new()),
        (
            &late,
            &all[2..],
            format!("previous_index = [\"{}\"]", path_str(&early.join("dedup/_index"))),
        ),
    ] {
        let cfg = demo_config(dir, dumps, &extra);
        ok(&run(&["ingest", "--config", path_str(&cfg)]));
        ok(&run(&["dedup", "--config", path_str(&cfg)]));
    }
    let late_summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(late.join("dedup/_index/cluster/summary.json"))?)?;
    assert_eq!(
        late_summary["documents_from_previous_index"],
        sum_field(&early, "dedup", "docs_in")
    );
    assert_eq!(late_summary["bridged_previous_survivors"], 0);
    let mut incremental = survivors(&early);
    incremental.extend(survivors(&late));
    assert_eq!(incremental, survivors(&full));
    // The late run read only its own dump's texts.
    assert_eq!(sum_field(&late, "dedup", "docs_in"), sum_field(&late, "ingest", "kept"));
    // The late index now holds both runs: it can serve the next dump in turn.
    assert!(std::fs::read_dir(late.join("dedup/_index/previous"))?.count() > 0);
    // Adding an older dump against a newer index is refused, naming the dumps.
    let bad = demo_config(
        &tmp.path().join("bad"),
        &all[..1],
        &format!("previous_index = [\"{}\"]", path_str(&late.join("dedup/_index"))),
    );
    ok(&run(&["ingest", "--config", path_str(&bad)]));
    let o = run(&["dedup", "--config", path_str(&bad)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("SIM-2024-10") && stderr(&o).contains("chronological"),
        "{}",
        stderr(&o)
    );
    Ok(())
}

#[test]
fn dedup_before_its_upstream_or_with_a_damaged_index_fails_clearly() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("r");
    let o = run(&["dedup", "--run", path_str(&dir)]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("filter"),
        "names the missing upstream: {}",
        stderr(&o)
    );
    let o = run(&["dedup", "--run", path_str(&dir), "--set", "dedup.minhash.bands=0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("dedup.minhash"), "{}", stderr(&o));
    // A truncated decisions file: a clear error naming it, no panic.
    let cfg = demo_config(&dir, &["SIM-2024-10"], "");
    ok(&run(&["ingest", "--config", path_str(&cfg)]));
    ok(&run(&["dedup", "--config", path_str(&cfg), "--phase", "signatures"]));
    ok(&run(&["dedup", "--config", path_str(&cfg), "--phase", "cluster"]));
    let dec = dir.join("dedup/_index/cluster/part-00001-of-00003.decisions");
    let bytes = std::fs::read(&dec)?;
    std::fs::write(&dec, &bytes[..bytes.len() - 5])?;
    let o = run(&["dedup", "--config", path_str(&cfg), "--phase", "apply"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("part-00001-of-00003.decisions") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    ok(&run(&[
        "dedup",
        "--config",
        path_str(&cfg),
        "--phase",
        "cluster",
        "--force",
    ]));
    ok(&run(&["dedup", "--config", path_str(&cfg), "--phase", "apply"]));
    ledger_ok(&dir);
    Ok(())
}
