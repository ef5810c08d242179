//! Run configuration: one TOML file describes a run (output folder, shard count, inputs
//! per dump, each stage's settings). Parsed strictly — an unknown key is an error naming
//! the key, the file and the line — then `--set key=value` overrides are applied and the
//! result is validated into a [`Resolved`] config, which is saved in the run directory.
//!
//! Relative paths in a config file are relative to the file's own folder, so a config
//! means the same from any working directory; paths given as flags are relative to the
//! working directory, as a shell user expects.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use loam_pipeline::dedup::DedupConfig;
use loam_pipeline::ingest::{Format, IngestConfig, InputFile};
use loam_pipeline::quality::{QualityConfig, SourceConfig, SourceFile};
use loam_pipeline::remix::RemixConfig;
use loam_pipeline::score::ScoreConfig;
use loam_pipeline::tokens::{TokenizeConfig, TokenizerConfig};
use loam_pipeline::FilterConfig;
use loam_train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::sweep::SweepConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    run: RawRun,
    #[serde(default)]
    dumps: Vec<RawDump>,
    #[serde(default)]
    ingest: IngestConfig,
    #[serde(default)]
    filter: FilterConfig,
    #[serde(default)]
    dedup: DedupConfig,
    #[serde(default)]
    quality: QualityConfig,
    /// Present: the remix steps run (unless `enabled = false`).
    #[serde(default)]
    remix: Option<RemixConfig>,
    #[serde(default)]
    tokenizer: TokenizerConfig,
    #[serde(default)]
    tokenize: TokenizeConfig,
    #[serde(default)]
    score: ScoreConfig,
    #[serde(default)]
    train: TrainConfig,
    /// Present: the IsoFLOP sweep steps run (unless `enabled = false`).
    #[serde(default)]
    sweep: Option<SweepConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    dir: PathBuf,
    #[serde(default = "default_shards")]
    shards: usize,
    #[serde(default)]
    seed: u64,
}

fn default_shards() -> usize {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDump {
    /// Dump name; when absent, taken from a `CC-MAIN-YYYY-WW` in each file's path or from
    /// its WARC `warcinfo` record.
    name: Option<String>,
    /// Files, folders (every file below, sorted) or glob patterns.
    inputs: Vec<String>,
    #[serde(default = "auto")]
    format: Format,
    /// The licence of this dump's documents (an SPDX id or a short phrase), for the
    /// report's dataset card; "not stated" when absent.
    #[serde(default)]
    license: Option<String>,
}

fn auto() -> Format {
    Format::Auto
}

/// A validated run configuration with every input file listed.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub run_dir: PathBuf,
    pub shards: usize,
    pub seed: u64,
    pub inputs: Vec<InputFile>,
    pub ingest: IngestConfig,
    pub filter: FilterConfig,
    pub dedup: DedupConfig,
    pub quality: QualityConfig,
    pub remix: RemixConfig,
    pub tokenizer: TokenizerConfig,
    pub tokenize: TokenizeConfig,
    pub score: ScoreConfig,
    pub train: TrainConfig,
    pub sweep: SweepConfig,
    /// `train.*` keys the config or `--set` gave (they win over `train.from_score`).
    #[serde(skip)]
    pub train_explicit: Vec<String>,
    /// Where each value `train.from_score` could set came from (`config` or `score.json …`),
    /// filled in by the train step.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub train_provenance: std::collections::BTreeMap<String, String>,
    /// Input name → the licence its `[[dumps]]` entry states (`license = "…"`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub licenses: std::collections::BTreeMap<String, String>,
}

/// `[remix]` when the config has none: off.
fn remix_off() -> RemixConfig {
    RemixConfig {
        enabled: false,
        ..RemixConfig::default()
    }
}

impl Resolved {
    /// Whether the remix steps run: a `[remix]` section, not disabled.
    pub fn remix_enabled(&self) -> bool {
        self.remix.enabled
    }

    /// Whether the quality steps run: enabled, with at least one model configured.
    pub fn quality_enabled(&self) -> bool {
        self.quality.enabled && !self.quality.models.is_empty()
    }
}

/// Usage or configuration mistakes: the binary exits with status 2 for these.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Loads `path`, applies `overrides` (`key.path=value`), validates.
pub fn load(path: &Path, overrides: &[String]) -> Result<Resolved> {
    let text =
        std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read config {}: {e}", path.display())))?;
    // First pass on the file itself, so errors carry its line and column.
    toml::from_str::<RawConfig>(&text).map_err(|e| usage(format!("config {}: {e}", path.display())))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| usage(format!("config {}: {e}", path.display())))?;
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    let mut explicit = Vec::new();
    if let Some(t) = table.get("train") {
        dotted_keys("train", t, &mut explicit);
    }
    let raw: RawConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| usage(format!("config {} after --set overrides: {e}", path.display())))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cfg = resolve(raw, &base)?;
    cfg.train_explicit = explicit;
    Ok(cfg)
}

