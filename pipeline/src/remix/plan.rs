//! `remix_plan` (one task): the per-shard key totals become one mixture — target shares,
//! rates under the epoch cap — and, reading only the assign rows (never a text), the
//! exact copies each document gets. In `exact` mode an external sort ranks every
//! document within its key (by u, or by quality) and the quota of extra copies is filled
//! in that order, to within one document.
//!
//! `plan.json` (in `_index/`, and the same file in `_stats/` for readers) lists per key:
//! documents and bytes in, natural / target / achieved share, rate, epochs, copies,
//! documents dropped, whether the cap bound, plus L1(target, achieved), the unique
//! fraction of the output and the assignment-source counts.
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::assign::{read_assign, AssignHeader, AssignRow, AssignStep};
use super::mixture::{bernoulli_copies, rates, target_shares};
use super::{unit_interval, Mode, OnCap, RemixConfig, RemixPaths, TargetKind, Unit, Within};
use crate::error::{PipelineError, Result};
use crate::sort::ExternalSorter;
use crate::stage::{fingerprint, write_atomic, IndexShard, ShardId};

pub const PLAN_SCHEMA: &str = "loam.remix.plan/1";

/// One mixture key of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyPlan {
    pub key: String,
    pub domain: String,
    pub docs_in: u64,
    pub bytes_in: u64,
    pub natural_share: f64,
    pub target_share: f64,
    /// Share of the output the rates give (the target after the cap).
    pub planned_share: f64,
    /// Share of the output the documents' copies actually give.
    pub achieved_share: f64,
    /// r: copies per unit of input.
    pub rate: f64,
    /// Achieved epochs: output size / input size, in the unit.
    pub epochs: f64,
    pub capped: bool,
    /// Got excess from capped keys.
    pub received_excess: bool,
    /// Rows written (copies).
    pub copies: u64,
    pub bytes_out: u64,
    /// Documents with at least one copy.
    pub docs_kept: u64,
    /// Documents with none (`remix_downsample`).
    pub docs_dropped: u64,
    /// `exact` mode: documents ranked at or above this (hex rank) get ⌈r⌉ copies, the
    /// rest ⌊r⌋.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
}

/// `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub schema: String,
    pub unit: Unit,
    pub mode: Mode,
    pub within: Within,
    pub target: TargetKind,
    pub max_epochs: f64,
    pub on_cap: OnCap,
    /// Input and planned output size in `unit`.
    pub total_in: f64,
    pub total_target: f64,
    pub total_out: f64,
    pub docs_in: u64,
    pub docs_kept: u64,
    pub rows_out: u64,
    /// Σ |target − achieved| over keys.
    pub l1_target_achieved: f64,
    /// Distinct documents / rows out.
    pub unique_fraction_out: f64,
    pub assignment_sources: BTreeMap<String, u64>,
    pub keys: Vec<KeyPlan>,
    pub warnings: Vec<String>,
    pub fingerprint: String,
}

impl Plan {
    pub fn key(&self, key: &str) -> Option<&KeyPlan> {
        self.keys.iter().find(|k| k.key == key)
    }

    /// The table printed on stderr: per key natural → target → achieved and epochs.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<24} {:>9} {:>12} {:>8} {:>8} {:>9} {:>7} {:>9} {:>9}",
            "remix key", "docs in", "in", "natural", "target", "achieved", "epochs", "copies", "dropped"
        );
        for k in &self.keys {
            let size = match self.unit {
                Unit::Bytes => human_bytes(k.bytes_in),
                Unit::Documents => k.docs_in.to_string(),
            };
            let _ = writeln!(
                t,
                "{:<24} {:>9} {:>12} {:>7.1}% {:>7.1}% {:>8.1}% {:>7.2} {:>9} {:>9}{}",
                k.key,
                k.docs_in,
                size,
                100.0 * k.natural_share,
                100.0 * k.target_share,
                100.0 * k.achieved_share,
                k.epochs,
                k.copies,
                k.docs_dropped,
                if k.capped { "  capped" } else { "" }
            );
        }
        let _ = writeln!(
            t,
            "L1(target, achieved) = {:.4}; {} documents in → {} rows out ({} distinct, {:.1}% unique)",
            self.l1_target_achieved,
            self.docs_in,
            self.rows_out,
            self.docs_kept,
            100.0 * self.unique_fraction_out
        );
        t
    }
}

fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

