//! `loam ingest` on the genuine Common Crawl CC-MAIN-2014-35 WARC/WET/WAT triple and on
//! the demo corpus: counts, field values, ledger.
mod common;
use common::*;

fn ingest(input: &str, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["ingest", "--input", input, "--out", out.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn cc_warc_plain_and_gzip_give_the_same_documents() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut texts = Vec::new();
    for ext in ["warc", "warc.gz"] {
        let out = tmp.path().join(ext);
        let input = cc_dir().join(format!("{CC_STEM}.{ext}"));
        let o = ingest(input.to_str().ok_or("path")?, &out, &[]);
        ok(&o);
        let res = result_line(&o);
        assert_eq!(res["ok"], true);
        // 13 records: 1 warcinfo + 4 request + 4 response + 4 metadata.
        assert_eq!(sum_field(&out, "ingest", "docs_in"), 13);
        assert_eq!(total(&out, "ingest", "dropped", "warc_type_request"), 4);
        assert_eq!(total(&out, "ingest", "dropped", "warc_type_metadata"), 4);
        assert_eq!(total(&out, "ingest", "dropped", "warc_type_warcinfo"), 1);
        let rows = read_rows(&out.join("ingest"));
        let urls = strings(&rows, "url");
        let kept = sum_field(&out, "ingest", "kept");
        assert_eq!(urls.len() as u64, kept);
        // Of the 4 HTML responses, the msn.com redirect stub has no readable text.
        assert!(kept >= 3, "kept {kept}");
        assert!(urls.contains(&Some("http://0pointer.de/photos/?gallery=Australia&photo=496".into())));
        assert!(strings(&rows, "dump")
            .iter()
            .all(|d| d.as_deref() == Some("CC-MAIN-2014-35")));
        assert!(strings(&rows, "domain").contains(&Some("0pointer.de".into())));
        let ids = strings(&rows, "id");
        assert!(
            ids.contains(&Some("CC-MAIN-2014-35/d2ce4c32-7c09-477e-87c9-36e8e49ce467".into())),
            "{ids:?}"
        );
        assert!(strings(&rows, "source_format")
            .iter()
            .all(|f| f.as_deref() == Some("warc")));
        ledger_ok(&out);
        texts.push(strings(&rows, "text"));
    }
    assert_eq!(texts[0], texts[1], "plain and gzip WARC must give identical text");
    Ok(())
}

#[test]
fn cc_wet_conversion_records_pass_through() -> TestResult {
    let tmp = tempfile::tempdir()?;
    for ext in ["warc.wet", "warc.wet.gz"] {
        let out = tmp.path().join(ext);
        let input = cc_dir().join(format!("{CC_STEM}.{ext}"));
        ok(&ingest(input.to_str().ok_or("path")?, &out, &[]));
        let rows = read_rows(&out.join("ingest"));
        let texts = strings(&rows, "text");
        assert_eq!(texts.len(), 3, "3 conversion records");
        assert!(texts[0]
            .as_deref()
            .is_some_and(|t| t.starts_with("Photos\n[ style: dark classic gorilla ]")));
        assert_eq!(
            strings(&rows, "url")[2].as_deref(),
            Some("http://0x20.be/Special:WhatLinksHere/Thread:Talk:Gentse_feesten/foo")
        );
        assert!(strings(&rows, "source_format")
            .iter()
            .all(|f| f.as_deref() == Some("wet")));
        assert_eq!(total(&out, "ingest", "dropped", "warc_type_warcinfo"), 1);
        ledger_ok(&out);
    }
    Ok(())
}

#[test]
fn cc_wat_has_no_documents_and_says_so() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = cc_dir().join(format!("{CC_STEM}.warc.wat.gz"));
    ok(&ingest(input.to_str().ok_or("path")?, tmp.path(), &[]));
    assert_eq!(sum_field(tmp.path(), "ingest", "kept"), 0);
    assert!(total(tmp.path(), "ingest", "dropped", "warc_type_metadata") > 0);
    ledger_ok(tmp.path());
    Ok(())
}

