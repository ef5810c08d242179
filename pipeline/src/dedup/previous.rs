//! Earlier runs' dedup indexes (`dedup.previous_index`): their signature tables join this
//! run's cluster step without their texts being read again, after a check that they were
//! computed with the same signature settings.
use std::fs;
use std::path::{Path, PathBuf};

use super::index::committed_fingerprint;
use super::{DedupConfig, IndexPaths};
use crate::error::{PipelineError, Result};
use crate::stage::DONE_DIR;

/// Lists an earlier index's tables: its own shards (committed) and its previous ones.
pub(super) fn previous_tables(index: &Path) -> Result<Vec<PathBuf>> {
    let paths = IndexPaths {
        root: index.to_owned(),
        signatures: index.join("signatures"),
        previous: index.join("previous"),
        cluster: index.join("cluster"),
    };
    if committed_fingerprint(&paths.cluster).is_none() {
        return Err(PipelineError::Config(format!(
            "dedup.previous_index {}: not a committed dedup index (no cluster/_done/cluster); \
             point it at the `dedup/_index` folder of a finished run",
            index.display()
        )));
    }
    let mut out = Vec::new();
    for dir in [&paths.previous, &paths.signatures] {
        let Ok(entries) = fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "parquet")
                    && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        if dir == &paths.signatures {
            files.retain(|p| {
                p.file_stem()
                    .is_some_and(|s| paths.signatures.join(DONE_DIR).join(s).exists())
            });
        }
        out.extend(files);
    }
    Ok(out)
}

/// Hard-links (or copies) the earlier indexes' tables into `previous/`, so this run's
/// index is complete on its own and can serve as the next run's `previous_index`.
pub(super) fn adopt_previous(cfg: &DedupConfig, paths: &IndexPaths) -> Result<Vec<PathBuf>> {
    if paths.previous.exists() {
        fs::remove_dir_all(&paths.previous).map_err(|e| PipelineError::io(&paths.previous, e))?;
    }
    if cfg.previous_index.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(&paths.previous).map_err(|e| PipelineError::io(&paths.previous, e))?;
    let mine = fs::canonicalize(&paths.root).ok();
    let mut out = Vec::new();
    for index in &cfg.previous_index {
        if fs::canonicalize(index).ok() == mine {
            return Err(PipelineError::Config(format!(
                "dedup.previous_index {} is this run's own index",
                index.display()
            )));
        }
        check_compatible(cfg, index)?;
        for src in previous_tables(index)? {
            let name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dest = paths.previous.join(format!("{:05}-{name}", out.len()));
            if fs::hard_link(&src, &dest).is_err() {
                fs::copy(&src, &dest).map_err(|e| PipelineError::io(&src, e))?;
            }
            out.push(dest);
        }
    }
    Ok(out)
}

/// What an index's signatures were computed with; indexes merge only when equal.
pub(super) fn index_settings(cfg: &DedupConfig) -> serde_json::Value {
    serde_json::json!({
        "normalize": cfg.normalize, "minhash": cfg.minhash, "lines": cfg.lines.enabled, "unit": cfg.lines.unit,
    })
}

fn check_compatible(cfg: &DedupConfig, index: &Path) -> Result<()> {
    let path = index.join("settings.json");
    let found: serde_json::Value = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            PipelineError::Config(format!(
                "dedup.previous_index {}: no readable settings.json; point it at a run's `dedup/_index` folder",
                index.display()
            ))
        })?;
    if found != index_settings(cfg) {
        return Err(PipelineError::Config(format!(
            "dedup.previous_index {} was built with other signature settings ({found}); use the same \
             [dedup.normalize], [dedup.minhash] and dedup.lines.enabled",
            index.display()
        )));
    }
    Ok(())
}
