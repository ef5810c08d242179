//! Bad input never panics: an unusable file fails the step naming the file (exit 1) or,
//! with `on_bad_file = "skip"`, is counted; a bad record is quarantined with a reason,
//! the file and the byte offset, and counted in the stats. Config mistakes exit 2.
mod common;
use common::*;

use std::io::Write;
use std::path::Path;

fn ingest(input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "ingest",
        "--input",
        input.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--dump",
        "TEST",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn warc_record(kind: &str, uri: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-01-02T03:04:05Z\r\nWARC-Record-ID: <urn:uuid:{kind}-{}>\r\nContent-Length: {}\r\n\r\n",
        body.len(),
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r.extend_from_slice(b"\r\n\r\n");
    r
}

#[test]
fn truncated_gzip_keeps_what_was_read_and_quarantines_the_rest() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let full = std::fs::read(cc_dir().join(format!("{CC_STEM}.warc.gz")))?;
    let cut = tmp.path().join("cut.warc.gz");
    std::fs::write(&cut, &full[..full.len() * 6 / 10])?;
    let out = tmp.path().join("out");
    let o = ingest(&cut, &out, &[]);
    ok(&o);
    assert!(
        stderr(&o).contains("cut.warc.gz"),
        "warning must name the file: {}",
        stderr(&o)
    );
    assert_eq!(total(&out, "ingest", "dropped", "truncated_record"), 1);
    assert!(
        sum_field(&out, "ingest", "docs_in") > 1,
        "records before the cut are read"
    );
    let dropped = read_rows(&out.join("ingest/_dropped"));
    let details = strings(&dropped, "detail");
    assert!(
        details.iter().flatten().any(|d| d.contains("cut.warc.gz @ byte")),
        "{details:?}"
    );
    ledger_ok(&out);
    Ok(())
}

#[test]
fn malformed_warc_header_is_quarantined_and_reading_resumes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut data = warc_record("conversion", "http://a.example/1", b"first document text");
    data.extend(b"WARC/1.0\r\nWARC-Type conversion\r\nno colon here\r\n\r\nlost\r\n\r\n");
    data.extend(warc_record("conversion", "http://b.example/2", b"second document text"));
    let f = tmp.path().join("bad-header.warc");
    std::fs::write(&f, &data)?;
    let out = tmp.path().join("out");
    let o = ingest(&f, &out, &[]);
    ok(&o);
    assert!(stderr(&o).contains("bad-header.warc @ byte"), "{}", stderr(&o));
    assert_eq!(total(&out, "ingest", "dropped", "malformed_warc_header"), 1);
    assert_eq!(
        strings(&read_rows(&out.join("ingest")), "text"),
        [Some("first document text".into()), Some("second document text".into())]
    );
    ledger_ok(&out);
    Ok(())
}

#[test]
fn invalid_utf8_is_decoded_lossily_and_counted() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let f = tmp.path().join("latin1.wet");
    std::fs::write(
        &f,
        warc_record("conversion", "http://c.example/", b"caf\xe9 au lait, na\xefve text"),
    )?;
    let jl = tmp.path().join("bad.jsonl");
    std::fs::write(
        &jl,
        b"{\"id\": 1, \"text\": \"ok text\"}\n{\"id\": 2, \"text\": \"bad \xff byte\"}\n",
    )?;
    for (input, n_docs) in [(&f, 1u64), (&jl, 2)] {
        let out = tmp.path().join(format!("out-{}", input.display().to_string().len()));
        let o = ingest(input, &out, &[]);
        ok(&o);
        let name = input.file_name().ok_or("name")?.to_string_lossy().into_owned();
        assert!(
            stderr(&o).contains(&name) && stderr(&o).contains("invalid UTF-8"),
            "{}",
            stderr(&o)
        );
        assert_eq!(sum_field(&out, "ingest", "kept"), n_docs);
        assert_eq!(total(&out, "ingest", "counters", "lossy_utf8"), 1);
        let texts = strings(&read_rows(&out.join("ingest")), "text");
        assert!(texts.iter().flatten().any(|t| t.contains('\u{fffd}')), "{texts:?}");
    }
    Ok(())
}

#[test]
fn empty_file_fails_naming_it_or_is_skipped_and_counted() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let f = tmp.path().join("empty.warc.gz");
    std::fs::write(&f, b"")?;
    let out = tmp.path().join("out");
    let o = ingest(&f, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("empty.warc.gz") && stderr(&o).contains("file is empty"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("on_bad_file"),
        "the message suggests the fix: {}",
        stderr(&o)
    );
    assert_eq!(result_line(&o)["ok"], false);
    // The same file, skipped by configuration, is counted.
    let cfg = tmp.path().join("skip.toml");
    std::fs::write(
        &cfg,
        format!(
            "[run]\ndir = \"skip-run\"\nshards = 1\n[[dumps]]\nname = \"TEST\"\ninputs = [\"{}\", \"{}\"]\n[ingest]\non_bad_file = \"skip\"\n",
            f.display(),
            cc_dir().join(format!("{CC_STEM}.warc.wet")).display()
        ),
    )?;
    let o = run(&["ingest", "--config", cfg.to_str().ok_or("path")?]);
    ok(&o);
    let run_dir = tmp.path().join("skip-run");
    assert_eq!(total(&run_dir, "ingest", "counters", "bad_files"), 1);
    assert_eq!(sum_field(&run_dir, "ingest", "kept"), 3);
    let warnings = stats(&run_dir, "ingest")[0]["warnings"].to_string();
    assert!(warnings.contains("empty.warc.gz"), "{warnings}");
    Ok(())
}

