//! Runs the four heuristic rules (FineWeb's order and settings, no language id) on each
//! NUL-separated document of a file, as English; prints one decision per line (`keep` or
//! the drop reason, tab, seconds) and, on stderr, the CPU time per document over `--repeat` passes.
//! Used by bench/filters.sh beside datatrove.
//!
//!     cargo run --release -p loam-quality --example rules -- DOCS.bin [--repeat N]
use std::io::Write;
use std::time::Instant;

use loam_quality::rules::{
    C4Config, C4Quality, FineWebConfig, FineWebQuality, GopherQuality, GopherQualityConfig, GopherRepetition,
    GopherRepetitionConfig, Rule, TextDoc, Verdict,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: rules DOCS.bin [--repeat N]")?;
    let repeat: usize = match args.iter().position(|a| a == "--repeat") {
        Some(i) => args.get(i + 1).ok_or("--repeat needs a number")?.parse()?,
        None => 1,
    };
    let input = std::fs::read_to_string(path)?;
    let docs: Vec<&str> = input.split('\0').collect();
    let rules: Vec<Box<dyn Rule>> = vec![
        Box::new(GopherRepetition::new(GopherRepetitionConfig::default())),
        Box::new(GopherQuality::new(GopherQualityConfig::default())),
        Box::new(C4Quality::new(C4Config::default())),
        Box::new(FineWebQuality::new(FineWebConfig::default())),
    ];
    let mut decisions = Vec::with_capacity(docs.len());
    let mut times = vec![0f64; docs.len()];
    let start = Instant::now();
    for pass in 0..repeat {
        for (i, d) in docs.iter().enumerate() {
            let t = Instant::now();
            let mut doc = TextDoc::new((*d).to_owned(), "en");
            let mut verdict = "keep".to_owned();
            for r in &rules {
                if let Verdict::Drop(reason) = r.check(&mut doc) {
                    verdict = reason.to_owned();
                    break;
                }
            }
            times[i] += t.elapsed().as_secs_f64() / repeat as f64;
            if pass == 0 {
                decisions.push(verdict);
            }
        }
    }
    let per_doc = start.elapsed().as_secs_f64() / (docs.len() * repeat) as f64;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    for (d, t) in decisions.iter().zip(&times) {
        writeln!(out, "{d}\t{t:.9}")?;
    }
    eprintln!(
        "{{\"docs\": {}, \"repeat\": {repeat}, \"seconds_per_doc\": {per_doc:.9}}}",
        docs.len()
    );
    Ok(())
}