#[test]
fn demo_run_ingests_every_dump_and_balances() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let run_dir = tmp.path().join("demo");
    let o = run(&["run", "configs/demo.toml", "--run-dir", run_dir.to_str().ok_or("path")?]);
    ok(&o);
    let res = result_line(&o);
    assert_eq!(res["ledger"], "balanced");
    let rows = read_rows(&run_dir.join("ingest"));
    let dumps = strings(&rows, "dump");
    for (dump, expect) in [("SIM-2024-10", 100), ("SIM-2024-18", 100), ("SIM-2024-26", 100)] {
        // 60 pages (36 WARC responses + 24 WET conversions) + 40 JSONL poems per dump.
        let n = dumps.iter().filter(|d| d.as_deref() == Some(dump)).count();
        assert_eq!(n, expect, "documents of {dump}");
    }
    assert!(dumps.iter().any(|d| d.as_deref() == Some("CC-MAIN-2014-35")));
    assert_eq!(dumps.iter().filter(|d| d.as_deref() == Some("WEB-1997")).count(), 3540);
    let texts = strings(&rows, "text");
    assert!(
        texts.iter().flatten().any(|t| t.contains("Call me Ishmael"))
            || texts.iter().flatten().any(|t| t.contains("Queequeg"))
    );
    assert!(texts
        .iter()
        .flatten()
        .any(|t| t.contains("Fellow-Citizens of the Senate")));
    // Extraction drops the site boilerplate of the WARC pages.
    let warc_texts: Vec<_> = rows
        .iter()
        .flat_map(|b| {
            let f = strings(std::slice::from_ref(b), "source_format");
            let t = strings(std::slice::from_ref(b), "text");
            f.into_iter()
                .zip(t)
                .filter(|(f, _)| f.as_deref() == Some("warc"))
                .map(|(_, t)| t)
                .collect::<Vec<_>>()
        })
        .flatten()
        .filter(|t| !t.contains("0pointer"))
        .collect();
    assert!(!warc_texts.is_empty());
    let with_footer = warc_texts.iter().filter(|t| t.contains("Privacy Policy")).count();
    assert!(
        with_footer * 10 < warc_texts.len(),
        "{with_footer} of {} extracted pages kept the footer",
        warc_texts.len()
    );
    assert!(run_dir.join("config.resolved.toml").exists());
    // The score step sized the model the demo trained (train.from_score), and said so.
    let err = stderr(&o);
    assert!(
        err.contains("score: q = ") && err.contains("a = ") && err.contains("M_opt"),
        "{err}"
    );
    let score: serde_json::Value = serde_json::from_slice(&std::fs::read(run_dir.join("score/score.json"))?)?;
    assert_eq!(score["schema"], "loam.score/1");
    assert_eq!(res["score"]["q"], score["q"]);
    let plan = &score["train"];
    let ckpt: serde_json::Value = serde_json::from_slice(&std::fs::read(
        run_dir
            .join("train/checkpoints")
            .join(std::fs::read_to_string(run_dir.join("train/checkpoints/latest"))?)
            .join("config.json"),
    )?)?;
    for k in ["n_layer", "d_model", "n_heads", "n_kv_heads"] {
        assert_eq!(ckpt[k], plan[k], "{k}: checkpoint {ckpt} vs score.json {plan}");
    }
    assert_eq!(res["train"]["tokens"], plan["tokens"], "{res}");
    let resolved = std::fs::read_to_string(run_dir.join("config.resolved.toml"))?;
    assert!(
        resolved.contains("[train_provenance]") && resolved.contains("score.json (C = 5.000e10"),
        "{resolved}"
    );
    // A second run is a no-op that says so.
    let again = run(&["run", "configs/demo.toml", "--run-dir", run_dir.to_str().ok_or("path")?]);
    ok(&again);
    let res = result_line(&again);
    assert_eq!(res["stages"][0]["shards_run"], 0);
    assert_eq!(res["stages"][0]["shards_already_done"], 4);
    assert_eq!(res["stages"][1]["shards_already_done"], 4, "filter too");
    Ok(())
}

#[test]
fn pyarrow_reads_the_output() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = cc_dir().join(format!("{CC_STEM}.warc.wet.gz"));
    ok(&ingest(input.to_str().ok_or("path")?, tmp.path(), &[]));
    let script = r#"
import sys, pyarrow.parquet as pq, pyarrow as pa
t = pq.read_table(sys.argv[1] + "/ingest")
assert t.num_rows == 3, t.num_rows
assert t.schema.field("date").type == pa.timestamp("ms", tz="UTC"), t.schema
assert t.column("dump")[0].as_py() == "CC-MAIN-2014-35"
assert str(t.column("date")[0].as_py()) == "2014-08-21 05:52:58+00:00", t.column("date")[0]
print(t.column("url")[0].as_py())
"#;
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let o = std::process::Command::new(py)
        .args(["-c", script, tmp.path().to_str().ok_or("path")?])
        .output()?;
    assert!(
        o.status.success(),
        "pyarrow could not read loam's Parquet (CI installs pyarrow):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "http://0pointer.de/photos/?gallery=Australia&photo=496"
    );
    Ok(())
}