/// Every leaf key under `prefix` (`train.model.n_layer`, …).
pub fn dotted_keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                dotted_keys(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// Builds a config from flags alone (`loam ingest --input … --dump … --out …`).
pub fn from_flags(inputs: &[String], dump: Option<String>, out: &Path, shards: usize) -> Result<Resolved> {
    let raw = RawConfig {
        run: RawRun {
            dir: out.to_owned(),
            shards,
            seed: 0,
        },
        dumps: vec![RawDump {
            name: dump,
            inputs: inputs.to_vec(),
            format: Format::Auto,
            license: None,
        }],
        ingest: IngestConfig::default(),
        filter: FilterConfig::default(),
        dedup: DedupConfig::default(),
        quality: QualityConfig::default(),
        remix: None,
        tokenizer: TokenizerConfig::default(),
        tokenize: TokenizeConfig::default(),
        score: ScoreConfig::default(),
        train: TrainConfig::default(),
        sweep: None,
    };
    resolve(raw, Path::new(""))
}

/// A config for steps run on an existing run directory with flags alone
/// (`loam filter --run DIR`): default settings, no inputs.
pub fn for_run_dir(run_dir: &Path, shards: usize) -> Resolved {
    Resolved {
        run_dir: normalize(run_dir),
        shards,
        seed: 0,
        inputs: Vec::new(),
        ingest: IngestConfig::default(),
        filter: FilterConfig::default(),
        dedup: DedupConfig::default(),
        quality: QualityConfig::default(),
        remix: remix_off(),
        tokenizer: TokenizerConfig::default(),
        tokenize: TokenizeConfig::default(),
        score: ScoreConfig::default(),
        train: TrainConfig::default(),
        sweep: SweepConfig::off(),
        train_explicit: Vec::new(),
        train_provenance: Default::default(),
        licenses: Default::default(),
    }
}

/// Settles what a `--run DIR` step's flags left open: `tokenizer.upstream = "auto"` is
/// the run's remix stage when it has committed shards, else quality's, else dedup.
pub fn settle_run_dir(cfg: &mut Resolved) {
    if cfg.tokenizer.upstream == "auto" {
        let done = |s: &str| std::fs::read_dir(cfg.run_dir.join(s).join("_done")).is_ok_and(|mut d| d.next().is_some());
        cfg.tokenizer.upstream = ["remix", "quality"]
            .into_iter()
            .find(|s| done(s))
            .unwrap_or("dedup")
            .into();
    }
}

/// `[section]` settings from `--set section.key=value` flags alone (with `--run DIR`).
pub fn section_overrides<T: serde::de::DeserializeOwned>(section: &str, overrides: &[String]) -> Result<T> {
    let mut table = toml::Table::new();
    for o in overrides {
        if !o.trim_start().starts_with(&format!("{section}.")) {
            bail!(usage(format!("--set {o}: with --run only {section}.* settings apply")));
        }
        apply_override(&mut table, o)?;
    }
    let raw = table.remove(section).unwrap_or(toml::Value::Table(toml::Table::new()));
    raw.try_into().map_err(|e| usage(format!("--set {section}.*: {e}")))
}

/// `[dedup]` settings from `--set dedup.key=value` flags alone (with `--run DIR`).
pub fn dedup_overrides(overrides: &[String]) -> Result<DedupConfig> {
    let cfg: DedupConfig = section_overrides("dedup", overrides)?;
    cfg.validate().map_err(|e| usage(e.to_string()))?;
    Ok(cfg)
}

fn resolve(raw: RawConfig, base: &Path) -> Result<Resolved> {
    if raw.run.shards == 0 {
        bail!(usage("run.shards must be at least 1"));
    }
    raw.ingest.validate().map_err(|e| usage(e.to_string()))?;
    if raw.dumps.is_empty() {
        bail!(usage("no inputs: add a [[dumps]] entry with `inputs = [...]`"));
    }
    let mut inputs = Vec::new();
    let mut licenses = std::collections::BTreeMap::new();
    for (i, d) in raw.dumps.iter().enumerate() {
        if d.name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty() || n.contains('/'))
        {
            bail!(usage(format!("dumps[{i}].name must be non-empty and contain no '/'")));
        }
        if d.inputs.is_empty() {
            bail!(usage(format!("dumps[{i}] lists no inputs")));
        }
        if d.license.as_deref().is_some_and(|l| l.trim().is_empty()) {
            bail!(usage(format!(
                "dumps[{i}].license is empty: give an SPDX id or a phrase, or leave it out"
            )));
        }
        for pattern in &d.inputs {
            for path in expand(&base.join(pattern))
                .with_context(|| format!("dumps[{i}] input {pattern:?}"))
                .map_err(|e| usage(format!("{e:#}")))?
            {
                // Expansion keeps the `base/` prefix textually, so stripping it gives the
                // path as the config wrote it, whatever the working directory.
                let name = normalize(path.strip_prefix(base).unwrap_or(&path))
                    .display()
                    .to_string();
                let path = normalize(&path);
                if let Some(l) = &d.license {
                    licenses.insert(name.clone(), l.trim().to_owned());
                }
                inputs.push(InputFile {
                    name,
                    path,
                    dump: d.name.clone(),
                    format: d.format,
                });
            }
        }
    }
    raw.dedup.validate().map_err(|e| usage(e.to_string()))?;
    #[cfg(not(feature = "distributed"))]
    if raw.dedup.engine == loam_pipeline::dedup::Engine::Distributed {
        bail!(usage(format!(
            "dedup.engine = \"distributed\": {}, or set dedup.engine = \"local\"",
            crate::worker::NOT_BUILT
        )));
    }
    let mut dedup = raw.dedup;
    dedup.previous_index = dedup.previous_index.iter().map(|p| normalize(&base.join(p))).collect();
    let mut quality = raw.quality;
    for (i, m) in quality.models.iter_mut().enumerate() {
        m.from_file = m.from_file.as_ref().map(|p| normalize(&base.join(p)));
        let at = format!("quality.models[{i}]");
        expand_sources(m.positives.iter_mut().chain(m.negatives.iter_mut()), base, &at)?;
    }
    if quality.enabled && !quality.models.is_empty() {
        quality.validate().map_err(|e| usage(e.to_string()))?;
    }
    let quality_on = quality.enabled && !quality.models.is_empty();
    let mut remix = raw.remix.unwrap_or_else(remix_off);
    if remix.upstream == "auto" {
        remix.upstream = if quality_on { "quality" } else { "dedup" }.into();
    }
    remix.tables = remix.tables.iter().map(|p| normalize(&base.join(p))).collect();
    remix.blocklist = remix.blocklist.map(|p| normalize(&base.join(p)));
    if let Some(c) = remix.classifier.as_mut() {
        for l in c.labels.iter_mut() {
            let at = format!("remix.classifier label {}", l.label);
            expand_sources(l.sources.iter_mut(), base, &at)?;
        }
    }
    if remix.enabled {
        remix.validate().map_err(|e| usage(e.to_string()))?;
    }
    let mut tokenizer = raw.tokenizer;
    // `auto`: the last document stage before the tokenizer in this run's DAG.
    if tokenizer.upstream == "auto" {
        tokenizer.upstream = if remix.enabled {
            "remix"
        } else if quality_on {
            "quality"
        } else {
            "dedup"
        }
        .into();
    }
    tokenizer.validate().map_err(|e| usage(e.to_string()))?;
    tokenizer.from_file = tokenizer.from_file.map(|p| normalize(&base.join(p)));
    tokenizer.bpe.pretokenizer_from = tokenizer.bpe.pretokenizer_from.map(|p| normalize(&base.join(p)));
    let mut filter = raw.filter;
    filter.lid_model = normalize(&base.join(&filter.lid_model));
    filter.blocklist = filter.blocklist.map(|b| normalize(&base.join(b)));
    let mut score = raw.score;
    score.validate().map_err(|e| usage(e.to_string()))?;
    score.calibration = score.calibration.map(|p| normalize(&base.join(p)));
    let mut sweep = raw.sweep.unwrap_or_else(SweepConfig::off);
    sweep.validate()?;
    sweep.calibration = sweep.calibration.map(|p| normalize(&base.join(p)));
    Ok(Resolved {
        sweep,
        score,
        train_explicit: Vec::new(),
        train_provenance: Default::default(),
        licenses,
        filter,
        dedup,
        quality,
        remix,
        tokenizer,
        tokenize: raw.tokenize,
        train: raw.train,
        run_dir: normalize(&base.join(&raw.run.dir)),
        shards: raw.run.shards,
        seed: raw.run.seed,
        inputs,
        ingest: raw.ingest,
    })
}

