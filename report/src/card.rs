//! `README.md`: a dataset card — Hugging Face YAML front matter (language, size category,
//! licenses per source) and Gebru et al.'s datasheet sections, filled from the report;
//! "not stated" where the run cannot know.
use std::fmt::Write as _;

use crate::model::Report;

/// Hugging Face's `size_categories` bucket for a number of documents.
pub fn size_category(docs: u64) -> &'static str {
    match docs {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        10_000_000..100_000_000 => "10M<n<100M",
        100_000_000..1_000_000_000 => "100M<n<1B",
        _ => "n>1B",
    }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

pub fn render(r: &Report) -> String {
    let d = &r.datasheet;
    let mut o = String::from("---\n");
    o.push_str("language:\n");
    for l in &d.languages {
        let _ = writeln!(o, "- {}", yaml_str(l));
    }
    let _ = writeln!(o, "size_categories:\n- {}", yaml_str(&d.size_category));
    let mut licenses: Vec<&str> = d.sources.iter().map(|s| s.license.as_str()).collect();
    licenses.sort_unstable();
    licenses.dedup();
    let license = if licenses.len() == 1 && licenses[0] != "not stated" {
        licenses[0]
    } else {
        "other"
    };
    let _ = writeln!(o, "license: {}", yaml_str(license));
    o.push_str("source_licenses:\n");
    for s in &d.sources {
        let _ = writeln!(
            o,
            "- source: {}\n  license: {}",
            yaml_str(&s.dump),
            yaml_str(&s.license)
        );
    }
    o.push_str("task_categories:\n- text-generation\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: \"remix/*.parquet\"\n---\n\n");
    let _ = writeln!(o, "# Dataset card: {}\n", r.header.run);
    let _ = writeln!(
        o,
        "Made by loam {} (config SHA-256 `{}`, seed {}). The full report is `report.html` beside this file; every number here is in `report.json`.\n",
        r.header.loam_version, r.header.config_sha256, r.header.seed
    );
    let _ = writeln!(
        o,
        "Ledger: {}.\n",
        if r.header.ledger.balanced {
            "balanced — every document is kept or dropped with a reason"
        } else {
            "NOT balanced — see report.html"
        }
    );
    for (k, v) in &d.sections {
        let _ = writeln!(o, "## {k}\n\n{v}\n");
    }
    o.push_str("## Sources\n\n| source | inputs | license |\n|---|---|---|\n");
    for s in &d.sources {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            s.dump,
            s.inputs.join(", ").replace('|', "\\|"),
            s.license
        );
    }
    o
}
