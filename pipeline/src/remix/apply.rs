//! The `remix` stage proper (per shard): each upstream document, in the row order the
//! assign step used, gets the copies the committed plan gives it. Copies carry `repeat`
//! (0-based) and the shard's rows are written in the order of a hash of (id, repeat), so
//! copies of one document land apart; documents with no copy go to `_dropped` as
//! `remix_downsample`.
//!
//! The reorder is bounded: when a shard's output would exceed `memory_limit_mb`, the hash
//! range is cut into passes, each re-reading the shard and keeping only its slice, so the
//! bytes written do not depend on the memory limit.
use std::collections::BTreeMap;
use std::path::Path;

use super::assign::{read_assign, AssignStep};
use super::plan::{copies, key_map, parse_cut, plan_fingerprint, read_plan, Plan};
use super::{order_key, unit_interval, Mode, RemixConfig, RemixPaths};
use crate::error::{PipelineError, Result};
use crate::schema::{Columns, Document, DocumentReader};
use crate::stage::{fingerprint, ShardId, ShardWriter, Stage};

pub struct Apply {
    step: AssignStep,
    plan: Plan,
    cfg: RemixConfig,
    seed: u64,
    fingerprint: String,
}

impl Apply {
    /// Needs the committed plan, made from these assignments over an `of`-way split.
    pub fn new(run_dir: &Path, step: AssignStep, cfg: &RemixConfig, seed: u64, of: usize) -> Result<Self> {
        let paths = RemixPaths::new(run_dir);
        let plan = read_plan(&paths)?;
        if plan.fingerprint != plan_fingerprint(&step, cfg, of) {
            return Err(PipelineError::Config(format!(
                "{}: the committed remix plan was made from other domains or another target; rerun \
                 `loam remix --phase plan` (with --force)",
                paths.plan().display()
            )));
        }
        let fingerprint = fingerprint(&serde_json::json!({"stage": "remix/1", "plan": plan.fingerprint}));
        Ok(Self {
            step,
            plan,
            cfg: cfg.clone(),
            seed,
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// The pass (of `passes`) a copy's order key falls in: equal slices of the hash range,
/// so passes in order write rows in ascending key order.
fn pass_of(key: u64, passes: u64) -> u64 {
    ((u128::from(key) * u128::from(passes)) >> 64) as u64
}

impl Stage for Apply {
    fn name(&self) -> &'static str {
        "remix"
    }

    fn columns(&self) -> Columns {
        Columns::Remix
    }

    fn upstream(&self) -> Option<&str> {
        Some(&self.cfg.upstream)
    }

    fn run_shard(&self, shard: ShardId, out: &mut ShardWriter) -> Result<()> {
        let path = self.step.assign_path(shard);
        let (header, rows) = read_assign(&path)?;
        let plan_keys: Vec<String> = self.plan.keys.iter().map(|k| k.key.clone()).collect();
        let map = key_map(&header, &plan_keys);
        let mismatch = |what: String| PipelineError::BadFile {
            path: path.clone(),
            offset: 0,
            what,
            fix: "the upstream stage changed after remix assigned domains; rerun `loam remix` with --force".into(),
        };
        if let Some(k) = header.keys.iter().zip(&map).find(|(_, &m)| m == usize::MAX) {
            return Err(mismatch(format!("key {} is not in the committed plan", k.0.key)));
        }
        let cuts: Vec<Option<u128>> = self.plan.keys.iter().map(parse_cut).collect();
        let n_copies: Vec<u32> = rows
            .iter()
            .map(|r| {
                let ki = map[usize::from(r.key)];
                copies(&self.plan, &self.plan.keys[ki], r, cuts[ki])
            })
            .collect();
        // Passes over the shard so one pass's documents fit the memory limit (~2× text
        // bytes in memory per document held).
        let held: u64 = rows
            .iter()
            .zip(&n_copies)
            .filter(|(_, &c)| c > 0)
            .map(|(r, _)| 2 * r.bytes + 256)
            .sum();
        let budget = (self.cfg.memory_limit_mb << 20).max(1);
        let passes = held.div_ceil(budget).max(1);
        out.rows_are_copies();
        let mut per_key: BTreeMap<String, [u64; 3]> = BTreeMap::new(); // kept, copies, dropped
        for pass in 0..passes {
            let mut held: Vec<Document> = Vec::new();
            let mut order: Vec<(u64, u32, usize)> = Vec::new(); // (order key, repeat, held index)
            let mut i = 0usize;
            for input in self.step.shard_inputs(shard) {
                for batch in DocumentReader::open(input)? {
                    for mut doc in batch? {
                        let Some(row) = rows.get(i) else {
                            return Err(mismatch(format!(
                                "{} assignments for more upstream documents",
                                rows.len()
                            )));
                        };
                        let c = n_copies[i];
                        i += 1;
                        if row.draw != super::draw(&doc.id, self.seed) {
                            return Err(mismatch(format!(
                                "the assignment of a row for {} belongs to another document",
                                doc.id
                            )));
                        }
                        let kc = &header.keys[usize::from(row.key)];
                        let kp = &self.plan.keys[map[usize::from(row.key)]];
                        if pass == 0 {
                            out.record_in(row.bytes);
                            let e = per_key.entry(kc.key.clone()).or_default();
                            if c == 0 {
                                e[2] += 1;
                                doc.signals.mix_domain = Some(kc.domain.clone());
                                doc.signals.mix_domain_source = Some(row.source.as_str().into());
                                doc.signals.mix_domain_score = row.domain_score;
                                let detail = match self.plan.mode {
                                    Mode::Bernoulli => format!(
                                        "{}: rate {:.4}, u {:.4} ≥ {:.4}",
                                        kc.key,
                                        kp.rate,
                                        unit_interval(row.draw),
                                        kp.rate - kp.rate.floor()
                                    ),
                                    Mode::Exact => format!(
                                        "{}: rate {:.4}, ranked past the key's quota of extra copies",
                                        kc.key, kp.rate
                                    ),
                                };
                                out.drop_doc(&doc, "remix_downsample", Some(&detail))?;
                                continue;
                            }
                            e[0] += 1;
                            e[1] += u64::from(c);
                            out.keep_counted();
                        }
                        let mine: Vec<(u64, u32)> = (0..c)
                            .map(|r| (order_key(&doc.id, r, self.seed), r))
                            .filter(|(k, _)| pass_of(*k, passes) == pass)
                            .collect();
                        if mine.is_empty() {
                            continue;
                        }
                        doc.signals.mix_domain = Some(kc.domain.clone());
                        doc.signals.mix_domain_source = Some(row.source.as_str().into());
                        doc.signals.mix_domain_score = row.domain_score;
                        for (k, r) in mine {
                            order.push((k, r, held.len()));
                        }
                        held.push(doc);
                    }
                }
            }
            if i != rows.len() {
                return Err(mismatch(format!(
                    "{} assignments for fewer ({i}) upstream documents",
                    rows.len()
                )));
            }
            order.sort_unstable();
            for (_, r, h) in order {
                let doc = &mut held[h];
                doc.signals.repeat = Some(r);
                out.write_copy(doc)?;
            }
        }
        out.count("reorder_passes", passes);
        out.set_extra(
            "keys",
            serde_json::json!(per_key
                .iter()
                .map(|(k, v)| (
                    k.clone(),
                    serde_json::json!({"kept": v[0], "copies": v[1], "dropped": v[2]})
                ))
                .collect::<serde_json::Map<_, _>>()),
        );
        Ok(())
    }
}
