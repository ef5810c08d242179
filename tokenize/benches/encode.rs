//! Encode throughput of loam's tokenizer on one thread, for bench/tokenizer.sh:
//!
//!     cargo bench -p loam-tokenize --bench encode -- TOKENIZER.json CORPUS.jsonl IDS_OUT.txt
//!
//! Encodes every document (`{"text": ...}` per line) in order, timing only the encoding;
//! then writes one line per document, `<token count> <sha1 of the ids as u32 LE>`, so the
//! script can check that every tool produced the same ids, and prints a JSON result.
//! `LOAM_BENCH_REFERENCE=1` times the `tokenizers` crate's own encode instead of loam's
//! fast path.
use std::io::{BufRead, Write};
use std::time::Instant;

use sha2::Digest;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [tokenizer, corpus, out] = args.as_slice() else {
        return Err("usage: encode TOKENIZER.json CORPUS.jsonl IDS_OUT.txt".into());
    };
    let tok = loam_tokenize::Tokenizer::load(std::path::Path::new(tokenizer))?;
    let mut texts = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(corpus)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        texts.push(v["text"].as_str().unwrap_or_default().to_owned());
    }
    let bytes: usize = texts.iter().map(String::len).sum();
    let reference = std::env::var_os("LOAM_BENCH_REFERENCE").is_some();
    let start = Instant::now();
    let mut all = Vec::with_capacity(texts.len());
    for t in &texts {
        all.push(if reference {
            tok.encode_reference(t)?
        } else {
            tok.encode(t)?
        });
    }
    let secs = start.elapsed().as_secs_f64();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut tokens = 0;
    for ids in &all {
        tokens += ids.len();
        let mut h = sha2::Sha256::new();
        for id in ids {
            h.update(id.to_le_bytes());
        }
        let d: String = h.finalize().iter().take(10).map(|b| format!("{b:02x}")).collect();
        writeln!(w, "{} {d}", ids.len())?;
    }
    println!(
        "{}",
        serde_json::json!({"tool": if reference { "loam (tokenizers crate path)" } else { "loam" }, "docs": texts.len(), "bytes": bytes, "tokens": tokens, "seconds": secs,
                           "mb_per_s": bytes as f64 / 1e6 / secs})
    );
    Ok(())
}
