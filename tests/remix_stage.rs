//! The `remix` stage end to end on a multi-domain corpus of real text
//! (tests/py/make_remix_corpus.py: SOTU, Moby-Dick, Chinese poems, the Debian handbook, the
//! UDHR, SpamAssassin ham and spam, under real-looking URLs): achieved shares on target in
//! bytes (Bernoulli: within 0.5 points; exact: within one document), the epoch cap and its
//! redistribution, the same rows at any sharding and thread count, SIGKILLs rerun to the
//! same bytes, the ledger balanced with copies, and bad mixtures refused naming the domain.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::Array;

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).expect("json")
}

/// Writes the corpus (once per test) and a config remixing its ingest output.
fn setup(dir: &Path, per_file: usize, shards: usize, remix: &str) -> PathBuf {
    let corpus = dir.join("corpus");
    if !corpus.join("blocklist.txt").exists() {
        let o = std::process::Command::new("python3")
            .arg(repo().join("tests/py/make_remix_corpus.py"))
            .arg(shared())
            .arg(&corpus)
            .arg(per_file.to_string())
            .output()
            .expect("python3 runs");
        assert!(o.status.success(), "corpus: {}", String::from_utf8_lossy(&o.stderr));
    }
    let cfg = dir.join(format!("remix-{shards}.toml"));
    std::fs::write(
        &cfg,
        format!(
            r#"[run]
dir = "run-{shards}"
shards = {shards}
seed = 11

[[dumps]]
name = "MIX-2024"
inputs = ["corpus/*.jsonl.gz"]

[remix]
upstream = "ingest"
assign = ["table", "blocklist"]
blocklist = "corpus/blocklist.txt"
{remix}
"#
        ),
    )
    .expect("config");
    cfg
}

const WEIGHTS: &str = r#"
[remix.target]
kind = "weights"
weights = { politics = 0.25, literature = 0.2, software = 0.25, law = 0.01, forum = 0.09, blocked = 0.05, other = 0.15 }
"#;

fn remix(cfg: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["remix", "--config", path_str(cfg)];
    args.extend_from_slice(extra);
    run(&args)
}

fn ingest(cfg: &Path) {
    ok(&run(&["ingest", "--config", path_str(cfg)]));
}

/// (mix_domain, id, repeat, text) of every kept row.
fn rows(dir: &Path) -> Vec<(String, String, u32, String)> {
    let batches = read_rows(dir);
    let mut out = Vec::new();
    for b in &batches {
        let s = |c: &str| {
            b.column_by_name(c)
                .unwrap_or_else(|| panic!("column {c}"))
                .as_string::<i32>()
                .clone()
        };
        let (d, id, text) = (s("mix_domain"), s("id"), s("text"));
        let rep = b
            .column_by_name("repeat")
            .expect("repeat")
            .as_primitive::<UInt32Type>()
            .clone();
        for i in 0..b.num_rows() {
            out.push((
                d.value(i).to_owned(),
                id.value(i).to_owned(),
                rep.value(i),
                text.value(i).to_owned(),
            ));
        }
    }
    out
}

fn byte_shares(rows: &[(String, String, u32, String)]) -> BTreeMap<String, f64> {
    let mut m: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        *m.entry(r.0.clone()).or_default() += r.3.len() as f64;
    }
    let total: f64 = m.values().sum();
    m.values_mut().for_each(|v| *v /= total);
    m
}

