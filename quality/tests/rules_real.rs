//! Each rule on real text (State of the Union addresses, Moby-Dick, from ../shared/data),
//! on both sides of its threshold. Expected decisions are datatrove 0.10.1's (the rules'
//! definitions); bench/filters.sh checks agreement on thousands of documents.
use loam_quality::rules::{
    C4Config, C4Quality, FineWebConfig, FineWebQuality, GopherQuality, GopherQualityConfig, GopherRepetition,
    GopherRepetitionConfig, Rule, TextDoc, Verdict,
};

fn shared(rel: &str) -> String {
    let base = std::env::var("LOAM_SHARED_DATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data").into());
    std::fs::read_to_string(format!("{base}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e} (needs ../shared/data)"))
}

/// Sentences of Lincoln's 1863 address (the file is one line), and paragraphs of
/// Moby-Dick chapter 1.
fn sotu() -> Vec<String> {
    shared("text/sotu/1863_abraham_lincoln_r.txt")
        .split(". ")
        .map(|s| s.trim().trim_end_matches('.').to_owned() + ".")
        .filter(|s| s.len() > 40)
        .collect()
}
fn moby() -> Vec<String> {
    // The first block is the chapter title.
    shared("text/moby-dick/chapter_1.txt")
        .split("\n\n")
        .skip(1)
        .map(|p| p.trim().replace('\n', " "))
        .filter(|p| !p.is_empty())
        .collect()
}

fn check(rule: &dyn Rule, text: &str) -> String {
    let mut doc = TextDoc::new(text.to_owned(), "en");
    let verdict = match rule.check(&mut doc) {
        Verdict::Keep => "keep".to_owned(),
        Verdict::Drop(r) => r.to_owned(),
    };
    // LOAM_DUMP_RULE_CASES=FILE appends (rule, verdict, text) records, so the cases can be
    // replayed through datatrove (bench/filters_cases.py).
    if let Ok(path) = std::env::var("LOAM_DUMP_RULE_CASES") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let record = format!("{}\u{1e}{verdict}\u{1e}{text}\u{1d}", rule.name());
            let _ = f.write_all(record.as_bytes());
        }
    }
    verdict
}