#[test]
fn record_of_100_mb_is_quarantined_unread() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let f = tmp.path().join("huge.warc");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&f)?);
        w.write_all(&warc_record(
            "conversion",
            "http://small.example/1",
            b"a small page before",
        ))?;
        let len = 100 << 20;
        write!(w, "WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: http://huge.example/\r\nContent-Length: {len}\r\n\r\n")?;
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            w.write_all(&chunk)?;
        }
        w.write_all(b"\r\n\r\n")?;
        w.write_all(&warc_record(
            "conversion",
            "http://small.example/2",
            b"a small page after",
        ))?;
    }
    let out = tmp.path().join("out");
    let o = ingest(&f, &out, &[]);
    ok(&o);
    assert!(stderr(&o).contains("huge.warc @ byte"), "{}", stderr(&o));
    assert_eq!(total(&out, "ingest", "dropped", "record_too_large"), 1);
    assert_eq!(sum_field(&out, "ingest", "kept"), 2);
    let dropped = read_rows(&out.join("ingest/_dropped"));
    assert_eq!(strings(&dropped, "url"), [Some("http://huge.example/".into())]);
    ledger_ok(&out);
    Ok(())
}

#[test]
fn parquet_without_text_column_names_the_columns_and_the_fix() -> TestResult {
    use std::sync::Arc;
    let tmp = tempfile::tempdir()?;
    let f = tmp.path().join("notext.parquet");
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("id", arrow_schema::DataType::Utf8, false),
        arrow_schema::Field::new("body", arrow_schema::DataType::Utf8, true),
    ]));
    let batch = arrow_array::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow_array::StringArray::from(vec!["a", "b", "c"])),
            Arc::new(arrow_array::StringArray::from(vec![
                Some("first body"),
                None,
                Some("third body"),
            ])),
        ],
    )?;
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&f)?, schema, None)?;
    w.write(&batch)?;
    w.close()?;
    let out = tmp.path().join("out");
    let o = ingest(&f, &out, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("notext.parquet") && err.contains("no `text` column") && err.contains("id, body"),
        "{err}"
    );
    assert!(err.contains("ingest.text_column"), "{err}");
    // Following the advice works; the null row is dropped with a reason.
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[run]\ndir = \"r\"\nshards = 1\n[[dumps]]\nname = \"P\"\ninputs = [\"{}\"]\n",
            f.display()
        ),
    )?;
    let o = run(&[
        "ingest",
        "--config",
        cfg.to_str().ok_or("path")?,
        "--set",
        "ingest.text_column=body",
    ]);
    ok(&o);
    let r = tmp.path().join("r");
    assert_eq!(sum_field(&r, "ingest", "kept"), 2);
    assert_eq!(total(&r, "ingest", "dropped", "missing_text"), 1);
    assert_eq!(
        strings(&read_rows(&r.join("ingest")), "id"),
        [Some("P/a".into()), Some("P/c".into())]
    );
    Ok(())
}

#[test]
fn bad_json_lines_are_quarantined_with_line_numbers() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let f = tmp.path().join("docs.jsonl");
    std::fs::write(
        &f,
        "{\"id\": \"x\", \"text\": \"fine\", \"metadata\": {\"url\": \"https://news.bbc.co.uk/a\", \"date\": \"2020-05-01\"}}\n{not json\n{\"id\": \"y\"}\n[1, 2]\n",
    )?;
    let out = tmp.path().join("out");
    ok(&ingest(&f, &out, &[]));
    assert_eq!(sum_field(&out, "ingest", "kept"), 1);
    assert_eq!(total(&out, "ingest", "dropped", "bad_json"), 2);
    assert_eq!(total(&out, "ingest", "dropped", "missing_text"), 1);
    let rows = read_rows(&out.join("ingest"));
    assert_eq!(strings(&rows, "domain"), [Some("bbc.co.uk".into())]);
    let details = strings(&read_rows(&out.join("ingest/_dropped")), "detail");
    assert!(
        details.iter().flatten().any(|d| d.contains("docs.jsonl @ line 2")),
        "{details:?}"
    );
    ledger_ok(&out);
    Ok(())
}

#[test]
fn config_mistakes_exit_2_naming_key_file_and_line() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("typo.toml");
    std::fs::write(&cfg, "[run]\ndir = \"r\"\n\n[ingest]\nmax_record_byte = 5\n")?;
    let o = run(&["run", cfg.to_str().ok_or("path")?]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("typo.toml") && err.contains("max_record_byte") && err.contains("line 5"),
        "{err}"
    );
    let o = run(&["run", "configs/demo.toml", "--set", "ingest.max_record_bytes=12"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(&["ingest", "--shard", "1"]);
    assert_eq!(o.status.code(), Some(2), "clap usage errors exit 2");
    // A stated licence must say something (the dataset card prints it).
    let cfg = tmp.path().join("license.toml");
    let data = common::repo().join("data/demo/WEB-1997");
    std::fs::write(
        &cfg,
        format!(
            "[run]\ndir = \"r\"\n\n[[dumps]]\ninputs = [{:?}]\nlicense = \" \"\n",
            data.display().to_string()
        ),
    )?;
    let o = run(&["run", cfg.to_str().ok_or("path")?]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("dumps[0].license is empty"), "{}", stderr(&o));
    Ok(())
}

#[test]
fn unknown_format_fails_with_the_file_name() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let f = tmp.path().join("notes.txt");
    std::fs::write(&f, "just some notes\n")?;
    let o = ingest(&f, &tmp.path().join("out"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("notes.txt") && stderr(&o).contains("unrecognised format"),
        "{}",
        stderr(&o)
    );
    Ok(())
}
