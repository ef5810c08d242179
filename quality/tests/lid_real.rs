//! Language id with lid.176.ftz on real text: the Universal Declaration of Human Rights
//! in many languages (../shared/data/text/udhr), against the reference fastText (the
//! Python `fasttext` package, as FineWeb and datatrove use it).
use std::path::PathBuf;

use loam_quality::lid::LanguageId;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn shared() -> PathBuf {
    std::env::var_os("LOAM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"))
}

fn model() -> LanguageId {
    LanguageId::load(&repo().join("data/lid/lid.176.ftz")).expect("bundled lid.176.ftz loads")
}

/// The declaration's paragraphs, tags removed, one per line.
fn udhr_text(code: &str) -> Option<String> {
    let html = std::fs::read_to_string(shared().join(format!("text/udhr/{code}.html"))).ok()?;
    let mut out = Vec::new();
    let mut rest = html.as_str();
    while let Some(i) = rest.find("<p>") {
        let Some(j) = rest[i..].find("</p>") else { break };
        let mut para = String::new();
        let mut in_tag = false;
        for c in rest[i + 3..i + j].chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => para.push(c),
                _ => {}
            }
        }
        out.push(para.trim().to_owned());
        rest = &rest[i + j + 4..];
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

#[test]
fn regression_fasttext_0_8_mispredicts_quantized_lid() {
    // The pure-Rust fasttext 0.8.0 labels English as `eo` and German as `ar` with this
    // quantized hierarchical-softmax model; 0.7.8 (C++) gets them right.
    let m = model();
    for (code, want) in [
        ("eng", "en"),
        ("deu_1996", "de"),
        ("fra", "fr"),
        ("cmn_hans", "zh"),
        ("rus", "ru"),
        ("jpn", "ja"),
    ] {
        let text = udhr_text(code).expect("UDHR text");
        let (label, score) = m.predict(&text);
        assert_eq!(label, want, "UDHR {code}");
        assert!(score > 0.9, "UDHR {code}: {label} only {score}");
    }
}

#[test]
fn agrees_with_reference_fasttext_on_udhr() -> Result<(), Box<dyn std::error::Error>> {
    let m = model();
    let mut codes: Vec<String> = std::fs::read_dir(shared().join("text/udhr"))?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".html"))
                .map(String::from)
        })
        .collect();
    codes.sort();
    let texts: Vec<(String, String)> = codes
        .into_iter()
        .filter_map(|c| udhr_text(&c).map(|t| (c, t)))
        .collect();
    assert!(
        texts.len() > 400,
        "expected the 500+ UDHR translations, got {}",
        texts.len()
    );
    let tmp = tempfile_path("udhr-texts");
    std::fs::write(
        &tmp,
        texts.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\0"),
    )?;
    // The reference: same model, same input line (newlines as spaces, as datatrove does).
    let script = r#"
import sys, fasttext
m = fasttext.load_model(sys.argv[1])
for t in open(sys.argv[2], encoding="utf-8").read().split("\0"):
    labels, _ = m.predict(t.replace("\n", " "), k=1)
    print(labels[0].replace("__label__", ""))
"#;
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let model_path = repo().join("data/lid/lid.176.ftz");
    let out = std::process::Command::new(py)
        .args(["-c", script])
        .arg(&model_path)
        .arg(&tmp)
        .output()?;
    assert!(
        out.status.success(),
        "reference fastText failed (CI installs fasttext-numpy2-wheel):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<String> = String::from_utf8(out.stdout)?.lines().map(String::from).collect();
    assert_eq!(reference.len(), texts.len());
    let mut same = 0;
    let mut diffs = Vec::new();
    for ((code, text), want) in texts.iter().zip(&reference) {
        let (got, _) = m.predict(text);
        if &got == want {
            same += 1;
        } else {
            diffs.push(format!("{code}: loam {got}, reference {want}"));
        }
    }
    let share = same as f64 / texts.len() as f64;
    eprintln!(
        "language id: {same}/{} UDHR texts have the reference's top label ({:.2}%)",
        texts.len(),
        100.0 * share
    );
    assert!(share >= 0.99, "agreement {share:.4} under 99%: {diffs:?}");
    Ok(())
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("loam-{name}-{}", std::process::id()))
}
