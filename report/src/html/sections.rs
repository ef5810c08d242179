//! The page's sections, one function each, in page order; each returns early when its
//! stage did not run.
use std::fmt::Write as _;

use super::{figure, hist_pair, int, note, pct, table, Page};
use crate::model::{HistSeries, Histogram, Report};
use crate::svg::{self, esc, num, Axis, Series, Style};

pub(super) fn header(p: &mut Page, r: &Report) {
    let h = &r.header;
    p.section("header", |o| {
        let (class, text) = if h.ledger.balanced {
            ("ok", "ledger balanced")
        } else {
            ("bad", "ledger NOT balanced")
        };
        let _ = write!(
            o,
            r#"<p><span class="badge {class}" id="ledger-badge">{text}</span></p>"#
        );
        for prob in &h.ledger.problems {
            note(o, prob);
        }
        let mut rows = vec![
            vec!["run".into(), h.run.clone()],
            vec!["loam".into(), h.loam_version.clone()],
            vec!["config SHA-256".into(), h.config_sha256.clone()],
            vec!["seed / shards".into(), format!("{} / {}", h.seed, h.shards)],
        ];
        for m in &h.quality_models {
            rows.push(vec![
                format!("quality model {}", m.name),
                format!("{} ({} bytes)", m.sha256, int(m.bytes)),
            ]);
        }
        if let Some(t) = &h.tokenizer {
            rows.push(vec![
                format!("tokenizer {}", t.name),
                format!("{} ({} bytes)", t.sha256, int(t.bytes)),
            ]);
        }
        table(o, &["", ""], &rows);
        if !h.seconds.is_empty() {
            let cats: Vec<String> = h.seconds.iter().map(|s| s.stage.clone()).collect();
            let vals: Vec<f64> = h.seconds.iter().map(|s| s.seconds).collect();
            figure(
                o,
                "stage-seconds",
                "Seconds per stage (summed over shards; a step that found its output committed counts its first run)",
                svg::bars("seconds per stage", &cats, &[("seconds", vals)], "seconds", false),
            );
        }
    });
}