#[test]
fn mixture_is_hit_in_bytes_and_the_cap_redistributes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cfg = setup(tmp.path(), 2000, 4, WEIGHTS);
    ingest(&cfg);
    let run_dir = tmp.path().join("run-4");
    let o = remix(&cfg, &[]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("remix key") && err.contains("achieved"),
        "the table is printed:\n{err}"
    );
    let plan = read_json(&run_dir.join("remix/_stats/plan.json"));
    let keys = plan["keys"].as_array().ok_or("keys")?;
    let with_docs = keys.iter().filter(|k| k["docs_in"].as_u64().unwrap_or(0) > 0).count();
    assert!(with_docs >= 7, "≥ 6 real domains and other: {keys:?}");
    assert!(plan["docs_in"].as_u64().unwrap_or(0) >= 10_000, "{}", plan["docs_in"]);
    let src = &plan["assignment_sources"];
    assert!(
        src["table"].as_u64().unwrap_or(0) > 0
            && src["blocklist"].as_u64().unwrap_or(0) > 0
            && src["default"].as_u64().unwrap_or(0) > 0,
        "{src}"
    );
    // No key is capped with these weights: achieved within 0.5 points of target, and the
    // plan's achieved shares are what the Parquet rows hold.
    let got = byte_shares(&rows(&run_dir.join("remix")));
    for k in keys {
        let name = k["key"].as_str().ok_or("key")?;
        assert_eq!(k["capped"], false, "{name}");
        let target = k["target_share"].as_f64().ok_or("t")?;
        let achieved = k["achieved_share"].as_f64().ok_or("a")?;
        assert!(
            (target - achieved).abs() <= 0.005,
            "{name}: target {target} achieved {achieved}"
        );
        let written = got.get(name).copied().unwrap_or(0.0);
        assert!(
            (written - achieved).abs() < 1e-9,
            "{name}: rows {written} plan {achieved}"
        );
        assert!(k["epochs"].as_f64().unwrap_or(9.0) <= 4.0 + 0.5, "{name}: {k}");
    }
    ledger_ok(&run_dir);
    let st = stats(&run_dir, "remix");
    let rows_out: u64 = st
        .iter()
        .filter(|s| s["stage"] == "remix")
        .filter_map(|s| s["rows_out"].as_u64())
        .sum();
    assert_eq!(rows_out, plan["rows_out"].as_u64().ok_or("rows_out")?);

    // Exact mode: each key's quota met to within one document's bytes.
    let o = remix(&cfg, &["--force", "--set", "remix.mode=\"exact\""]);
    ok(&o);
    let plan = read_json(&run_dir.join("remix/_stats/plan.json"));
    let total = plan["total_out"].as_f64().ok_or("total")?;
    let biggest = rows(&run_dir.join("remix"))
        .iter()
        .map(|r| r.3.len())
        .max()
        .unwrap_or(0) as f64;
    for k in plan["keys"].as_array().ok_or("keys")? {
        let planned = k["planned_share"].as_f64().ok_or("p")?;
        let achieved = k["achieved_share"].as_f64().ok_or("a")?;
        assert!(
            (planned - achieved).abs() * total <= biggest,
            "{}: planned {planned} achieved {achieved}",
            k["key"]
        );
    }
    ledger_ok(&run_dir);

    // law (the UDHR, ~300 documents) asked for 30%: capped at 4 epochs, the excess to the
    // others in proportion to their weights, the warning says so.
    let o = remix(&cfg, &["--force", "--set", "remix.target.weights.law=0.3"]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("law capped at 4.00 epochs") && err.contains("excess to"),
        "{err}"
    );
    let plan = read_json(&run_dir.join("remix/_stats/plan.json"));
    let law = plan["keys"]
        .as_array()
        .ok_or("keys")?
        .iter()
        .find(|k| k["key"] == "law")
        .ok_or("law")?;
    assert_eq!(law["capped"], true);
    assert!((law["rate"].as_f64().ok_or("rate")? - 4.0).abs() < 1e-9, "{law}");
    let copies = law["copies"].as_u64().ok_or("copies")?;
    assert_eq!(
        copies,
        4 * law["docs_in"].as_u64().ok_or("docs")?,
        "rate 4 = four copies each: {law}"
    );
    let politics = plan["keys"]
        .as_array()
        .ok_or("keys")?
        .iter()
        .find(|k| k["key"] == "politics")
        .ok_or("p")?;
    assert_eq!(politics["received_excess"], true);
    assert!(politics["planned_share"].as_f64() > politics["target_share"].as_f64());
    // Copies of a document are spread by the order hash, not written side by side.
    let r = rows(&run_dir.join("remix"));
    let adjacent = r.windows(2).filter(|w| w[0].1 == w[1].1).count();
    assert!(
        adjacent * 100 < r.len(),
        "{adjacent} adjacent repeats of {} rows",
        r.len()
    );
    ledger_ok(&run_dir);
    Ok(())
}

#[test]
fn same_rows_at_any_sharding_and_thread_count_and_after_kills() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mix = format!("mode = \"exact\"\nwithin = \"random\"\n{WEIGHTS}");
    let one = setup(tmp.path(), 600, 1, &mix);
    let four = setup(tmp.path(), 600, 4, &mix);
    ingest(&one);
    ingest(&four);
    ok(&remix(&one, &[]));
    ok(&remix(&four, &["--threads", "1"]));
    let sorted = |dir: &Path| {
        let mut r = rows(dir);
        r.sort();
        r
    };
    let a = sorted(&tmp.path().join("run-1/remix"));
    let b = sorted(&tmp.path().join("run-4/remix"));
    assert!(!a.is_empty());
    assert!(
        a == b,
        "--of 1 and --of 4 give the same rows ({} vs {})",
        a.len(),
        b.len()
    );
    let want = output_bytes(&tmp.path().join("run-4/remix"));
    ok(&remix(&four, &["--force", "--threads", "4"]));
    assert_same_outputs(&output_bytes(&tmp.path().join("run-4/remix")), &want, "at 4 threads");
    // SIGKILL after an assign shard, before the plan's marker and mid-output; each rerun
    // gives the same bytes. Small batches (so a shard stops between two) change the Parquet
    // page layout, so the reference is made with them too.
    let small_batches = |extra: &[&str]| {
        let mut c = loam();
        c.args(["remix", "--config", path_str(&four), "--threads", "1"])
            .args(extra)
            .env("LOAM_BATCH_ROWS", "50");
        c
    };
    let o = small_batches(&["--force"]).output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = output_bytes(&tmp.path().join("run-4/remix"));
    for point in ["after_remix_assign@1", "before_remix_plan_marker", "mid_output@2"] {
        std::fs::remove_dir_all(tmp.path().join("run-4/remix"))?;
        kill_at_failpoint(small_batches(&[]), point);
        let o = small_batches(&[]).output()?;
        assert!(
            o.status.success(),
            "rerun after {point}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_same_outputs(
            &output_bytes(&tmp.path().join("run-4/remix")),
            &want,
            &format!("after a kill at {point}"),
        );
        ledger_ok(&tmp.path().join("run-4"));
    }
    Ok(())
}