/// The rank of a document within its key (ascending = first to get an extra copy):
/// random: the draw; quality: score ↓ (unscored last), then the draw.
pub fn rank(row: &AssignRow, within: Within) -> u128 {
    match within {
        Within::Random => u128::from(row.draw),
        Within::Quality => {
            let desc = row.quality.map_or(u32::MAX, |q| u32::MAX - q.max(0.0).to_bits());
            (u128::from(desc) << 64) | u128::from(row.draw)
        }
    }
}

/// What decides the plan.
pub fn plan_fingerprint(step: &AssignStep, cfg: &RemixConfig, of: usize) -> String {
    fingerprint(&serde_json::json!({
        "stage": "remix-plan/1", "assign": step.fingerprint(), "of": of, "unit": cfg.unit,
        "mode": cfg.mode, "within": cfg.within, "max_epochs": cfg.max_epochs, "on_cap": cfg.on_cap,
        "total": cfg.total, "target": cfg.target,
    }))
}

/// Whether the plan ran now or was committed before.
#[derive(Debug)]
pub enum PlanOutcome {
    Done(Plan),
    AlreadyDone(Plan),
}

impl PlanOutcome {
    pub fn plan(&self) -> &Plan {
        match self {
            Self::Done(p) | Self::AlreadyDone(p) => p,
        }
    }
}

/// Reads the committed plan, or says to run the step.
pub fn read_plan(paths: &RemixPaths) -> Result<Plan> {
    if !paths.plan_marker().exists() {
        return Err(PipelineError::Config(format!(
            "{}: the remix plan has not committed; run `loam remix --phase plan` first",
            paths.index.display()
        )));
    }
    let p = paths.plan();
    let b = fs::read(&p).map_err(|e| PipelineError::io(&p, e))?;
    serde_json::from_slice(&b).map_err(|e| PipelineError::BadStats {
        path: p,
        detail: e.to_string(),
    })
}

/// Per key of a shard's header: its index in the plan's keys.
pub fn key_map(header: &AssignHeader, plan_keys: &[String]) -> Vec<usize> {
    header
        .keys
        .iter()
        .map(|k| plan_keys.iter().position(|p| p == &k.key).unwrap_or(usize::MAX))
        .collect()
}

fn size(unit: Unit, bytes: u64) -> f64 {
    match unit {
        Unit::Bytes => bytes as f64,
        Unit::Documents => 1.0,
    }
}

/// Copies of one document under the plan.
pub fn copies(plan: &Plan, k: &KeyPlan, row: &AssignRow, cut: Option<u128>) -> u32 {
    match plan.mode {
        Mode::Bernoulli => bernoulli_copies(k.rate, unit_interval(row.draw)),
        Mode::Exact => {
            let base = k.rate.floor() as u32;
            base + u32::from(cut.is_some_and(|c| rank(row, plan.within) <= c))
        }
    }
}

/// Parses a key's exact-mode cut.
pub fn parse_cut(k: &KeyPlan) -> Option<u128> {
    k.cut.as_deref().and_then(|c| u128::from_str_radix(c, 16).ok())
}

