//! One function per report section, each from the files its stage wrote.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_pipeline::sample::SampleRow;
use loam_report::model::*;
use serde_json::Value;

use super::read::{
    f, hist_pair, kept_dropped, per_dump, read_json, reasons, rule_rank, s, sample_side, stage_stats, u, Merged,
};

/// DeepSeek LLM, Table 1: Common Crawl dumps deduplicated together → % documents removed.
const PAPER_TABLE1: [(u32, f64); 8] = [
    (1, 22.2),
    (2, 46.7),
    (6, 55.7),
    (12, 69.9),
    (16, 75.7),
    (22, 76.3),
    (41, 81.6),
    (91, 89.8),
];

pub(super) fn filter(run: &Path, m: &Merged, cfg: &toml::Value, n: usize, seed: u64) -> Result<Filter> {
    let mut rs = reasons(m);
    rs.sort_by_key(|x| rule_rank(&x.reason));
    let mut languages: Vec<Count> = m
        .counters
        .iter()
        .filter_map(|(k, &n)| k.strip_prefix("kept_language_").map(|l| Count { key: l.into(), n }))
        .collect();
    languages.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.key.cmp(&b.key)));
    languages.truncate(12);
    // The rules' own quantities, recomputed on the sample (the stage records only the
    // first reason a document failed, not the values).
    let meter = cfg
        .get("filter")
        .cloned()
        .and_then(|v| v.try_into::<loam_quality::FilterConfig>().ok())
        .map(|c| loam_quality::filter::RuleMeter::new(&c));
    let limits: RefCell<BTreeMap<String, Limit>> = RefCell::default();
    let measure = |text: &str, lang: Option<&str>| -> Vec<(String, f64)> {
        let (Some(meter), Some(lang)) = (&meter, lang) else {
            return Vec::new();
        };
        let mut seen = limits.borrow_mut();
        meter
            .measure(text, lang)
            .into_iter()
            .map(|x| {
                seen.entry(x.reason.to_owned()).or_insert(Limit {
                    what: x.what,
                    limit: x.limit,
                    drop_above: x.drop_above,
                });
                (x.reason.to_owned(), x.value)
            })
            .collect()
    };
    let kept = sample_side(run, "filter", false, n, seed, Some(&measure))?;
    let dropped = sample_side(run, "filter", true, n, seed, Some(&measure))?;
    let rule_histograms = rule_histograms(&kept, &dropped, &limits.into_inner(), &m.dropped);
    let min_lang = cfg
        .get("filter")
        .and_then(|f| f.get("min_language_score"))
        .and_then(toml::Value::as_float);
    let mut histograms = Vec::new();
    histograms.extend(hist_pair(
        "language score",
        "fastText language probability",
        (0..=20).map(|i| i as f64 / 20.0).collect(),
        &kept_dropped(&kept, &dropped),
        |r| r.language_score.map(f64::from),
        min_lang.map(|x| Marker {
            x,
            label: "min_language_score".into(),
        }),
    ));
    let log_edges: Vec<f64> = (0..=24).map(|i| i as f64 * 0.5).collect();
    histograms.extend(hist_pair(
        "document length",
        "log2 characters",
        log_edges,
        &kept_dropped(&kept, &dropped),
        |r| Some((r.chars.max(1) as f64).log2()),
        None,
    ));
    Ok(Filter {
        reasons: rs,
        languages,
        per_dump: per_dump(m),
        edited: m.counters.get("edited").copied().unwrap_or(0),
        c4_lines_removed: m.counters.get("c4_lines_removed").copied().unwrap_or(0),
        histograms,
        rule_histograms,
        sample: SampleNote {
            kept: kept.len(),
            dropped: dropped.len(),
            seed,
        },
    })
}

/// How a rule thresholds one quantity.
struct Limit {
    what: &'static str,
    limit: f64,
    drop_above: bool,
}

/// Charts at most this many rule quantities (those that dropped most, then rule order).
const RULE_CHARTS: usize = 8;