#[test]
fn bad_mixtures_exit_2_naming_the_domain() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cfg = setup(tmp.path(), 3000, 2, WEIGHTS);
    ingest(&cfg);
    let cases: [(&[&str], &str); 4] = [
        (&["--set", "remix.target.weights.poetry=0.1"], "\"poetry\""),
        (&["--set", "remix.target.weights.education=0.1"], "\"education\""),
        (
            &[
                "--set",
                "remix.on_cap=\"error\"",
                "--set",
                "remix.target.weights.law=0.5",
            ],
            "law needs",
        ),
        (&["--set", "remix.blocklist=\"corpus/missing.txt\""], "missing.txt"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["--force"];
        args.extend_from_slice(extra);
        let o = remix(&cfg, &args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want),
            "{extra:?} should name {want}: {}",
            stderr(&o)
        );
    }
    // The joint key: shares over domain × language (ingest output has no language yet:
    // "unknown"), with weights naming joint keys.
    let o = remix(
        &cfg,
        &[
            "--force",
            "--set",
            "remix.key=\"domain_language\"",
            "--set",
            "remix.target={ kind = \"weights\", weights = { \"politics/unknown\" = 0.5, \"software/unknown\" = 0.5 } }",
        ],
    );
    ok(&o);
    let plan = read_json(&tmp.path().join("run-2/remix/_stats/plan.json"));
    let keys = plan["keys"].as_array().ok_or("keys")?;
    assert!(
        keys.iter()
            .all(|k| k["key"].as_str().is_some_and(|s| s.ends_with("/unknown"))),
        "{keys:?}"
    );
    for k in keys {
        let want = if k["key"] == "politics/unknown" || k["key"] == "software/unknown" {
            0.5
        } else {
            0.0
        };
        assert!((k["target_share"].as_f64().ok_or("t")? - want).abs() < 1e-9, "{k}");
    }
    // A weights target with an empty table: refused before any work.
    let o = remix(&cfg, &["--set", "remix.target.weights={}"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    Ok(())
}

#[test]
fn demo_remixes_toward_its_stated_mixture() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("run");
    let o = demo_until(&dir, "remix", &[]);
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("remix key"), "{err}");
    let plan = read_json(&dir.join("remix/_stats/plan.json"));
    let keys: Vec<&str> = plan["keys"]
        .as_array()
        .ok_or("keys")?
        .iter()
        .filter_map(|k| k["key"].as_str())
        .collect();
    for d in ["law", "literature", "politics"] {
        assert!(keys.contains(&d), "{d} in {keys:?}");
    }
    ledger_ok(&dir);
    // The demo fills quotas by quality (exact mode, within = "quality"): the politics
    // documents it drops score below every politics document it keeps.
    let quality_of = |dir: &Path| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        for b in read_rows(dir) {
            let d = b
                .column_by_name("mix_domain")
                .ok_or("mix_domain")?
                .as_string::<i32>()
                .clone();
            let q = b
                .column_by_name("quality_score")
                .ok_or("quality_score")?
                .as_primitive::<arrow_array::types::Float32Type>()
                .clone();
            out.extend(
                (0..b.num_rows())
                    .filter(|&i| d.value(i) == "politics" && q.is_valid(i))
                    .map(|i| q.value(i)),
            );
        }
        Ok(out)
    };
    let kept = quality_of(&dir.join("remix"))?;
    let dropped = quality_of(&dir.join("remix/_dropped"))?;
    assert!(
        !kept.is_empty() && !dropped.is_empty(),
        "politics is downsampled in the demo"
    );
    let (lo, hi) = (
        kept.iter().copied().fold(f32::MAX, f32::min),
        dropped.iter().copied().fold(f32::MIN, f32::max),
    );
    assert!(hi <= lo, "dropped politics up to {hi}, kept from {lo}");
    // Repeats are numbered from 0 and every row has a domain.
    let batches = read_rows(&dir.join("remix"));
    for b in &batches {
        let rep = b.column_by_name("repeat").ok_or("repeat")?.as_primitive::<UInt32Type>();
        assert_eq!(rep.null_count(), 0);
        assert!(b.column_by_name("mix_domain").ok_or("mix_domain")?.null_count() == 0);
    }
    Ok(())
}

