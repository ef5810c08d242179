//! The report's provenance (inputs with SHA-256, the resolved config) and the datasheet
//! the dataset card is drawn from.
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use loam_report::model::*;

pub(super) fn inputs(cfg: &toml::Value, text: &str, hash_limit_mb: u64) -> Result<Provenance> {
    let inputs = cfg
        .get("inputs")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let paths: Vec<(String, PathBuf)> = inputs
        .iter()
        .filter_map(|i| {
            let p = i.get("path")?.as_str()?;
            let name = i.get("name").and_then(toml::Value::as_str).unwrap_or(p);
            Some((name.to_owned(), PathBuf::from(p)))
        })
        .collect();
    let total: u64 = paths
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let hash = total <= hash_limit_mb << 20;
    let mut out = Vec::new();
    for (name, p) in paths {
        let bytes = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        // Streamed: an input file is never held in memory whole.
        let sha256 = if hash {
            loam_pipeline::quality::sources::file_sha256(&p).ok()
        } else {
            None
        };
        out.push(InputFile {
            path: name,
            bytes,
            sha256,
        });
    }
    Ok(Provenance {
        inputs: out,
        config_toml: text.to_owned(),
    })
}

pub(super) fn datasheet(r: &Report, cfg: &toml::Value) -> Datasheet {
    let languages: Vec<String> = match cfg
        .get("filter")
        .and_then(|f| f.get("languages"))
        .and_then(toml::Value::as_array)
    {
        Some(a) if !a.is_empty() => a.iter().filter_map(|l| l.as_str().map(str::to_owned)).collect(),
        _ => r
            .filter
            .as_ref()
            .map(|f| f.languages.iter().map(|c| c.key.clone()).collect())
            .unwrap_or_default(),
    };
    let last = r
        .funnel
        .iter()
        .rev()
        .find(|f| f.stage != "tokenize")
        .or(r.funnel.last());
    let docs = last.map_or(0, |f| f.rows_out.unwrap_or(f.kept));
    let mut by_dump: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &r.provenance.inputs {
        let dump = cfg
            .get("inputs")
            .and_then(toml::Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("name").and_then(toml::Value::as_str) == Some(i.path.as_str()))
            })
            .and_then(|x| x.get("dump").and_then(toml::Value::as_str))
            .unwrap_or("(from the files)")
            .to_owned();
        by_dump.entry(dump).or_default().push(i.path.clone());
    }
    let licenses = cfg.get("licenses").and_then(toml::Value::as_table);
    let sources = by_dump
        .into_iter()
        .map(|(dump, inputs)| {
            // The licences the dump's inputs state, each once; "not stated" for any without.
            let mut stated: Vec<&str> = inputs
                .iter()
                .map(|i| {
                    licenses
                        .and_then(|l| l.get(i))
                        .and_then(toml::Value::as_str)
                        .unwrap_or("not stated")
                })
                .collect();
            stated.sort_unstable();
            stated.dedup();
            SourceCard {
                dump,
                license: stated.join("; "),
                inputs,
            }
        })
        .collect();
    let stages: Vec<String> = r
        .funnel
        .iter()
        .map(|f| format!("{} ({} kept of {})", f.stage, f.kept, f.docs_in))
        .collect();
    let tokens = r
        .tokenize
        .as_ref()
        .map_or("not tokenized".into(), |t| format!("{} tokens", t.tokens));
    let sections = vec![
        ("Motivation".into(), "not stated (the run's config does not say why the dataset was made or by whom)".into()),
        ("Composition".into(), format!("{docs} documents ({tokens}) in languages {}; web documents from the dumps listed under Sources.", languages.join(", "))),
        ("Collection process".into(), format!("{} input files read by loam's ingest (WARC/WET/JSONL/Parquet); crawl dates as recorded in each record.", r.provenance.inputs.len())),
        ("Preprocessing / cleaning / labeling".into(), format!("loam stages: {}. Every dropped document is kept with its reason in each stage's _dropped/ side output.", stages.join("; "))),
        ("Uses".into(), "language-model pre-training; other uses not stated".into()),
        ("Distribution".into(), "not stated".into()),
        ("Maintenance".into(), "not stated".into()),
    ];
    Datasheet {
        languages,
        size_category: loam_report::card::size_category(docs).into(),
        sources,
        sections,
    }
}