fn words(text: &str, n: usize) -> String {
    text.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

#[test]
fn gopher_quality_word_count_bounds() {
    let g = GopherQuality::new(GopherQualityConfig::default());
    // Plain words only (no punctuation, hyphens or apostrophes), so chunks = words:
    // 49 is under the minimum of 50, 50 is not.
    let plain: String = sotu()
        .join(" ")
        .split_whitespace()
        .filter(|w| w.chars().all(char::is_alphabetic))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(check(&g, &words(&plain, 49)), "gopher_short_doc");
    assert_eq!(check(&g, &words(&plain, 50)), "keep");
    let long = GopherQuality::new(GopherQualityConfig {
        max_doc_words: 100,
        ..Default::default()
    });
    assert_eq!(check(&long, &words(&plain, 100)), "keep");
    assert_eq!(check(&long, &words(&plain, 101)), "gopher_long_doc");
}

#[test]
fn gopher_quality_symbols_bullets_ellipses() {
    let g = GopherQuality::new(GopherQualityConfig::default());
    let base = sotu()[..12].join(" ");
    let n_words = loam_quality::words::words(&base, loam_quality::words::WordMode::Spaced).len();
    // '#' per word, with tags like "re#f" (one word, letters and a '#'): k of n + k words
    // is 1/11 of them at k = n/10 (kept) and 1/9 at k = n/8 (dropped).
    let hashes = |k: usize| format!("{base} {}", vec!["re#f"; k].join(" "));
    assert_eq!(check(&g, &hashes(n_words / 10)), "keep");
    assert_eq!(check(&g, &hashes(n_words / 8)), "gopher_too_many_hashes");
    // Bullet lines: 9 of 10 lines is not over 90%; all of them is.
    let lines: Vec<String> = sotu().iter().take(10).cloned().collect();
    let bullets = |k: usize| {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| if i < k { format!("- {l}") } else { l.clone() })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(check(&g, &bullets(9)), "keep");
    assert_eq!(check(&g, &bullets(10)), "gopher_too_many_bullets");
    // Lines ending in an ellipsis: 3 of 10 is not over 30%; 4 of 10 is.
    let ell = |k: usize| {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| if i < k { format!("{l} ...") } else { l.clone() })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(check(&g, &ell(3)), "keep");
    assert_eq!(check(&g, &ell(4)), "gopher_too_many_end_ellipsis");
}

#[test]
fn gopher_quality_mean_word_length_and_ellipses() {
    let g = GopherQuality::new(GopherQualityConfig::default());
    let prose = sotu()[..10].join(" ");
    assert_eq!(check(&g, &prose), "keep");
    // Mean word length: the real words cut to their first two letters average under 3;
    // glued in fours they average over 10.
    let stubs: String = prose
        .split_whitespace()
        .map(|w| w.chars().take(2).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(check(&g, &stubs), "gopher_below_avg_threshold");
    let words_only: Vec<&str> = prose
        .split_whitespace()
        .filter(|w| w.chars().all(char::is_alphabetic))
        .collect();
    let glued = words_only.chunks(4).map(|c| c.concat()).collect::<Vec<_>>().join(" ");
    assert_eq!(check(&g, &glued), "gopher_above_avg_threshold");
    // "..." per word: 1 in 12 words is under 0.1, 1 in 8 is over.
    let ell = |every: usize| {
        prose
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| {
                if i % every == every - 1 {
                    format!("{w}...")
                } else {
                    w.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(check(&g, &ell(12)), "keep");
    assert_eq!(check(&g, &ell(6)), "gopher_too_many_ellipsis");
}

#[test]
fn gopher_quality_alpha_ratio_and_case_sensitive_stop_words() {
    let g = GopherQuality::new(GopherQualityConfig::default());
    let para = moby()[..3].join("\n");
    assert_eq!(check(&g, &para), "keep");
    // A table of figures under the prose pulls words-with-a-letter under 80%.
    let table = (0..60)
        .map(|i| format!("{} {} {}", 1790 + i, i * 37 % 101, i * 13 % 97))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(check(&g, &format!("{para}\n{table}")), "gopher_below_alpha_threshold");
    // Stop words match case-sensitively, as datatrove's set intersection does.
    let shouted = para.to_uppercase();
    assert_eq!(check(&g, &shouted), "gopher_enough_stop_words");
}

#[test]
fn gopher_repetition_paragraphs_lines_ngrams() {
    let r = GopherRepetition::new(GopherRepetitionConfig::default());
    let paras = sotu();
    let doc = paras[..8].join("\n\n");
    assert_eq!(check(&r, &doc), "keep");
    // Three of eight paragraphs repeated: 3 of 11 is under 0.3 by count, but their
    // characters exceed 20% of the text.
    let rep = format!("{doc}\n\n{}\n\n{}\n\n{}", paras[0], paras[1], paras[2]);
    assert_eq!(check(&r, &rep), "gopher_rep_dup_para_char_frac");
    // Lines: 3 repeats of 10 lines is not over 0.3; 4 of 11 is.
    let lines = |k: usize| format!("{}\n{}", paras[..7].join("\n"), vec!["Thank you."; k].join("\n"));
    assert_eq!(check(&r, &lines(3)), "keep");
    assert_eq!(check(&r, &lines(5)), "gopher_rep_dup_line_frac");
    // A long passage quoted again further down: its repeated 5-grams cover over 15% of
    // the characters, while no single paragraph or line repeats.
    let quoted = format!(
        "{}\n\n{} As was said: {}",
        paras[..6].join("\n\n"),
        paras[6],
        paras[..2].join(" ")
    );
    assert_eq!(check(&r, &quoted), "gopher_rep_duplicated_5_n_grams");
    // A phrase hammered throughout: its 2-gram covers over 20% of the characters.
    let spam = paras[0]
        .split_whitespace()
        .map(|w| format!("{w} United States"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(check(&r, &spam), "gopher_rep_top_2_gram");
}

#[test]
fn c4_line_edits_and_document_drops() {
    let c4 = C4Quality::new(C4Config::default());
    let paras = sotu();
    let base = paras[..6].join("\n");
    let mut doc = TextDoc::new(
        format!("{base}\nPlease enable JavaScript to view this page.\nRead our Privacy Policy here now.\nShare"),
        "en",
    );
    assert_eq!(c4.check(&mut doc), Verdict::Keep);
    assert_eq!(doc.lines_removed, 3, "javascript, policy and one-word lines go");
    assert!(doc.edited);
    assert_eq!(doc.text(), base);
    assert_eq!(
        check(&c4, &format!("{base}\nLorem ipsum dolor sit amet.")),
        "c4_lorem_ipsum"
    );
    assert_eq!(check(&c4, &format!("{base}\nvar x = {{ a: 1 }};")), "c4_curly_bracket");
    // Sentences: four short ones are too few, five suffice.
    let s = [
        "The Senate met today.",
        "The House adjourned early.",
        "Congress passed the bill.",
        "The President signed it.",
        "The people rejoiced loudly.",
    ];
    assert_eq!(check(&c4, &s[..4].join(" ")), "c4_too_few_sentences");
    assert_eq!(check(&c4, &s.join(" ")), "keep");
    // A line holding a "word" over 1,000 characters (a data blob) goes; the rest stays.
    let mut doc = TextDoc::new(format!("{base}\nPayload: {} ends here.", "A".repeat(1001)), "en");
    assert_eq!(c4.check(&mut doc), Verdict::Keep);
    assert_eq!((doc.lines_removed, doc.text()), (1, base.as_str()));
    let mut doc = TextDoc::new(format!("{base}\nPayload: {} ends here.", "A".repeat(1000)), "en");
    assert_eq!(c4.check(&mut doc), Verdict::Keep);
    assert_eq!(doc.lines_removed, 0, "exactly 1,000 characters is allowed");
    // Citation marks are stripped from kept lines.
    let mut doc = TextDoc::new(
        format!("{base}\nThe treaty was ratified in 1795.[12] It held for years.[citation needed]"),
        "en",
    );
    assert_eq!(c4.check(&mut doc), Verdict::Keep);
    assert!(doc.text().ends_with("ratified in 1795. It held for years."));
}

#[test]
fn fineweb_ratios() {
    let f = FineWebQuality::new(FineWebConfig::default());
    let paras = moby();
    let prose = paras[..5].join("\n");
    assert_eq!(check(&f, &prose), "keep");
    // Menu-like lines without terminal punctuation: under 12% of lines end in one.
    // Lines ending in terminal punctuation: 1 of 8 (12.5%) passes 0.12, 1 of 9 does not.
    let menu = |k: usize| {
        let items: Vec<String> = (0..k)
            .map(|i| format!("Chapter {i} of the book about whales and ships"))
            .collect();
        format!("{}\n{}", paras[0], items.join("\n"))
    };
    assert_eq!(check(&f, &menu(7)), "keep");
    assert_eq!(check(&f, &menu(8)), "fineweb_line_punct_ratio");
    // Short lines: 2 of 3 (66.7%) is not over 0.67; 3 of 4 is.
    assert_eq!(
        check(&f, &format!("{}\nCall me Ishmael.\nIt was cold.", paras[0])),
        "keep"
    );
    assert_eq!(
        check(&f, &format!("{}\nCall me Ishmael.\nIt was cold.\nThe end.", paras[0])),
        "fineweb_short_line_ratio"
    );
    // Repeated lines: a short repeated line under 1% of the characters passes; a
    // repeated paragraph is over 1%.
    assert_eq!(check(&f, &format!("{prose}\nThus it ends.\nThus it ends.")), "keep");
    assert_eq!(check(&f, &format!("{prose}\n{}", paras[1])), "fineweb_char_dup_ratio");
    // Newlines per word, with the other checks turned off to isolate it: prose passes,
    // one word per line does not.
    let only_list = FineWebQuality::new(FineWebConfig {
        line_punct_thr: 0.0,
        short_line_thr: 1.0,
        char_duplicates_ratio: 1.0,
        ..Default::default()
    });
    assert_eq!(check(&only_list, &prose), "keep");
    let one_per_line = paras[0].split_whitespace().collect::<Vec<_>>().join("\n");
    assert_eq!(check(&only_list, &one_per_line), "fineweb_list_ratio");
}

/// The report's per-rule histograms come from `measure`; it must tell the same story as
/// `check`: a document is dropped exactly when one of its measures is past its limit,
/// and the reason is the first such measure's.
#[test]
fn measures_agree_with_check() {
    let rules: Vec<Box<dyn Rule>> = vec![
        Box::new(GopherRepetition::new(GopherRepetitionConfig::default())),
        Box::new(GopherQuality::new(GopherQualityConfig::default())),
        Box::new(FineWebQuality::new(FineWebConfig::default())),
    ];
    let (s, m) = (sotu(), moby());
    let mut docs: Vec<String> = Vec::new();
    for n in [1, 3, 8, 20] {
        docs.extend(s.chunks(n).map(|c| c.join("\n")));
        docs.extend(m.chunks(n).map(|c| c.join("\n\n")));
    }
    docs.push(
        s[..6]
            .iter()
            .map(|l| format!("- {l}..."))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    docs.push(format!("{}\n{}", s[0], s[0]).repeat(4));
    let (mut dropped, mut kept) = (0, 0);
    for text in &docs {
        for rule in &rules {
            let verdict = check(rule.as_ref(), text);
            let measures = rule.measure(&mut TextDoc::new(text.clone(), "en"));
            assert!(!measures.is_empty(), "{}: no measures", rule.name());
            let first = measures.iter().find(|x| x.drops()).map_or("keep", |x| x.reason);
            assert_eq!(verdict, first, "{} on {:?}", rule.name(), &text[..text.len().min(80)]);
            if verdict == "keep" {
                kept += 1;
            } else {
                dropped += 1;
            }
        }
    }
    // Both sides of the thresholds were exercised.
    assert!(kept > 20 && dropped > 20, "kept {kept}, dropped {dropped}");
    // A measure's value is the quantity its reason names: 50 plain words.
    let g = GopherQuality::new(GopherQualityConfig::default());
    let fifty = words("the whale swam and the sea was wide and deep ".repeat(6).as_str(), 50);
    let ms = g.measure(&mut TextDoc::new(fifty, "en"));
    let short = ms.iter().find(|x| x.reason == "gopher_short_doc");
    assert_eq!(short.map(|x| (x.value, x.limit, x.drops())), Some((50.0, 50.0, false)));
}
