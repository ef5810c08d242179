//! Compares `trafilatura` 0.6 and `dom_smoothie` 0.19 on real HTML: token-level
//! precision/recall/F1 against the page's own paragraph markup, and pages/s.
//!
//! Gold text: the DocBook/Publican pages of the Debian Administrator's Handbook mark
//! every body paragraph `<div class="para">`; their words are the main text, and the
//! banner, navigation and footer are not. Usage: `extractors-bench DIR...`.
use std::collections::HashMap;
use std::time::Instant;

fn tokens(s: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for w in s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        *m.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    m
}

fn prf(gold: &HashMap<String, usize>, got: &HashMap<String, usize>) -> (f64, f64) {
    let inter: usize = got.iter().map(|(w, &n)| n.min(*gold.get(w).unwrap_or(&0))).sum();
    let g: usize = gold.values().sum();
    let t: usize = got.values().sum();
    let p = if t == 0 { 0.0 } else { inter as f64 / t as f64 };
    let r = if g == 0 { 0.0 } else { inter as f64 / g as f64 };
    (p, r)
}

fn gold_text(html: &str) -> String {
    let doc = dom_query::Document::from(html);
    doc.select("div.para").iter().map(|s| s.text().to_string()).collect::<Vec<_>>().join("\n")
}

fn main() {
    let mut pages = Vec::new();
    for dir in std::env::args().skip(1) {
        let mut names: Vec<_> = std::fs::read_dir(&dir).expect("dir").flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names.into_iter().filter(|p| p.extension().is_some_and(|e| e == "html")) {
            pages.push((p.clone(), std::fs::read_to_string(&p).expect("utf-8 page")));
        }
    }
    let bytes: usize = pages.iter().map(|(_, h)| h.len()).sum();
    println!("{} pages, {:.1} MB", pages.len(), bytes as f64 / 1e6);
    type Extract = fn(&str) -> String;
    let extractors: [(&str, Extract); 3] = [
        ("trafilatura-0.6", |h| trafilatura::extract(h, &trafilatura::Options::default()).map(|r| r.content_text).unwrap_or_default()),
        ("trafilatura-0.6+fallback", |h| trafilatura::extract(h, &trafilatura::Options::default().with_fallback(true)).map(|r| r.content_text).unwrap_or_default()),
        ("dom_smoothie-0.19", |h| {
            let cfg = dom_smoothie::Config { text_mode: dom_smoothie::TextMode::Formatted, ..Default::default() };
            dom_smoothie::Readability::new(h, None, Some(cfg)).and_then(|mut r| r.parse()).map(|a| a.text_content.to_string()).unwrap_or_default()
        }),
    ];
    let golds: Vec<_> = pages.iter().map(|(_, h)| tokens(&gold_text(h))).collect();
    for (name, f) in extractors {
        let t0 = Instant::now();
        let outs: Vec<String> = pages.iter().map(|(_, h)| f(h)).collect();
        let secs = t0.elapsed().as_secs_f64();
        let (mut sp, mut sr, mut sf, mut empty) = (0.0, 0.0, 0.0, 0);
        for (o, g) in outs.iter().zip(&golds) {
            let (p, r) = prf(g, &tokens(o));
            let f1 = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
            sp += p; sr += r; sf += f1;
            if o.trim().is_empty() { empty += 1; }
        }
        let n = pages.len() as f64;
        println!("{name:26} P {:.3}  R {:.3}  F1 {:.3}  empty {empty:3}  {:.1} pages/s  {:.2} MB/s",
            sp / n, sr / n, sf / n, n / secs, bytes as f64 / 1e6 / secs);
    }
}
