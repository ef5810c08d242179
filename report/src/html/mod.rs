//! `report.html`: one self-contained page drawn from [`Report`] — inline CSS (named by
//! its hash in a strict Content-Security-Policy: no scripts, no network), inline SVG
//! charts, and report.json itself embedded as a `<script type="application/json">` data
//! block. Sections whose stage did not run are left out. Every chart is a `<figure>` with
//! a `data-chart` name, every section a `<section>` with an id, so tests (and readers'
//! own tools) can find them.
use std::fmt::Write as _;

use base64::Engine as _;
use sha2::Digest as _;

mod sections;

use crate::model::{Histogram, Report};
use crate::svg::{self, esc};
use sections::*;

const CSS: &str = r#"
:root{--fg:#1b1b1b;--muted:#5b5b5b;--line:#d9d9d9;--bg:#fff;--ok:#0a7d32;--bad:#b00020}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1040px;padding:16px;color:var(--fg);background:var(--bg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC","Noto Sans CJK JP","Microsoft YaHei",sans-serif}
h1{font-size:22px;margin:8px 0}
h2{font-size:18px;margin:28px 0 8px;padding-top:8px;border-top:2px solid var(--line)}
h3{font-size:15px;margin:16px 0 6px}
p.note{color:var(--muted);margin:4px 0 10px}
nav{display:flex;flex-wrap:wrap;gap:4px 12px;margin:8px 0 4px;font-size:13px}
nav a{color:#0a58ca;text-decoration:none}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:8px 16px}
figure{margin:8px 0;break-inside:avoid}
figcaption{color:var(--muted);font-size:12px}
svg.chart{max-width:100%;height:auto;display:block}
svg text{font-size:12px;fill:var(--fg)}
svg .tick{fill:var(--muted);font-size:11px}
svg .axis{stroke:#777;stroke-width:1}
svg .grid{stroke:#eee;stroke-width:1}
svg .marker{stroke:#b00020;stroke-width:1.5;stroke-dasharray:4 3}
svg .marker-label{fill:#b00020;font-size:11px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"Noto Sans Mono CJK SC",monospace}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:8px;max-height:420px;overflow:auto}
blockquote{margin:4px 0 10px;padding:4px 10px;border-left:3px solid var(--line);color:#333;white-space:pre-wrap;word-break:break-word}
@media (max-width:600px){body{padding:8px;font-size:13px}h2{font-size:16px}figure{overflow-x:auto}svg.chart{max-width:none;width:520px}}
@media print{nav{display:none}h2{break-after:avoid}pre{max-height:none}body{max-width:none}}
"#;

/// The page's Content-Security-Policy: nothing may load, nothing may run; only the one
/// inline style block, by hash.
pub fn csp() -> String {
    let hash = sha2::Sha256::digest(CSS.as_bytes());
    format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src data:; base-uri 'none'; form-action 'none'",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Every section the page can hold, in order: (id, title).
pub const SECTIONS: [(&str, &str); 13] = [
    ("header", "Run"),
    ("funnel", "Funnel"),
    ("ingest", "Ingest"),
    ("filter", "Filter"),
    ("dedup", "Dedup"),
    ("quality", "Quality"),
    ("remix", "Remix"),
    ("tokenize", "Tokenize"),
    ("score", "Score & scaling"),
    ("sweep", "IsoFLOP sweep"),
    ("train", "Training"),
    ("datasheet", "Datasheet"),
    ("provenance", "Provenance"),
];

/// The ids of the sections `r` has (the stages that ran).
pub fn present_sections(r: &Report) -> Vec<&'static str> {
    SECTIONS
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| match *id {
            "ingest" => r.ingest.is_some(),
            "filter" => r.filter.is_some(),
            "dedup" => r.dedup.is_some(),
            "quality" => r.quality.is_some(),
            "remix" => r.remix.is_some(),
            "tokenize" => r.tokenize.is_some(),
            "score" => r.score.is_some(),
            "sweep" => r.sweep.is_some(),
            "train" => r.train.is_some(),
            _ => true,
        })
        .collect()
}

pub(super) struct Page {
    out: String,
}

impl Page {
    pub(super) fn section(&mut self, id: &str, body: impl FnOnce(&mut String)) {
        let title = SECTIONS.iter().find(|(i, _)| *i == id).map_or(id, |(_, t)| t);
        let _ = write!(self.out, r#"<section id="{id}"><h2>{}</h2>"#, esc(title));
        body(&mut self.out);
        self.out.push_str("</section>\n");
    }
}

pub(super) fn figure(o: &mut String, name: &str, caption: &str, svg: String) {
    if svg::is_empty(&svg) {
        let _ = write!(
            o,
            r#"<figure data-chart="{name}" class="empty"><figcaption>{}: not recorded in this run</figcaption></figure>"#,
            esc(caption)
        );
        return;
    }
    let _ = write!(
        o,
        r#"<figure data-chart="{name}">{svg}<figcaption>{}</figcaption></figure>"#,
        esc(caption)
    );
}

/// A table; cells that parse as numbers are right-aligned.
pub(super) fn table(o: &mut String, head: &[&str], rows: &[Vec<String>]) {
    o.push_str(r#"<div class="scroll"><table><thead><tr>"#);
    let numeric: Vec<bool> = (0..head.len())
        .map(|c| !rows.is_empty() && rows.iter().all(|r| r.get(c).is_some_and(|v| is_numeric(v))))
        .collect();
    for (c, h) in head.iter().enumerate() {
        let _ = write!(
            o,
            "<th{}>{}</th>",
            if numeric[c] { r#" class="n""# } else { "" },
            esc(h)
        );
    }
    o.push_str("</tr></thead><tbody>");
    for r in rows {
        o.push_str("<tr>");
        for (c, v) in r.iter().enumerate() {
            let n = numeric.get(c).copied().unwrap_or(false);
            let _ = write!(o, "<td{}>{}</td>", if n { r#" class="n""# } else { "" }, esc(v));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table></div>");
}

pub(super) fn is_numeric(v: &str) -> bool {
    let t = v.trim_end_matches(['%', 'k', 'M', 'G', '×']).replace(',', "");
    !t.is_empty() && (t.parse::<f64>().is_ok() || t == "—")
}

pub(super) fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

pub(super) fn int(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

pub(super) fn note(o: &mut String, text: &str) {
    let _ = write!(o, r#"<p class="note">{}</p>"#, esc(text));
}

/// Side by side: the same histogram weighted by documents and by bytes.
pub(super) fn hist_pair(o: &mut String, name: &str, docs: &Histogram, bytes: Option<&Histogram>) {
    o.push_str(r#"<div class="grid2">"#);
    figure(o, name, &docs.title, svg::histogram(docs));
    if let Some(b) = bytes {
        figure(o, &format!("{name}-bytes"), &b.title, svg::histogram(b));
    }
    o.push_str("</div>");
}

/// The page for `report`; `json` is report.json's text, embedded verbatim.
pub fn render(r: &Report, json: &str) -> String {
    let mut p = Page { out: String::new() };
    let title = format!("loam report — {}", r.header.run);
    let _ = write!(
        p.out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{}"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title><style>{CSS}</style></head><body><h1>{}</h1><nav>"#,
        esc(&csp()),
        esc(&title),
        esc(&title)
    );
    for id in present_sections(r) {
        let t = SECTIONS.iter().find(|(i, _)| *i == id).map_or(id, |(_, t)| t);
        let _ = write!(p.out, "<a href=\"#{id}\">{}</a>", esc(t));
    }
    p.out.push_str("</nav>\n");
    header(&mut p, r);
    funnel(&mut p, r);
    ingest(&mut p, r);
    filter(&mut p, r);
    dedup(&mut p, r);
    quality(&mut p, r);
    remix(&mut p, r);
    tokenize(&mut p, r);
    score(&mut p, r);
    sweep(&mut p, r);
    train(&mut p, r);
    datasheet(&mut p, r);
    provenance(&mut p, r);
    // `</` cannot end the data block early once escaped; JSON reads `<\/` as `</`.
    let data = json.replace("</", "<\\/").replace("<!--", "<\\!--");
    let _ = write!(
        p.out,
        r#"<script type="application/json" id="report-data">{data}</script></body></html>"#
    );
    p.out.push('\n');
    p.out
}