/// Runs the plan over the `of` committed assign shards.
pub fn run_plan(
    run_dir: &std::path::Path,
    step: &AssignStep,
    cfg: &RemixConfig,
    of: usize,
    force: bool,
) -> Result<PlanOutcome> {
    let paths = RemixPaths::new(run_dir);
    let fp = plan_fingerprint(step, cfg, of);
    let marker = paths.plan_marker();
    if !force && fs::read_to_string(&marker).is_ok_and(|f| f.trim() == fp) {
        return Ok(PlanOutcome::AlreadyDone(read_plan(&paths)?));
    }
    if marker.exists() {
        fs::remove_file(&marker).map_err(|e| PipelineError::io(&marker, e))?;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for i in 0..of {
        let shard = ShardId::new(i, of)?;
        if !IndexShard::committed(step.dir(), shard, step.fingerprint()) {
            return Err(PipelineError::Config(format!(
                "{}: domains of shard {i} of {of} are not committed for this configuration; run \
                 `loam remix --phase assign` for every shard first",
                step.dir().display()
            )));
        }
        files.push(step.assign_path(shard));
    }
    // 1. Totals per key from the headers alone.
    let mut keys: Vec<(String, String, u64, u64)> = Vec::new(); // key, domain, docs, bytes
    let mut sources: BTreeMap<String, u64> = BTreeMap::new();
    let mut headers = Vec::new();
    for f in &files {
        let h = read_header_only(f)?;
        for k in &h.keys {
            match keys.iter_mut().find(|x| x.0 == k.key) {
                Some(x) => {
                    x.2 += k.docs;
                    x.3 += k.bytes;
                }
                None => keys.push((k.key.clone(), k.domain.clone(), k.docs, k.bytes)),
            }
        }
        for (s, n) in &h.sources {
            *sources.entry(s.clone()).or_default() += n;
        }
        headers.push(h);
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let n: Vec<f64> = keys
        .iter()
        .map(|k| match cfg.unit {
            Unit::Bytes => k.3 as f64,
            Unit::Documents => k.2 as f64,
        })
        .collect();
    let total_in: f64 = n.iter().sum();
    let sizes: Vec<(String, f64)> = keys.iter().zip(&n).map(|(k, &v)| (k.0.clone(), v)).collect();
    let mut known = step.domains();
    known.extend(keys.iter().map(|k| k.0.clone()));
    let total_target = cfg.total.amount().map_or(total_in, |a| a as f64);
    let t = &cfg.target;
    let shares = target_shares(
        t.kind,
        &t.weights,
        t.alpha,
        &sizes,
        total_target,
        cfg.max_epochs,
        &known,
    )
    .map_err(PipelineError::Config)?;
    let total_for_rates = if t.kind == TargetKind::Unimax {
        super::mixture::unimax(&n, total_target, cfg.max_epochs).iter().sum()
    } else {
        total_target
    };
    let r = rates(&shares, &n, total_for_rates, cfg.max_epochs, cfg.on_cap).map_err(|e| {
        // Name the key the mixture module could only number.
        let named = keys
            .iter()
            .enumerate()
            .fold(e, |e, (i, k)| e.replace(&format!("key {i} "), &format!("{} ", k.0)));
        PipelineError::Config(format!(
            "remix: {named}; raise max_epochs, lower its weight, or set on_cap = \"redistribute\""
        ))
    })?;
    let plan_keys: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
    let mut kp: Vec<KeyPlan> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| KeyPlan {
            key: k.0.clone(),
            domain: k.1.clone(),
            docs_in: k.2,
            bytes_in: k.3,
            natural_share: if total_in > 0.0 { n[i] / total_in } else { 0.0 },
            target_share: shares[i],
            planned_share: r.planned_share[i],
            achieved_share: 0.0,
            rate: r.rates[i],
            epochs: 0.0,
            capped: r.capped[i],
            received_excess: r.received[i],
            copies: 0,
            bytes_out: 0,
            docs_kept: 0,
            docs_dropped: 0,
            cut: None,
        })
        .collect();
    // 2. Exact mode: rank every document within its key and fill each quota of extra copies.
    if cfg.mode == Mode::Exact {
        let tmp = paths.index.join(format!("_tmp-{}", std::process::id()));
        fs::create_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
        let mut sorter = ExternalSorter::<(u128, u64)>::new(&tmp, "ranks", (cfg.memory_limit_mb << 20) as usize);
        for (f, h) in files.iter().zip(&headers) {
            let map = key_map(h, &plan_keys);
            let (_, rows) = read_assign(f)?;
            for row in rows {
                let k = map[usize::from(row.key)];
                sorter.push(((k as u128) << 112 | rank(&row, cfg.within), row.bytes))?;
            }
        }
        let quota: Vec<f64> = kp.iter().zip(&n).map(|(k, &n)| (k.rate - k.rate.floor()) * n).collect();
        let mut filled = vec![0.0f64; kp.len()];
        let mut closed = vec![false; kp.len()];
        let mut sorted = sorter.finish()?;
        for (r, bytes) in sorted.by_ref() {
            let k = (r >> 112) as usize;
            if closed[k] {
                continue;
            }
            let s = size(cfg.unit, bytes);
            // A prefix of the ranking: take the next document while that brings the filled
            // amount closer to the quota, then stop.
            if filled[k] + s / 2.0 <= quota[k] {
                filled[k] += s;
                kp[k].cut = Some(format!("{:x}", r & ((1u128 << 112) - 1)));
            } else {
                closed[k] = true;
            }
        }
        if let Some(e) = sorted.error.take() {
            return Err(e);
        }
        let _ = fs::remove_dir_all(&tmp);
    }
    // 3. What every document gets: the achieved mixture, before anything is written.
    let cuts: Vec<Option<u128>> = kp.iter().map(parse_cut).collect();
    let mut plan = Plan {
        schema: PLAN_SCHEMA.into(),
        unit: cfg.unit,
        mode: cfg.mode,
        within: cfg.within,
        target: t.kind,
        max_epochs: cfg.max_epochs,
        on_cap: cfg.on_cap,
        total_in,
        total_target,
        total_out: 0.0,
        docs_in: 0,
        docs_kept: 0,
        rows_out: 0,
        l1_target_achieved: 0.0,
        unique_fraction_out: 0.0,
        assignment_sources: sources,
        keys: Vec::new(),
        warnings: Vec::new(),
        fingerprint: fp.clone(),
    };
    let mut out_size = vec![0.0f64; kp.len()];
    for (f, h) in files.iter().zip(&headers) {
        let map = key_map(h, &plan_keys);
        let (_, rows) = read_assign(f)?;
        for row in &rows {
            let ki = map[usize::from(row.key)];
            let c = copies(&plan, &kp[ki], row, cuts[ki]);
            let k = &mut kp[ki];
            k.copies += u64::from(c);
            k.bytes_out += u64::from(c) * row.bytes;
            if c > 0 {
                k.docs_kept += 1;
            } else {
                k.docs_dropped += 1;
            }
            out_size[ki] += f64::from(c) * size(cfg.unit, row.bytes);
        }
    }
    let total_out: f64 = out_size.iter().sum();
    for (i, k) in kp.iter_mut().enumerate() {
        k.achieved_share = if total_out > 0.0 { out_size[i] / total_out } else { 0.0 };
        k.epochs = if n[i] > 0.0 { out_size[i] / n[i] } else { 0.0 };
    }
    plan.total_out = total_out;
    plan.docs_in = kp.iter().map(|k| k.docs_in).sum();
    plan.docs_kept = kp.iter().map(|k| k.docs_kept).sum();
    plan.rows_out = kp.iter().map(|k| k.copies).sum();
    plan.l1_target_achieved = kp.iter().map(|k| (k.target_share - k.achieved_share).abs()).sum();
    plan.unique_fraction_out = if plan.rows_out > 0 {
        plan.docs_kept as f64 / plan.rows_out as f64
    } else {
        0.0
    };
    let receivers: Vec<&str> = kp
        .iter()
        .filter(|k| k.received_excess)
        .map(|k| k.key.as_str())
        .collect();
    for k in kp.iter().filter(|k| k.capped) {
        plan.warnings.push(format!(
            "{} capped at {:.2} epochs: target {:.1}% → achieved {:.1}%{}",
            k.key,
            cfg.max_epochs,
            100.0 * k.target_share,
            100.0 * k.achieved_share,
            match cfg.on_cap {
                OnCap::Redistribute if !receivers.is_empty() => format!(" (excess to {})", receivers.join(", ")),
                OnCap::Redistribute => " (every weighted key capped: the total shrinks)".into(),
                _ => " (total shrunk, shares kept)".into(),
            }
        ));
    }
    if cfg.target.kind == TargetKind::Weights {
        for k in kp.iter().filter(|k| k.target_share == 0.0 && k.docs_in > 0) {
            plan.warnings.push(format!(
                "{} has no weight in remix.target.weights: all {} of its documents are downsampled",
                k.key, k.docs_in
            ));
        }
    }
    plan.keys = kp;
    let json = serde_json::to_vec_pretty(&plan).map_err(|e| PipelineError::Config(e.to_string()))?;
    write_atomic(&paths.plan(), &json)?;
    fs::create_dir_all(paths.plan_report().parent().unwrap_or(&paths.stage))
        .map_err(|e| PipelineError::io(&paths.stage, e))?;
    write_atomic(&paths.plan_report(), &json)?;
    crate::stage::failpoint("before_remix_plan_marker", ShardId::new(0, 1)?);
    fs::create_dir_all(marker.parent().unwrap_or(&paths.index)).map_err(|e| PipelineError::io(&paths.index, e))?;
    write_atomic(&marker, fp.as_bytes())?;
    Ok(PlanOutcome::Done(plan))
}

/// The header of an assign file without its rows.
fn read_header_only(path: &std::path::Path) -> Result<AssignHeader> {
    use std::io::Read;
    let bad = |what: &str| PipelineError::BadFile {
        path: path.to_owned(),
        offset: 0,
        what: what.to_owned(),
        fix: "rerun `loam remix --phase assign --force` for its shard".into(),
    };
    let mut f = fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut head = [0u8; 16];
    f.read_exact(&mut head).map_err(|_| bad("truncated"))?;
    if &head[..8] != super::assign::ASSIGN_MAGIC {
        return Err(bad("not a loam remix assign file"));
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(&head[8..]);
    let mut h = vec![0u8; u64::from_le_bytes(l) as usize];
    f.read_exact(&mut h).map_err(|_| bad("truncated header"))?;
    serde_json::from_slice(&h).map_err(|_| bad("unreadable header"))
}