/// Per-rule histograms: each quantity for kept documents, those it dropped, and those
/// another heuristic rule dropped, with its limit drawn.
fn rule_histograms(
    kept: &[SampleRow],
    dropped: &[SampleRow],
    limits: &BTreeMap<String, Limit>,
    drops: &BTreeMap<String, u64>,
) -> Vec<Histogram> {
    let heuristic = |r: &&SampleRow| {
        r.reason
            .as_deref()
            .is_some_and(|x| ["gopher", "c4", "fineweb"].iter().any(|p| x.starts_with(p)))
    };
    let mut order: Vec<(&String, &Limit)> = limits.iter().collect();
    order.sort_by_key(|(reason, _)| {
        (
            std::cmp::Reverse(drops.get(*reason).copied().unwrap_or(0)),
            rule_rank(reason),
        )
    });
    let mut out = Vec::new();
    for (reason, l) in order.into_iter().take(RULE_CHARTS) {
        let value = |r: &SampleRow| r.measures.iter().find(|(k, _)| k == reason).map(|x| x.1);
        let mut vs: Vec<f64> = kept
            .iter()
            .chain(dropped.iter().filter(heuristic))
            .filter_map(value)
            .filter(|v| v.is_finite())
            .collect();
        if vs.is_empty() {
            continue;
        }
        vs.sort_by(f64::total_cmp);
        let p98 = vs[(vs.len() - 1) * 98 / 100];
        // Counts spanning decades (words) read best on a log axis; ratios on a linear one.
        let log = l.limit > 1.0 && (p98 > 8.0 * l.limit || l.limit >= 1000.0);
        let tx = |v: f64| if log { (1.0 + v.max(0.0)).log2() } else { v };
        let (edges, x_label) = if log {
            let hi = tx(p98.max(l.limit)).ceil().max(1.0);
            let edges = (0..=(2.0 * hi) as usize).map(|i| i as f64 / 2.0).collect();
            (edges, format!("log2(1 + {})", l.what))
        } else {
            let mut hi = p98.max(1.5 * l.limit);
            if l.limit <= 1.0 && vs[vs.len() - 1] <= 1.0 {
                hi = hi.min(1.0);
            }
            let hi = if hi > 0.0 { hi } else { 1.0 };
            ((0..=20).map(|i| hi * i as f64 / 20.0).collect(), l.what.to_owned())
        };
        let groups = [
            (
                "dropped by another rule",
                dropped
                    .iter()
                    .filter(heuristic)
                    .filter(|r| r.reason.as_deref() != Some(reason.as_str()))
                    .collect(),
            ),
            (
                "dropped by this rule",
                dropped
                    .iter()
                    .filter(|r| r.reason.as_deref() == Some(reason.as_str()))
                    .collect(),
            ),
            ("kept", kept.iter().collect()),
        ];
        let side = if l.drop_above { "above" } else { "below" };
        out.extend(hist_pair(
            &format!("{reason}: {}", l.what),
            &x_label,
            edges,
            &groups,
            |r| value(r).map(tx),
            Some(Marker {
                x: tx(l.limit),
                label: format!("drops {side} {}", l.limit),
            }),
        ));
    }
    out
}

