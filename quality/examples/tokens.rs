//! Prints loam's word split of each NUL-separated document on stdin, one document per
//! line, tokens separated by U+001F. Used by bench/filters to compare with spaCy.
use std::io::{Read, Write};

fn main() -> std::io::Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    for doc in input.split('\0').filter(|d| !d.is_empty()) {
        let toks: Vec<&str> = loam_quality::words::words(doc, loam_quality::words::WordMode::Spaced)
            .into_iter()
            .map(|r| &doc[r])
            .collect();
        writeln!(
            out,
            "{}\t{}",
            toks.join("\u{1f}"),
            loam_quality::words::count_sentences(doc, loam_quality::words::WordMode::Spaced)
        )?;
    }
    Ok(())
}