pub(super) fn funnel(p: &mut Page, r: &Report) {
    p.section("funnel", |o| {
        let cats: Vec<String> = r.funnel.iter().map(|f| f.stage.clone()).collect();
        let docs: Vec<f64> = r.funnel.iter().map(|f| f.rows_out.unwrap_or(f.kept) as f64).collect();
        let bytes: Vec<f64> = r.funnel.iter().map(|f| f.text_bytes_kept.unwrap_or(0) as f64).collect();
        o.push_str(r#"<div class="grid2">"#);
        figure(
            o,
            "funnel-docs",
            "Documents (rows) out of each stage",
            svg::bars("documents out", &cats, &[("documents", docs)], "documents", false),
        );
        figure(
            o,
            "funnel-bytes",
            "Text bytes out of each stage",
            svg::bars("text bytes out", &cats, &[("bytes", bytes)], "bytes", false),
        );
        o.push_str("</div>");
        let rows: Vec<Vec<String>> = r
            .funnel
            .iter()
            .map(|f| {
                vec![
                    f.stage.clone(),
                    int(f.docs_in),
                    int(f.kept),
                    f.rows_out.map_or("—".into(), int),
                    int(f.dropped),
                    f.text_bytes_kept.map_or("—".into(), int),
                    f.tokens.map_or("—".into(), int),
                ]
            })
            .collect();
        table(
            o,
            &[
                "stage",
                "in",
                "kept",
                "rows out",
                "dropped",
                "text bytes kept",
                "tokens",
            ],
            &rows,
        );
    });
}

fn reason_charts(o: &mut String, name: &str, reasons: &[crate::model::Reason]) {
    if reasons.is_empty() {
        note(o, "Nothing was dropped.");
        return;
    }
    let cats: Vec<String> = reasons.iter().map(|x| x.reason.clone()).collect();
    o.push_str(r#"<div class="grid2">"#);
    figure(
        o,
        name,
        "Dropped, by documents",
        svg::bars(
            "dropped documents",
            &cats,
            &[("documents", reasons.iter().map(|x| x.docs as f64).collect())],
            "documents",
            false,
        ),
    );
    figure(
        o,
        &format!("{name}-bytes"),
        "Dropped, by text bytes",
        svg::bars(
            "dropped bytes",
            &cats,
            &[("bytes", reasons.iter().map(|x| x.bytes as f64).collect())],
            "bytes",
            false,
        ),
    );
    o.push_str("</div>");
}

fn dump_table(o: &mut String, rows: &[crate::model::DumpRow]) {
    let t: Vec<Vec<String>> = rows
        .iter()
        .map(|d| {
            let all = d.kept + d.dropped;
            vec![
                d.dump.clone(),
                int(all),
                int(d.kept),
                int(d.dropped),
                if all > 0 {
                    pct(d.dropped as f64 / all as f64)
                } else {
                    "—".into()
                },
                int(d.kept_bytes),
            ]
        })
        .collect();
    table(
        o,
        &["dump", "documents", "kept", "dropped", "dropped %", "text bytes kept"],
        &t,
    );
}

pub(super) fn ingest(p: &mut Page, r: &Report) {
    let Some(i) = &r.ingest else { return };
    p.section("ingest", |o| {
        note(
            o,
            &format!("{} input files, {} bytes.", int(i.input_files), int(i.input_bytes)),
        );
        let cats: Vec<String> = i.formats.iter().map(|c| c.key.clone()).collect();
        figure(
            o,
            "ingest-formats",
            "Documents by source format",
            svg::bars(
                "documents by format",
                &cats,
                &[("documents", i.formats.iter().map(|c| c.n as f64).collect())],
                "documents",
                false,
            ),
        );
        o.push_str("<h3>Records not kept, by reason</h3>");
        reason_charts(o, "ingest-reasons", &i.reasons);
        o.push_str("<h3>Per dump</h3>");
        dump_table(o, &i.per_dump);
        if !i.warnings.is_empty() {
            o.push_str("<h3>First warnings</h3><ul>");
            for w in &i.warnings {
                let _ = write!(o, "<li><code>{}</code></li>", esc(w));
            }
            o.push_str("</ul>");
        }
    });
}

pub(super) fn filter(p: &mut Page, r: &Report) {
    let Some(f) = &r.filter else { return };
    p.section("filter", |o| {
        note(o, &format!("Drop reasons in the order the rules run. {} documents edited (C4 removed {} lines).", int(f.edited), int(f.c4_lines_removed)));
        reason_charts(o, "filter-reasons", &f.reasons);
        let cats: Vec<String> = f.languages.iter().map(|c| c.key.clone()).collect();
        figure(o, "filter-languages", "Kept documents by language (top languages)", svg::bars("languages kept", &cats, &[("documents", f.languages.iter().map(|c| c.n as f64).collect())], "documents", false));
        if !f.histograms.is_empty() {
            let _ = write!(
                o,
                "<h3>Metrics, kept vs dropped</h3><p class=\"note\">From a seeded sample: {} kept and {} dropped documents (seed {}).</p>",
                f.sample.kept, f.sample.dropped, f.sample.seed
            );
            pairs(o, "filter-hist", &f.histograms);
        }
        if !f.rule_histograms.is_empty() {
            o.push_str("<h3>Per-rule quantities</h3>");
            note(
                o,
                "Each heuristic rule's quantity recomputed by the rule on the same sample, for the \
                 quantities that dropped most; the dashed line is the rule's limit and the last bin \
                 holds everything beyond the axis. Kept documents are measured as written (after \
                 C4's line edits), dropped ones as stored in _dropped/.",
            );
            pairs(o, "filter-rule", &f.rule_histograms);
        }
        o.push_str("<h3>Per dump</h3>");
        dump_table(o, &f.per_dump);
    });
}

/// Histograms come in (documents, bytes) pairs with the same title stem.
fn pairs(o: &mut String, name: &str, hs: &[Histogram]) {
    let mut i = 0;
    while i < hs.len() {
        let docs = &hs[i];
        let bytes = hs
            .get(i + 1)
            .filter(|b| b.weight != docs.weight && b.x_label == docs.x_label);
        hist_pair(o, &format!("{name}-{}", i / 2), docs, bytes);
        i += if bytes.is_some() { 2 } else { 1 };
    }
}

pub(super) fn dedup(p: &mut Page, r: &Report) {
    let Some(d) = &r.dedup else { return };
    p.section("dedup", |o| {
        note(
            o,
            &format!(
                "{} documents in, {} kept: {} exact and {} near duplicates removed; {} documents lost {} recurring lines.",
                int(d.documents),
                int(d.kept),
                int(d.exact_duplicate),
                int(d.near_duplicate),
                int(d.docs_with_lines_removed),
                int(d.lines_removed)
            ),
        );
        let loam: Vec<(f64, f64)> = d.curve.iter().map(|c| (c.dumps as f64, 100.0 * c.removed_share)).collect();
        let paper: Vec<(f64, f64)> = d.paper_table1.iter().map(|&(n, p)| (n as f64, p)).collect();
        let x = Axis::fit("dumps deduplicated together", true, loam.iter().chain(&paper).map(|p| p.0), false);
        let y = Axis::fit("documents removed (%)", false, loam.iter().chain(&paper).map(|p| p.1).chain([0.0, 100.0]), true);
        figure(
            o,
            "dedup-curve",
            "Removal rate as dumps are added (cumulative, in the order of the config), beside DeepSeek LLM's Table 1 (Common Crawl dumps)",
            svg::lines(
                "dedup rate vs dumps",
                &x,
                &y,
                &[
                    Series { name: "this run".into(), points: loam, style: Style::LinePoints, colour: 0 },
                    Series { name: "DeepSeek LLM Table 1".into(), points: paper, style: Style::LinePoints, colour: 1 },
                ],
            ),
        );
        let split_cats = vec!["exact duplicate".to_owned(), "near duplicate".to_owned(), "documents with lines removed".to_owned()];
        o.push_str(r#"<div class="grid2">"#);
        figure(
            o,
            "dedup-split",
            "Exact, near (MinHash) and line-level dedup",
            svg::bars("dedup split", &split_cats, &[("documents", vec![d.exact_duplicate as f64, d.near_duplicate as f64, d.docs_with_lines_removed as f64])], "documents", false),
        );
        let cats: Vec<String> = d.cluster_sizes.iter().map(|(s, _)| format!("size {s}")).collect();
        figure(
            o,
            "dedup-clusters",
            "Clusters by size (size 1: documents with no duplicate); log scale",
            svg::bars("cluster sizes", &cats, &[("clusters", d.cluster_sizes.iter().map(|&(_, n)| n as f64).collect())], "clusters", true),
        );
        o.push_str("</div>");
        o.push_str("<h3>Per dump</h3>");
        dump_table(o, &d.per_dump);
        if !d.examples.is_empty() {
            o.push_str("<h3>Example clusters</h3>");
            for c in &d.examples {
                let _ = write!(o, "<p>Dropped as <code>{}</code>:</p>", esc(&c.survivor));
                snippets(o, &c.members);
            }
        }
    });
}

fn snippets(o: &mut String, s: &[crate::model::Snippet]) {
    for x in s {
        let _ = write!(
            o,
            "<p class=\"note\">{} · <code>{}</code></p><blockquote>{}</blockquote>",
            esc(&x.label),
            esc(&x.id),
            esc(&x.text)
        );
    }
}

pub(super) fn quality(p: &mut Page, r: &Report) {
    let Some(q) = &r.quality else { return };
    p.section("quality", |o| {
        for m in &q.models {
            let _ = write!(o, "<h3>Model: {} (<code>{}</code>)</h3>", esc(&m.language), esc(&m.file));
            note(o, &m.what);
            let fmt = |b: &std::collections::BTreeMap<String, u64>| b.iter().map(|(k, v)| format!("{k} {}", int(*v))).collect::<Vec<_>>().join(", ");
            table(
                o,
                &["held-out ROC-AUC", "threshold", "scored", "kept", "train examples", "held-out examples"],
                &[vec![
                    format!("{:.4}", m.heldout_roc_auc),
                    m.threshold.map_or("—".into(), |t| format!("{t:.4}")),
                    int(m.scored),
                    int(m.keep),
                    fmt(&m.train_examples),
                    fmt(&m.heldout_examples),
                ]],
            );
            let rows: Vec<Vec<String>> = m
                .sources
                .iter()
                .map(|s| vec![s.name.clone(), s.label.clone(), s.split.clone(), int(s.docs), int(s.bytes), s.sha256.chars().take(16).collect()])
                .collect();
            table(o, &["source", "label", "split", "documents", "bytes", "SHA-256 (prefix)"], &rows);
        }
        note(o, &format!("Keep rule: {}.", q.rule));
        pairs(o, "quality-hist", &q.histograms);
        if !q.snippets.is_empty() {
            let _ = write!(
                o,
                "<h3>Documents at score deciles</h3><p class=\"note\">From a seeded sample of {} kept and {} dropped documents (seed {}).</p>",
                q.sample.kept, q.sample.dropped, q.sample.seed
            );
            snippets(o, &q.snippets);
        }
    });
}

pub(super) fn remix(p: &mut Page, r: &Report) {
    let Some(m) = &r.remix else { return };
    p.section("remix", |o| {
        note(
            o,
            &format!(
                "Target: {} in {}; {} documents in, {} kept, {} rows out ({} unique); L1 distance target → achieved {:.3}; epochs capped at {}.",
                m.target,
                m.unit,
                int(m.docs_in),
                int(m.docs_kept),
                int(m.rows_out),
                pct(m.unique_fraction_out),
                m.l1_target_achieved,
                num(m.max_epochs)
            ),
        );
        let cats: Vec<String> = m.domains.iter().map(|d| d.domain.clone()).collect();
        figure(
            o,
            "remix-shares",
            "Share of the corpus per domain: natural, target, achieved",
            svg::bars(
                "domain shares",
                &cats,
                &[
                    ("natural", m.domains.iter().map(|d| 100.0 * d.natural_share).collect()),
                    ("target", m.domains.iter().map(|d| 100.0 * d.target_share).collect()),
                    ("achieved", m.domains.iter().map(|d| 100.0 * d.achieved_share).collect()),
                ],
                "% of bytes",
                false,
            ),
        );
        figure(
            o,
            "remix-epochs",
            &format!("Epochs per domain (cap {})", num(m.max_epochs)),
            svg::bars("epochs", &cats, &[("epochs", m.domains.iter().map(|d| d.epochs).collect())], "epochs", false),
        );
        let rows: Vec<Vec<String>> = m
            .domains
            .iter()
            .map(|d| vec![d.domain.clone(), int(d.docs_in), pct(d.natural_share), pct(d.target_share), pct(d.achieved_share), format!("{:.2}", d.epochs), if d.capped { "capped".into() } else { String::new() }])
            .collect();
        table(o, &["domain", "documents in", "natural", "target", "achieved", "epochs", ""], &rows);
        if !m.domain_language.is_empty() {
            o.push_str("<h3>Domain × language (sample of the output)</h3>");
            let rows: Vec<Vec<String>> = m.domain_language.iter().map(|(d, l, n)| vec![d.clone(), l.clone(), int(*n)]).collect();
            table(o, &["domain", "language", "rows"], &rows);
        }
    });
}

pub(super) fn tokenize(p: &mut Page, r: &Report) {
    let Some(t) = &r.tokenize else { return };
    p.section("tokenize", |o| {
        note(
            o,
            &format!(
                "{} documents, {} tokens, {} text bytes: {:.3} bytes per token (vocabulary {}).",
                int(t.docs),
                int(t.tokens),
                int(t.text_bytes),
                t.bytes_per_token,
                int(t.vocab_size)
            ),
        );
        let h = Histogram {
            title: "tokens per document".into(),
            x_label: "log2 tokens".into(),
            edges: std::iter::once(t.tokens_per_doc.first().map_or(0.0, |&(u, _)| (u as f64).log2() - 1.0))
                .chain(t.tokens_per_doc.iter().map(|&(u, _)| (u as f64).log2()))
                .collect(),
            series: vec![HistSeries {
                name: "documents".into(),
                counts: t.tokens_per_doc.iter().map(|&(_, n)| n as f64).collect(),
            }],
            marker: None,
            weight: "documents".into(),
        };
        figure(
            o,
            "tokens-per-doc",
            "Tokens per document (bins are powers of two)",
            svg::histogram(&h),
        );
        for (name, what, rows) in [
            ("bytes-per-token-language", "language", &t.per_language),
            ("bytes-per-token-domain", "mix domain", &t.per_domain),
            ("bytes-per-token-dump", "dump", &t.per_dump),
        ] {
            if rows.is_empty() {
                continue;
            }
            let _ = write!(o, "<h3>By {}</h3>", esc(what));
            token_rows(o, name, what, rows);
        }
    });
}

/// Bytes per token of each group, as a chart and a table: the tokenizer's compression of
/// each language, domain or dump.
fn token_rows(o: &mut String, name: &str, what: &str, rows: &[crate::model::TokenRow]) {
    let cats: Vec<String> = rows.iter().map(|d| d.key.clone()).collect();
    figure(
        o,
        name,
        &format!("Bytes per token by {what}"),
        svg::bars(
            "bytes per token",
            &cats,
            &[("bytes/token", rows.iter().map(|d| d.bytes_per_token).collect())],
            "bytes per token",
            false,
        ),
    );
    let t: Vec<Vec<String>> = rows
        .iter()
        .map(|d| {
            vec![
                d.key.clone(),
                int(d.docs),
                int(d.tokens),
                int(d.text_bytes),
                format!("{:.3}", d.bytes_per_token),
            ]
        })
        .collect();
    table(o, &[what, "documents", "tokens", "text bytes", "bytes/token"], &t);
}

pub(super) fn score(p: &mut Page, r: &Report) {
    let Some(s) = &r.score else { return };
    p.section("score", |o| {
        let _ = write!(
            o,
            "<p>Corpus quality <b>q = {:.3}</b> → model-scaling exponent <b>a = {:.3}</b> (band ±2σ: {:.3}–{:.3}), data exponent <b>b = {:.3}</b>. Calibration: {}.</p>",
            s.q,
            s.a,
            s.a - 2.0 * s.sigma_a,
            s.a + 2.0 * s.sigma_a,
            s.b,
            esc(&s.calibration)
        );
        note(o, &s.assumption);
        let pts = [("raw pool", s.p_raw), ("positives (held out)", s.p_pos), ("final corpus", s.p_final)];
        let cats: Vec<String> = pts.iter().map(|(k, _)| (*k).to_owned()).collect();
        figure(o, "score-p", "Mean P(reference) of the raw pool, the held-out positives and the final corpus (q places the corpus between them)", svg::bars("mean P(reference)", &cats, &[("p", pts.iter().map(|(_, v)| *v).collect())], "mean P(hq)", false));
        let rows: Vec<Vec<String>> = s.diagnostics.iter().map(|(k, v)| vec![k.clone(), num(*v)]).collect();
        table(o, &["diagnostic", "value"], &rows);
        let rows: Vec<Vec<String>> = s.allocation.iter().map(|(k, v)| vec![k.clone(), num(*v)]).collect();
        o.push_str("<h3>Allocation</h3>");
        table(o, &["", "value"], &rows);
    });
}

pub(super) fn sweep(p: &mut Page, r: &Report) {
    let Some(s) = &r.sweep else { return };
    p.section("sweep", |o| {
        let _ = write!(o, "<p>Check of the score's prediction: <b>{}</b>.</p>", esc(&s.verdict));
        let mut series = Vec::new();
        for (i, b) in s.budgets.iter().enumerate() {
            series.push(Series { name: format!("C = {}", num(b.flops)), points: b.points.clone(), style: Style::Points, colour: i });
            if let Some([centre, c0, c1, c2]) = b.parabola {
                let (lo, hi) = b.points.iter().fold((f64::INFINITY, 0f64), |(l, h), p| (l.min(p.0), h.max(p.0)));
                let fit: Vec<(f64, f64)> = (0..=40)
                    .map(|k| {
                        let m = (lo.ln() + (hi.ln() - lo.ln()) * k as f64 / 40.0).exp();
                        let x = m.ln() - centre;
                        (m, c0 + c1 * x + c2 * x * x)
                    })
                    .collect();
                series.push(Series { name: format!("fit {}", num(b.flops)), points: fit, style: Style::Dashed, colour: i });
            }
        }
        let vertices: Vec<(f64, f64)> = s.budgets.iter().filter_map(|b| b.vertex).collect();
        if !vertices.is_empty() {
            series.push(Series { name: "vertices".into(), points: vertices, style: Style::Points, colour: 5 });
        }
        let all: Vec<(f64, f64)> = s.budgets.iter().flat_map(|b| b.points.iter().copied()).collect();
        let x = Axis::fit("M (non-embedding FLOPs/token)", true, all.iter().map(|p| p.0), false);
        let y = Axis::fit("validation bits per byte", false, all.iter().map(|p| p.1), false);
        figure(o, "isoflop", "IsoFLOP curves: validation loss against model scale at each budget, the fitted parabolas in ln M and their vertices", svg::lines("IsoFLOP curves", &x, &y, &series));
        scaling_chart(o, s);
        let rows: Vec<Vec<String>> = s
            .estimates
            .iter()
            .map(|(k, a, lo, hi)| vec![k.clone(), format!("{a:.3}"), lo.map_or("—".into(), |v| format!("{v:.3}")), hi.map_or("—".into(), |v| format!("{v:.3}"))])
            .collect();
        if let Some(pa) = s.predicted_a {
            note(o, &format!("The score predicted a = {pa:.3}."));
        }
        table(o, &["estimate of a", "a", "interval low", "interval high"], &rows);
        for w in &s.warnings {
            note(o, w);
        }
    });
}

/// M_opt against C on log axes: the IsoFLOP vertices, approach 2's power law through them
/// and the score's prediction (slope a(q)), over the budgets of both.
fn scaling_chart(o: &mut String, s: &crate::model::Sweep) {
    let vertices: Vec<(f64, f64)> = s
        .budgets
        .iter()
        .filter_map(|b| b.vertex.map(|v| (b.flops, v.0)))
        .collect();
    let cs: Vec<f64> = s
        .budgets
        .iter()
        .map(|b| b.flops)
        .chain(s.predicted.iter().map(|p| p.0))
        .collect();
    let (lo, hi) = cs
        .iter()
        .fold((f64::INFINITY, 0f64), |(l, h), c| (l.min(*c), h.max(*c)));
    if vertices.is_empty() || lo <= 0.0 {
        return;
    }
    let span = |f: &dyn Fn(f64) -> f64| -> Vec<(f64, f64)> {
        (0..=20)
            .map(|k| {
                let c = (lo.ln() + (hi.ln() - lo.ln()) * k as f64 / 20.0).exp();
                (c, f(c))
            })
            .collect()
    };
    let mut series = vec![Series {
        name: "IsoFLOP vertices".into(),
        points: vertices,
        style: Style::Points,
        colour: 5,
    }];
    if let Some((e, i)) = s.size_fit {
        series.push(Series {
            name: format!("approach 2 fit (a = {e:.3})"),
            points: span(&|c| (i + e * c.ln()).exp()),
            style: Style::Dashed,
            colour: 0,
        });
    }
    if let (Some(a), Some(&(c0, m0))) = (s.predicted_a, s.predicted.first()) {
        series.push(Series {
            name: format!("score's prediction (a = {a:.3})"),
            points: span(&|c| m0 * (c / c0).powf(a)),
            style: Style::Line,
            colour: 1,
        });
    }
    let all: Vec<(f64, f64)> = series.iter().flat_map(|x| x.points.iter().copied()).collect();
    let x = Axis::fit("C (FLOPs)", true, all.iter().map(|p| p.0), false);
    let y = Axis::fit(
        "M_opt (non-embedding FLOPs/token)",
        true,
        all.iter().map(|p| p.1),
        false,
    );
    figure(o, "sweep-scaling", "Compute-optimal model scale against budget: the vertices, the power law fitted through them, and what the score predicted", svg::lines("M_opt vs C", &x, &y, &series));
}

pub(super) fn train(p: &mut Page, r: &Report) {
    let Some(t) = &r.train else { return };
    p.section("train", |o| {
        note(
            o,
            &format!(
                "{} steps, {} tokens, {} parameters; final training loss {:.4} nats{}.",
                int(t.steps),
                int(t.tokens),
                int(t.params),
                t.final_loss,
                match (t.val_loss, t.val_bpb) {
                    (Some(l), Some(b)) => format!("; validation {l:.4} nats, {b:.4} bits per byte"),
                    _ => String::new(),
                }
            ),
        );
        let pick = |f: fn(&(f64, f64, f64, f64)) -> f64| t.curve.iter().map(|c| (c.0, f(c))).collect::<Vec<_>>();
        let loss = pick(|c| c.1);
        let lr = pick(|c| c.2);
        let gn = pick(|c| c.3);
        let xa = |v: &[(f64, f64)]| Axis::fit("tokens", false, v.iter().map(|p| p.0), true);
        o.push_str(r#"<div class="grid2">"#);
        figure(
            o,
            "train-loss",
            "Training loss (nats/token) against tokens seen",
            svg::lines(
                "training loss",
                &xa(&loss),
                &Axis::fit("loss", false, loss.iter().map(|p| p.1), false),
                &[Series {
                    name: "loss".into(),
                    points: loss.clone(),
                    style: Style::Line,
                    colour: 0,
                }],
            ),
        );
        if let Some(bpt) = t.bytes_per_token.filter(|b| *b > 0.0) {
            let train_bpb: Vec<(f64, f64)> = loss.iter().map(|&(x, l)| (x, l / std::f64::consts::LN_2 / bpt)).collect();
            let all = train_bpb.iter().chain(&t.val_curve);
            figure(
                o,
                "train-bpb",
                &format!("Bits per byte against tokens seen: training (loss / ln 2 / {bpt:.3} bytes per token) and validation"),
                svg::lines(
                    "bits per byte",
                    &xa(&train_bpb),
                    &Axis::fit("bits per byte", false, all.map(|p| p.1), false),
                    &[
                        Series { name: "training".into(), points: train_bpb.clone(), style: Style::Line, colour: 0 },
                        Series { name: "validation".into(), points: t.val_curve.clone(), style: Style::LinePoints, colour: 1 },
                    ],
                ),
            );
        }
        figure(
            o,
            "train-lr",
            "Learning-rate schedule (warmup, then multi-step)",
            svg::lines(
                "learning rate",
                &xa(&lr),
                &Axis::fit("learning rate", false, lr.iter().map(|p| p.1), true),
                &[Series {
                    name: "lr".into(),
                    points: lr.clone(),
                    style: Style::Line,
                    colour: 2,
                }],
            ),
        );
        figure(
            o,
            "train-gradnorm",
            "Gradient norm before clipping (log scale)",
            svg::lines(
                "gradient norm",
                &xa(&gn),
                &Axis::fit("grad norm", true, gn.iter().map(|p| p.1), false),
                &[Series {
                    name: "grad norm".into(),
                    points: gn.clone(),
                    style: Style::Line,
                    colour: 3,
                }],
            ),
        );
        o.push_str("</div>");
    });
}

pub(super) fn datasheet(p: &mut Page, r: &Report) {
    let d = &r.datasheet;
    p.section("datasheet", |o| {
        note(
            o,
            &format!(
                "Languages: {}. Size category: {}.",
                d.languages.join(", "),
                d.size_category
            ),
        );
        for (k, v) in &d.sections {
            let _ = write!(o, "<h3>{}</h3><p>{}</p>", esc(k), esc(v));
        }
        let rows: Vec<Vec<String>> = d
            .sources
            .iter()
            .map(|s| vec![s.dump.clone(), s.inputs.join(", "), s.license.clone()])
            .collect();
        table(o, &["dump", "inputs", "license"], &rows);
    });
}

pub(super) fn provenance(p: &mut Page, r: &Report) {
    let v = &r.provenance;
    p.section("provenance", |o| {
        let rows: Vec<Vec<String>> = v
            .inputs
            .iter()
            .map(|i| {
                vec![
                    i.path.clone(),
                    int(i.bytes),
                    i.sha256
                        .clone()
                        .unwrap_or_else(|| "not hashed (over the report's hash limit)".into()),
                ]
            })
            .collect();
        table(o, &["input", "bytes", "SHA-256"], &rows);
        o.push_str("<h3>Resolved config</h3>");
        let _ = write!(o, "<pre>{}</pre>", esc(&v.config_toml));
    });
}