/// Lists the files of each labelled source (inputs relative to the config's folder).
fn expand_sources<'a>(sources: impl Iterator<Item = &'a mut SourceConfig>, base: &Path, at: &str) -> Result<()> {
    for s in sources {
        s.files.clear();
        for pattern in &s.inputs {
            for path in expand(&base.join(pattern))
                .with_context(|| format!("{at} source {} input {pattern:?}", s.name))
                .map_err(|e| usage(format!("{e:#}")))?
            {
                let name = normalize(path.strip_prefix(base).unwrap_or(&path))
                    .display()
                    .to_string();
                s.files.push(SourceFile {
                    path: normalize(&path),
                    name,
                });
            }
        }
    }
    Ok(())
}

/// Removes `.` and `dir/..` lexically, so messages show `runs/demo`, not
/// `configs/../runs/demo` (symlinks are not resolved; a leading `..` is kept).
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// A file, every regular file under a folder (sorted, hidden ones skipped), or a glob.
fn expand(p: &Path) -> Result<Vec<PathBuf>> {
    let s = p.to_string_lossy();
    if s.contains(['*', '?', '[']) {
        let mut out: Vec<PathBuf> = glob::glob(&s)?.collect::<Result<_, _>>()?;
        out.retain(|p| p.is_file());
        out.sort();
        if out.is_empty() {
            bail!("pattern {s} matches no file");
        }
        return Ok(out);
    }
    if p.is_dir() {
        let mut out = Vec::new();
        walk(p, &mut out)?;
        out.sort();
        if out.is_empty() {
            bail!("folder {s} holds no file");
        }
        return Ok(out);
    }
    if !p.exists() {
        bail!("{s} does not exist");
    }
    Ok(vec![p.to_owned()])
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// Applies `a.b.c=value`; the value is TOML (`4`, `true`, `"x"`, `[1, 2]`) or else a
/// bare string. Array elements are addressed by index (`dumps.0.name=x`).
fn apply_override(table: &mut toml::Table, o: &str) -> Result<()> {
    let Some((key, value)) = o.split_once('=') else {
        bail!(usage(format!(
            "--set {o:?}: expected key=value, e.g. --set run.shards=8"
        )));
    };
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let (last, path) = parts.split_last().ok_or_else(|| usage("--set with an empty key"))?;
    let mut cur = table;
    for part in path {
        let next = cur
            .entry((*part).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match next {
            toml::Value::Table(t) => t,
            toml::Value::Array(a) => {
                let idx = parts
                    .iter()
                    .skip_while(|p| *p != part)
                    .nth(1)
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or_else(|| usage(format!("--set {key}: `{part}` is a list; index it, e.g. {part}.0")))?;
                return set_in_array(a, idx, &parts, part, value, key);
            }
            _ => bail!(usage(format!("--set {key}: `{part}` is not a table"))),
        };
    }
    cur.insert((*last).to_owned(), value);
    Ok(())
}

fn set_in_array(
    a: &mut [toml::Value],
    idx: usize,
    parts: &[&str],
    at: &str,
    value: toml::Value,
    key: &str,
) -> Result<()> {
    let pos = parts.iter().position(|p| *p == at).unwrap_or(0);
    let rest = &parts[pos + 2..];
    let Some(toml::Value::Table(t)) = a.get_mut(idx) else {
        bail!(usage(format!("--set {key}: `{at}` has no table at index {idx}")));
    };
    if rest.is_empty() {
        bail!(usage(format!("--set {key}: name a field inside {at}.{idx}")));
    }
    apply_override(t, &format!("{}={}", rest.join("."), toml_literal(&value)))
}

fn toml_literal(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => toml::Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

/// Writes `bytes` to `dest` atomically, creating its folder first.
pub fn write_creating(dest: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    loam_pipeline::stage::write_atomic(dest, bytes)?;
    Ok(())
}

/// Saves the resolved config beside the run's outputs.
pub fn save(resolved: &Resolved) -> Result<()> {
    std::fs::create_dir_all(&resolved.run_dir)
        .with_context(|| format!("creating run directory {}", resolved.run_dir.display()))?;
    let text = toml::to_string_pretty(resolved).context("serialising the resolved config")?;
    let dest = resolved.run_dir.join("config.resolved.toml");
    loam_pipeline::stage::write_atomic(&dest, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_nested_tables_and_lists() -> Result<()> {
        let mut t: toml::Table = toml::from_str("[run]\ndir = 'x'\n[[dumps]]\ninputs = ['a']\n")?;
        apply_override(&mut t, "run.shards=8")?;
        apply_override(&mut t, "dumps.0.name=CC-MAIN-2024-10")?;
        apply_override(&mut t, "ingest.on_bad_file=skip")?;
        assert_eq!(t["run"]["shards"].as_integer(), Some(8));
        assert_eq!(t["dumps"][0]["name"].as_str(), Some("CC-MAIN-2024-10"));
        assert_eq!(t["ingest"]["on_bad_file"].as_str(), Some("skip"));
        assert!(apply_override(&mut t, "no_equals_sign").is_err());
        Ok(())
    }

    #[test]
    fn paths_are_normalised_lexically() {
        assert_eq!(normalize(Path::new("configs/../runs/demo")), Path::new("runs/demo"));
        assert_eq!(normalize(Path::new("../data/./x")), Path::new("../data/x"));
        assert_eq!(normalize(Path::new("/a/b/../c")), Path::new("/a/c"));
    }
}
