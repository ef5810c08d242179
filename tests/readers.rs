//! The corpus as its users read it: DuckDB (`read_parquet('…/*.parquet')`, a group-by by
//! dump), Hugging Face `datasets` (`load_dataset("parquet", data_files=…)`, the kept
//! documents and `_dropped/`) and pyarrow's `read_table(folder)` on every document stage of
//! the demo run, each count equal to the ledger's and no `_`-prefixed side output picked up.
mod common;

use std::collections::BTreeMap;

use common::{demo_until, ok, repo, stats, TestResult};

#[test]
fn duckdb_and_hf_datasets_read_every_stage_with_the_ledgers_counts() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("demo");
    ok(&demo_until(&dir, "remix", &[]));
    let o = std::process::Command::new("python3")
        .arg(repo().join("tests/py/read_corpus.py"))
        .arg(&dir)
        .arg(tmp.path().join("hf-cache"))
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    for stage in ["ingest", "filter", "dedup", "quality", "remix"] {
        // Per-shard stats only (remix keeps its plan beside them).
        let st: Vec<_> = stats(&dir, stage).into_iter().filter(|s| s["shard"].is_u64()).collect();
        let sum = |k: &str| st.iter().filter_map(|s| s[k].as_u64()).sum::<u64>();
        // remix writes copies: its rows are rows_out, not documents kept.
        let rows = if stage == "remix" { sum("rows_out") } else { sum("kept") };
        // Non-document WARC records (request, metadata, warcinfo: `warc_type_*`) are counted
        // by type in the ledger but have no text, so no row; every other drop is a row.
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for d in st.iter().filter_map(|s| s["dropped"].as_object()) {
            for (k, v) in d {
                if !k.starts_with("warc_type_") {
                    *by_reason.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
                }
            }
        }
        let dropped: u64 = by_reason.values().sum();
        let s = &seen[stage];
        assert_eq!(s["duckdb_rows"], rows, "{stage}: DuckDB rows");
        assert_eq!(s["pyarrow_folder_rows"], rows, "{stage}: pyarrow read_table(folder)");
        assert_eq!(
            s["datasets_files_rows"], rows,
            "{stage}: load_dataset(parquet, data_files)"
        );
        assert_eq!(
            s["datasets_dropped_rows"], dropped,
            "{stage}: load_dataset(_dropped/*.parquet)"
        );
        let reasons: Vec<String> = serde_json::from_value(s["dropped_reasons"].clone())?;
        assert_eq!(
            reasons,
            by_reason.keys().cloned().collect::<Vec<_>>(),
            "{stage}: drop reasons"
        );
        // Only document columns: no side output (with its reason column) was mixed in.
        let cols: Vec<&str> = s["columns"]
            .as_array()
            .ok_or("columns")?
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        assert!(cols.contains(&"text") && !cols.contains(&"reason"), "{stage}: {cols:?}");
        if stage != "remix" {
            // The group-by by dump equals the stats' per-dump tallies.
            let mut want: BTreeMap<String, u64> = BTreeMap::new();
            for s in &st {
                for (d, t) in s["by_dump"].as_object().into_iter().flatten() {
                    *want.entry(d.clone()).or_default() += t["kept"].as_u64().unwrap_or(0);
                }
            }
            want.retain(|_, n| *n > 0);
            let got: BTreeMap<String, u64> = serde_json::from_value(s["duckdb_by_dump"].clone())?;
            assert_eq!(got, want, "{stage}: documents per dump");
        }
    }
    Ok(())
}