/// A topic classifier loam trains (SOTU → politics, Moby-Dick → literature, the Debian
/// handbook → software, each held out by source: later addresses, later chapters, the
/// handbook's other sections) assigns domains by text alone.
#[test]
fn topic_classifier_assigns_domains_by_text() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let q = repo().join("data/quality");
    let hb = shared().join("html/debian-handbook/en-US");
    let classifier = format!(
        r#"assign = ["classifier"]

[remix.classifier]
min_score = 0.5

[[remix.classifier.labels]]
label = "politics"
sources = [
  {{ name = "sotu-1790-1990", inputs = ["{q}/sotu-1790-1990.jsonl.gz"], format = "jsonl" }},
  {{ name = "sotu-1991-2021", inputs = ["{q}/sotu-1991-2021.jsonl.gz"], format = "jsonl", heldout = true }},
]

[[remix.classifier.labels]]
label = "literature"
sources = [
  {{ name = "moby-1-100", inputs = ["{q}/moby-dick-1-100.jsonl.gz"], format = "jsonl" }},
  {{ name = "moby-101-135", inputs = ["{q}/moby-dick-101-135.jsonl.gz"], format = "jsonl", heldout = true }},
]

[[remix.classifier.labels]]
label = "software"
sources = [
  {{ name = "handbook-sect-a-m", inputs = ["{hb}/sect.[a-m]*.html"], format = "html" }},
  {{ name = "handbook-sect-n-z", inputs = ["{hb}/sect.[n-z]*.html"], format = "html", heldout = true }},
]
"#,
        q = q.display(),
        hb = hb.display()
    );
    // `assign` must precede the [remix.classifier] table: the setup writes [remix] keys first.
    let cfg = setup(tmp.path(), 4000, 2, &classifier);
    let text = std::fs::read_to_string(&cfg)?.replace("assign = [\"table\", \"blocklist\"]\n", "");
    std::fs::write(&cfg, text)?;
    ingest(&cfg);
    let o = remix(&cfg, &[]);
    ok(&o);
    assert!(
        stderr(&o).contains("remix topic classifier (3 labels)"),
        "{}",
        stderr(&o)
    );
    let run_dir = tmp.path().join("run-2");
    let card = read_json(&run_dir.join("remix/_model/topic.card.json"));
    let acc = card["heldout_accuracy"].as_f64().ok_or("accuracy")?;
    assert!(acc >= 0.9, "held-out accuracy {acc}: {card}");
    for l in card["labels"].as_array().ok_or("labels")? {
        assert!(l["heldout_docs"].as_u64().unwrap_or(0) > 0, "{l}");
    }
    // Documents of the corpus, by the site they came from, get the right label.
    let mut by_site: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let want = [
        ("presidency.ucsb.edu", "politics"),
        ("gutenberg.org", "literature"),
        ("debian.org", "software"),
    ];
    for b in read_rows(&run_dir.join("remix")) {
        let col = |c: &str| {
            b.column_by_name(c)
                .ok_or(format!("column {c}"))
                .map(|a| a.as_string::<i32>().clone())
        };
        let (url, dom, src) = (col("url")?, col("mix_domain")?, col("mix_domain_source")?);
        let score = b.column_by_name("mix_domain_score").ok_or("score")?;
        for i in 0..b.num_rows() {
            if src.value(i) == "classifier" {
                assert!(score.is_valid(i), "a classifier domain carries its probability");
            }
            if let Some((site, label)) = want.iter().find(|(s, _)| url.value(i).contains(s)) {
                let e = by_site.entry(site).or_default();
                e.0 += 1;
                e.1 += u64::from(dom.value(i) == *label);
            }
        }
    }
    for (site, (n, right)) in &by_site {
        assert!(
            *n > 100 && *right as f64 >= 0.8 * *n as f64,
            "{site}: {right} of {n} right"
        );
    }
    assert_eq!(by_site.len(), 3);
    // A rerun finds the model committed.
    let o = remix(&cfg, &["--phase", "train"]);
    ok(&o);
    assert!(stderr(&o).contains("already committed"), "{}", stderr(&o));
    Ok(())
}