pub(super) fn dedup(run: &Path, m: &Merged, n: usize, seed: u64) -> Result<Dedup> {
    let sum = read_json(&run.join("dedup/_index/cluster/summary.json"))?.unwrap_or_default();
    let curve = sum["curve"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| CurvePoint {
                    dumps: u(c, "dumps") as u32,
                    last_dump: s(c, "last_dump"),
                    documents: u(c, "documents"),
                    removed: u(c, "removed"),
                    removed_share: f(c, "removed_share"),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut cluster_sizes: Vec<(u64, u64)> = sum["cluster_sizes"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    cluster_sizes.sort_unstable();
    let dropped = sample_side(run, "dedup", true, n, seed, None)?;
    let mut by_survivor: BTreeMap<String, Vec<&SampleRow>> = BTreeMap::new();
    for d in &dropped {
        if let Some(s) = &d.detail {
            by_survivor.entry(s.clone()).or_default().push(d);
        }
    }
    let mut groups: Vec<(String, Vec<&SampleRow>)> = by_survivor.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let examples = groups
        .into_iter()
        .take(3)
        .map(|(survivor, rows)| Cluster {
            survivor,
            members: rows
                .iter()
                .take(3)
                .map(|r| snippet(r, r.reason.clone().unwrap_or_default()))
                .collect(),
        })
        .collect();
    Ok(Dedup {
        documents: u(&sum, "documents").max(m.docs_in),
        kept: m.kept,
        exact_duplicate: m.dropped.get("exact_duplicate").copied().unwrap_or(0),
        near_duplicate: m.dropped.get("near_duplicate").copied().unwrap_or(0),
        docs_with_lines_removed: m.counters.get("docs_with_lines_removed").copied().unwrap_or(0),
        lines_removed: m.counters.get("dup_lines_removed").copied().unwrap_or(0),
        curve,
        paper_table1: PAPER_TABLE1.to_vec(),
        per_dump: per_dump(m),
        cluster_sizes,
        examples,
    })
}

fn snippet(r: &SampleRow, label: String) -> Snippet {
    let mut text: String = r.text.chars().take(280).collect();
    if r.chars > 280 {
        text.push('…');
    }
    Snippet {
        id: r.id.clone(),
        dump: r.dump.clone(),
        label,
        text,
    }
}

pub(super) fn quality(run: &Path, n: usize, seed: u64, header: &mut Header) -> Result<Quality> {
    let threshold = read_json(&run.join("quality/_index/threshold.json"))?.unwrap_or_default();
    let per_lang: BTreeMap<String, &Value> = threshold["models"]
        .as_array()
        .map(|a| a.iter().map(|m| (s(m, "language"), m)).collect())
        .unwrap_or_default();
    let mut models = Vec::new();
    let mut cards: Vec<PathBuf> = std::fs::read_dir(run.join("quality/_model"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    cards.retain(|p| p.to_string_lossy().ends_with(".card.json"));
    cards.sort();
    for c in &cards {
        let Some(card) = read_json(c)? else { continue };
        let lang = s(&card, "language");
        let t = per_lang.get(&lang);
        let file = s(&card, "model");
        let sha = card["bin"]["sha256"].as_str().unwrap_or_default().to_owned();
        header.quality_models.push(FileDigest {
            name: file.clone(),
            bytes: u(&card["bin"], "bytes"),
            sha256: sha,
        });
        let counts = |v: &Value| -> BTreeMap<String, u64> {
            v.as_object()
                .map(|o| o.iter().map(|(k, x)| (k.clone(), x.as_u64().unwrap_or(0))).collect())
                .unwrap_or_default()
        };
        models.push(QualityModel {
            language: lang,
            file,
            heldout_roc_auc: f(&card["heldout"], "roc_auc"),
            threshold: t.and_then(|t| t["threshold_score"].as_f64()),
            scored: t.map_or(0, |t| u(t, "scored")),
            keep: t.map_or(0, |t| u(t, "keep")),
            train_examples: counts(&card["train_examples"]),
            heldout_examples: counts(&card["heldout_examples"]),
            sources: card["sources"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| QualitySource {
                            name: s(x, "name"),
                            label: s(x, "label"),
                            split: s(x, "split"),
                            docs: u(x, "docs"),
                            bytes: u(x, "bytes"),
                            sha256: s(x, "sha256"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            what: s(&card, "what"),
        });
    }
    // Score histograms: merged from every shard's stats (exact, all documents).
    let mut hist: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut bins = 20;
    for st in stage_stats(run, "quality")? {
        let Some(h) = st.extra.get("score_histogram") else {
            continue;
        };
        bins = h["bins"].as_u64().unwrap_or(20) as usize;
        for (lang, v) in h["by_language"].as_object().into_iter().flatten() {
            let e = hist
                .entry(lang.clone())
                .or_insert_with(|| (vec![0.0; bins], vec![0.0; bins]));
            for (side, arr) in [(&mut e.0, &v["kept"]), (&mut e.1, &v["dropped"])] {
                for (i, x) in arr.as_array().into_iter().flatten().enumerate() {
                    if let Some(slot) = side.get_mut(i) {
                        *slot += x.as_f64().unwrap_or(0.0);
                    }
                }
            }
        }
    }
    let kept = sample_side(run, "quality", false, n, seed, None)?;
    let dropped = sample_side(run, "quality", true, n, seed, None)?;
    let edges: Vec<f64> = (0..=bins).map(|i| i as f64 / bins as f64).collect();
    let mut histograms = Vec::new();
    for (lang, (k, d)) in &hist {
        let marker = per_lang
            .get(lang)
            .and_then(|t| t["threshold_score"].as_f64())
            .map(|x| Marker {
                x,
                label: "threshold".into(),
            });
        histograms.push(Histogram {
            title: format!("quality score, {lang} (by documents, all scored)"),
            x_label: "P(reference)".into(),
            edges: edges.clone(),
            series: vec![
                HistSeries {
                    name: "dropped".into(),
                    counts: d.clone(),
                },
                HistSeries {
                    name: "kept".into(),
                    counts: k.clone(),
                },
            ],
            marker: marker.clone(),
            weight: "documents".into(),
        });
        let in_lang = |rows: &[SampleRow]| -> Vec<SampleRow> {
            rows.iter()
                .filter(|r| r.language.as_deref() == Some(lang.as_str()))
                .cloned()
                .collect()
        };
        let [_, by_bytes] = hist_pair(
            &format!("quality score, {lang}, sample"),
            "P(reference)",
            edges.clone(),
            &kept_dropped(&in_lang(&kept), &in_lang(&dropped)),
            |r| r.quality_score.map(f64::from),
            marker,
        );
        histograms.push(by_bytes);
    }
    let mut scored: Vec<&SampleRow> = kept
        .iter()
        .chain(&dropped)
        .filter(|r| r.quality_score.is_some())
        .collect();
    scored.sort_by(|a, b| {
        a.quality_score
            .partial_cmp(&b.quality_score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.id.cmp(&b.id))
    });
    let snippets = if scored.is_empty() {
        Vec::new()
    } else {
        (1..=9)
            .map(|d| {
                let r = scored[(scored.len() - 1) * d / 10];
                snippet(
                    r,
                    format!(
                        "decile {d}0%: score {:.3}, {}",
                        r.quality_score.unwrap_or(0.0),
                        if r.reason.is_some() { "dropped" } else { "kept" }
                    ),
                )
            })
            .collect()
    };
    Ok(Quality {
        models,
        rule: s(&threshold, "rule"),
        histograms,
        snippets,
        sample: SampleNote {
            kept: kept.len(),
            dropped: dropped.len(),
            seed,
        },
    })
}

pub(super) fn remix(run: &Path, plan: &Value, n: usize, seed: u64) -> Result<Remix> {
    let out = sample_side(run, "remix", false, n, seed, None)?;
    let mut dl: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &out {
        let key = (
            r.mix_domain.clone().unwrap_or_else(|| "—".into()),
            r.language.clone().unwrap_or_else(|| "—".into()),
        );
        *dl.entry(key).or_default() += 1;
    }
    Ok(Remix {
        unit: s(plan, "unit"),
        target: s(plan, "target"),
        max_epochs: f(plan, "max_epochs"),
        docs_in: u(plan, "docs_in"),
        docs_kept: u(plan, "docs_kept"),
        rows_out: u(plan, "rows_out"),
        l1_target_achieved: f(plan, "l1_target_achieved"),
        unique_fraction_out: f(plan, "unique_fraction_out"),
        domains: plan["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|k| RemixDomain {
                        domain: s(k, "key"),
                        docs_in: u(k, "docs_in"),
                        natural_share: f(k, "natural_share"),
                        target_share: f(k, "target_share"),
                        achieved_share: f(k, "achieved_share"),
                        epochs: f(k, "epochs"),
                        capped: k["capped"].as_bool().unwrap_or(false),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        domain_language: dl.into_iter().map(|((d, l), n)| (d, l, n)).collect(),
    })
}

pub(super) fn tokenize(t: &Value) -> Tokenize {
    let total = &t["total"];
    let mut hist: Vec<(u64, u64)> = t["doc_tokens_histogram"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    Some((
                        1u64 << k.strip_prefix("lt_2^")?.parse::<u32>().ok()?.min(63),
                        v.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    hist.sort_unstable();
    Tokenize {
        tokenizer_sha256: s(t, "tokenizer_sha256"),
        vocab_size: u(t, "vocab_size"),
        docs: u(total, "docs"),
        tokens: u(total, "tokens"),
        text_bytes: u(total, "text_bytes"),
        bytes_per_token: f(total, "bytes_per_token"),
        tokens_per_doc: hist,
        per_dump: token_rows(&t["per_dump"]),
        per_language: token_rows(&t["per_language"]),
        per_domain: token_rows(&t["per_domain"]),
    }
}

fn token_rows(v: &Value) -> Vec<TokenRow> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| TokenRow {
                    key: k.clone(),
                    docs: u(v, "docs"),
                    tokens: u(v, "tokens"),
                    text_bytes: u(v, "text_bytes"),
                    bytes_per_token: f(v, "bytes_per_token"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs_of(v: &Value) -> Vec<(String, f64)> {
    v.as_object()
        .map(|o| o.iter().filter_map(|(k, x)| Some((k.clone(), x.as_f64()?))).collect())
        .unwrap_or_default()
}

pub(super) fn score(sc: &Value) -> Score {
    let c = &sc["corpus"];
    Score {
        q: f(sc, "q"),
        a: f(sc, "a"),
        b: f(sc, "b"),
        sigma_a: f(sc, "sigma_a"),
        calibration: s(&sc["calibration"], "source"),
        assumption: s(sc, "assumption"),
        diagnostics: pairs_of(&c["diagnostics"]),
        p_raw: f(c, "p_raw"),
        p_final: f(c, "p_final"),
        p_pos: f(c, "p_pos"),
        allocation: pairs_of(&sc["train"]),
    }
}

/// The sweep's IsoFLOP curves and fits; `score` (score.json) gives the predicted M_opt(C).
pub(super) fn sweep(fit: &Value, score: Option<&Value>) -> Sweep {
    let runs = fit["sweep"]["runs"].as_array().cloned().unwrap_or_default();
    let slices = fit["approach2"]["fit"]["slices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let budgets = fit["budgets"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(Value::as_f64)
                .map(|c| {
                    let points = runs
                        .iter()
                        .filter(|r| f(r, "budget") == c && s(r, "status") == "ok" && r["dropped"].is_null())
                        .map(|r| (f(r, "m"), f(r, "loss_bpb")))
                        .collect();
                    let slice = slices.iter().find(|x| f(x, "budget") == c && x["refused"].is_null());
                    let parabola = slice.and_then(|x| {
                        let k = x["coef"].as_array()?;
                        Some([
                            f(x, "centre"),
                            k.first()?.as_f64()?,
                            k.get(1)?.as_f64()?,
                            k.get(2)?.as_f64()?,
                        ])
                    });
                    IsoFlop {
                        flops: c,
                        points,
                        parabola,
                        vertex: slice.map(|x| (f(x, "size_opt"), f(x, "loss_opt"))),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let boot = &fit["bootstrap"];
    let est = |name: &str, a: &Value, b: &Value| {
        a.as_f64()
            .map(|a| (name.to_owned(), a, b["lo"].as_f64(), b["hi"].as_f64()))
    };
    Sweep {
        verdict: s(&fit["check"], "verdict"),
        predicted_a: fit["check"]["a_predicted"].as_f64(),
        estimates: [
            est("approach 2 (IsoFLOP vertices)", &fit["a_approach2"], &boot["a2"]),
            est("approach 3 (parametric law)", &fit["a_approach3"], &boot["a3"]),
        ]
        .into_iter()
        .flatten()
        .collect(),
        budgets,
        size_fit: {
            let z = &fit["approach2"]["fit"]["size"];
            z["exponent"].as_f64().zip(z["intercept"].as_f64())
        },
        predicted: score
            .and_then(|sc| sc["budgets"].as_array())
            .map(|b| {
                b.iter()
                    .filter_map(|x| Some((x["compute"].as_f64()?, x["m_opt"].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default(),
        warnings: fit["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    }
}

/// Curve points kept from train/metrics.jsonl: every k-th step, so at most about this many.
const CURVE_POINTS: usize = 400;

pub(super) fn train(run: &Path, sum: &Value) -> Result<Train> {
    use std::io::BufRead;
    let path = run.join("train/metrics.jsonl");
    // Streamed twice (count, then pick): a long run's metrics are never held whole.
    let lines = || -> Result<Box<dyn Iterator<Item = String>>> {
        match std::fs::File::open(&path) {
            Ok(file) => Ok(Box::new(std::io::BufReader::new(file).lines().map_while(|l| l.ok()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    };
    let n = lines()?.count();
    let every = n.div_ceil(CURVE_POINTS).max(1);
    let (mut curve, mut val_curve) = (Vec::new(), Vec::new());
    for (i, line) in lines()?.enumerate() {
        let pick = i % every == 0 || i + 1 == n;
        let has_val = line.contains("\"val_bpb\"");
        if !pick && !has_val {
            continue;
        }
        let Ok(m) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if pick && m.get("loss").is_some() {
            curve.push((f(&m, "tokens"), f(&m, "loss"), f(&m, "lr"), f(&m, "grad_norm")));
        }
        if let Some(b) = m["val_bpb"].as_f64() {
            val_curve.push((f(&m, "tokens"), b));
        }
    }
    Ok(Train {
        steps: u(sum, "steps"),
        tokens: u(sum, "tokens"),
        params: u(sum, "params"),
        final_loss: f(sum, "final_loss"),
        val_loss: sum["val_loss"].as_f64(),
        val_bpb: sum["val_bpb"].as_f64(),
        bytes_per_token: sum["bytes_per_token_val"].as_f64(),
        curve,
        val_curve,
    })
}
