//! The `quality` stage end to end: the demo's classifier separates held-out sources
//! (ROC-AUC ≥ 0.9) and gives Python fastText's probabilities on the same model; its
//! training is byte-identical to Python's `train_supervised` and to itself; the keep rule
//! is exact and global whatever the sharding and thread count; SIGKILLs at four points
//! rerun to the same bytes; bad inputs exit 2 naming the file or setting; and models
//! trained on the full real reference sets (SOTU, Moby-Dick, the Debian handbook, the
//! Debian Reference, LibreOffice help) against SpamAssassin, GPT-2 text and the pool
//! separate their held-out sources in English and Chinese.
mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn demo_quality(dir: &Path, extra: &[&str]) -> std::process::Output {
    demo_until(dir, "quality", extra)
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).expect("json")
}

fn python_check(model_dir: &Path, stem: &str) -> serde_json::Value {
    let o = std::process::Command::new("python3")
        .arg(repo().join("tests/py/check_quality.py"))
        .arg(model_dir)
        .arg(stem)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "Python check failed (needs fasttext-numpy2-wheel; .ci/run installs it):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json report")
}

/// (id, quality_score) of every row in a stage folder's kept or dropped Parquet files.
fn scores(dir: &Path) -> Vec<(String, Option<f32>)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    use arrow_array::Array;
    let batches = read_rows(dir);
    let ids = strings(&batches, "id");
    let mut s = Vec::new();
    for b in &batches {
        let a = b
            .column_by_name("quality_score")
            .expect("quality_score column")
            .as_primitive::<Float32Type>();
        for i in 0..a.len() {
            s.push(a.is_valid(i).then(|| a.value(i)));
        }
    }
    ids.into_iter().map(|i| i.unwrap_or_default()).zip(s).collect()
}

fn quality_outputs(run_dir: &Path) -> Vec<(String, Vec<u8>)> {
    output_bytes(&run_dir.join("quality"))
}

#[test]
fn demo_classifier_separates_held_out_sources_and_agrees_with_python_fasttext() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("run");
    let o = demo_quality(&dir, &["--set", "quality.keep_training_files=true"]);
    ok(&o);
    let card = read_json(&dir.join("quality/_model/en.card.json"));
    let h = &card["heldout"];
    let auc = h["roc_auc"].as_f64().ok_or("auc")?;
    assert!(auc >= 0.9, "held-out ROC-AUC {auc}: {card}");
    for k in ["precision", "recall", "f1"] {
        let v = h["best_f1"][k].as_f64().ok_or(k)?;
        assert!(v > 0.5 && v <= 1.0, "{k} = {v}");
    }
    assert_eq!(card["threshold"], h["best_f1"]["threshold"]);
    assert_eq!(
        card["what"].as_str().map(|w| w.starts_with("reference-likeness")),
        Some(true)
    );
    assert_eq!(card["deterministic"], true);
    // Split by source: later addresses and chapters, the GPT-2 test split, held-out domains.
    let sources = card["sources"].as_array().ok_or("sources")?;
    let split = |name: &str| {
        sources
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["split"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(split("sotu-1991-2021").as_deref(), Some("heldout"));
    assert_eq!(split("sotu-1790-1990").as_deref(), Some("train"));
    assert!(sources
        .iter()
        .all(|s| s["sha256"].as_str().is_some_and(|h| h.len() == 64)));
    let held_hq = sources.iter().find(|s| s["name"] == "sotu-1991-2021").ok_or("sotu")?;
    let held_cc = sources
        .iter()
        .find(|s| s["name"] == "gpt2-continuations-test")
        .ok_or("gpt2")?;
    assert!(
        held_hq["mean_score"].as_f64() > held_cc["mean_score"].as_f64(),
        "{card}"
    );
    // The pool's negatives are the filter's rule-dropped English documents.
    assert_eq!(card["pool"]["drawn_kept"], 0);
    // pool.docs = 0: as many pool negatives as positives (302), from the 1,978 eligible.
    assert_eq!(card["pool"]["drawn_rule_dropped"], card["train_examples"]["hq"]);
    assert!(
        card["pool"]["drawn_rule_dropped"].as_u64() < card["pool"]["eligible_rule_dropped"].as_u64(),
        "{}",
        card["pool"]
    );

    // Python fastText on the same model file gives the same probabilities, and trains the
    // same model bytes from the same training file.
    let py = python_check(&dir.join("quality/_model"), "en");
    assert!(py["documents"].as_u64() >= Some(500), "{py}");
    assert!(py["max_abs_diff"].as_f64().ok_or("diff")? <= 1e-6, "{py}");
    assert_eq!(py["same_bin_bytes"], true, "{py} vs {}", card["bin"]);

    // Every row carries its score; the drops say why; the books balance.
    let kept = scores(&dir.join("quality"));
    let dropped = scores(&dir.join("quality/_dropped"));
    assert_eq!(kept.len() + dropped.len(), 1679);
    assert!(dropped.iter().all(|(_, s)| s.is_some()));
    let unscored = kept.iter().filter(|(_, s)| s.is_none()).count();
    assert_eq!(unscored, 2, "the two Chinese documents have no model");
    let lowest_kept = kept.iter().filter_map(|(_, s)| *s).fold(f32::INFINITY, f32::min);
    let highest_dropped = dropped.iter().filter_map(|(_, s)| *s).fold(0.0, f32::max);
    assert!(lowest_kept >= highest_dropped);
    let reasons = strings(&read_rows(&dir.join("quality/_dropped")), "reason");
    assert!(reasons.iter().all(|r| r.as_deref() == Some("quality_below_threshold")));
    let details = strings(&read_rows(&dir.join("quality/_dropped")), "detail");
    assert!(details
        .iter()
        .all(|d| d.as_deref().is_some_and(|d| d.contains("threshold"))));
    assert_eq!(total(&dir, "quality", "counters", "passed_through_no_model_zh"), 2);
    let st = stats(&dir, "quality");
    assert!(st[0]["extra"]["score_histogram"]["by_language"]["en"]["kept"].is_array());
    assert_eq!(st[0]["extra"]["threshold"]["rule"], "top_fraction");
    ledger_ok(&dir);
    Ok(())
}

#[test]
fn top_fraction_keeps_exactly_the_ceiling_at_any_sharding_and_thread_count() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let set = ["--set", "quality.top_fraction=0.1"];
    let four_1 = tmp.path().join("four-1");
    let four_4 = tmp.path().join("four-4");
    let one = tmp.path().join("one");
    ok(&demo_quality(&four_1, &[&set[..], &["--threads", "1"]].concat()));
    ok(&demo_quality(&four_4, &[&set[..], &["--threads", "4"]].concat()));
    ok(&demo_quality(&one, &[&set[..], &["--set", "run.shards=1"]].concat()));
    // 1,677 English documents scored: ⌈0.1 × 1677⌉ = 168 kept, plus the 2 unscored Chinese ones.
    let t = read_json(&four_1.join("quality/_index/threshold.json"));
    assert_eq!(
        (t["models"][0]["scored"].as_u64(), t["models"][0]["keep"].as_u64()),
        (Some(1677), Some(168))
    );
    for d in [&four_1, &one] {
        assert_eq!(scores(&d.join("quality")).len(), 170, "{}", d.display());
    }
    assert_same_outputs(
        &quality_outputs(&four_4),
        &quality_outputs(&four_1),
        "at 4 threads vs 1",
    );
    let ids = |d: &PathBuf| {
        scores(&d.join("quality"))
            .into_iter()
            .map(|(i, _)| i)
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(ids(&one), ids(&four_1), "the same documents kept at 1 and 4 shards");

    // The other rules, on the same scores: min_score keeps exactly the rows at or above it;
    // Pareto draws from each document's own hash, so sharding cannot change it.
    for (rule, extra) in [
        ("min_score", "quality.min_score=0.6"),
        ("pareto", "quality.pareto_alpha=2.0"),
    ] {
        let mut kept = Vec::new();
        for d in [&four_1, &one] {
            let cfg = format!("run.dir={}", d.display());
            let shards = if d == &one { "run.shards=1" } else { "run.shards=4" };
            let keep = format!("quality.keep={rule}");
            for phase in ["threshold", "apply"] {
                let o = run(&[
                    "quality",
                    "--phase",
                    phase,
                    "--config",
                    "configs/demo.toml",
                    "--force",
                    "--set",
                    &cfg,
                    "--set",
                    shards,
                    "--set",
                    &keep,
                    "--set",
                    extra,
                ]);
                ok(&o);
            }
            kept.push(ids(d));
            ledger_ok(d);
        }
        assert_eq!(kept[0], kept[1], "{rule}: same documents at 1 and 4 shards");
        if rule == "min_score" {
            let k = scores(&four_1.join("quality"));
            let dr = scores(&four_1.join("quality/_dropped"));
            assert!(k.iter().all(|(_, s)| s.is_none_or(|s| s >= 0.6)));
            assert!(dr.iter().all(|(_, s)| s.is_some_and(|s| s < 0.6)));
        }
    }
    Ok(())
}

#[test]
fn killed_quality_steps_rerun_to_the_same_bytes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let clean = tmp.path().join("clean");
    ok(&demo_quality(&clean, &[]));
    let dir = tmp.path().join("killed");
    ok(&demo_until(&dir, "dedup", &[]));
    let set = format!("run.dir={}", dir.display());
    let cmd = |args: &[&str]| {
        let mut c = loam();
        c.args(args);
        c
    };
    // Before the train marker; after shard 1's scores; before the threshold marker;
    // after shard 2's quality output, before its stats and marker.
    kill_at_failpoint(
        cmd(&["quality", "train", "--config", "configs/demo.toml", "--set", &set]),
        "before_quality_train_marker",
    );
    for point in ["after_quality_scores@1", "before_quality_threshold_marker"] {
        kill_at_failpoint(
            cmd(&[
                "run",
                "configs/demo.toml",
                "--until",
                "quality",
                "--run-dir",
                path_str(&dir),
            ]),
            point,
        );
    }
    // The earlier stages are committed, so the first `after_output` is quality's.
    kill_at_failpoint(
        cmd(&[
            "run",
            "configs/demo.toml",
            "--until",
            "quality",
            "--run-dir",
            path_str(&dir),
        ]),
        "after_output@2",
    );
    ok(&demo_quality(&dir, &[]));
    assert_same_outputs(&quality_outputs(&dir), &quality_outputs(&clean), "after four kills");
    // The model was trained twice (killed once before its marker): thread 1 gives the
    // same model bytes.
    let bin = |d: &Path| std::fs::read(d.join("quality/_model/en.bin")).expect("model");
    assert!(bin(&dir) == bin(&clean), "thread = 1 training is not deterministic");
    ledger_ok(&dir);
    // A finished run is a no-op.
    let o = demo_quality(&dir, &[]);
    ok(&o);
    assert!(stderr(&o).contains("already committed"), "{}", stderr(&o));
    Ok(())
}

#[test]
fn bad_quality_inputs_exit_2_naming_the_file_or_setting() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("run");
    ok(&demo_until(&dir, "dedup", &[]));
    let set = format!("run.dir={}", dir.display());
    let train = |extra: &[&str]| {
        let mut args = vec!["quality", "train", "--config", "configs/demo.toml", "--set", &set];
        for e in extra {
            args.push("--set");
            args.push(e);
        }
        run(&args)
    };
    let expect = |o: std::process::Output, needles: &[&str]| {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        for n in needles {
            assert!(stderr(&o).contains(n), "wanted {n:?} in: {}", stderr(&o));
        }
    };
    // An empty positive source.
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "")?;
    let input = format!("quality.models.0.positives.0.inputs=[{:?}]", path_str(&empty));
    expect(train(&[&input]), &["sotu-1790-1990", "yielded no documents"]);
    // One class only: every negative held out and no pool.
    expect(
        train(&[
            "quality.models.0.negatives.0.heldout=true",
            "quality.models.0.pool.enabled=false",
        ]),
        &["negative training set is empty", "single class"],
    );
    // A Parquet source without the text column.
    let parquet = std::fs::read_dir(dir.join("dedup"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .ok_or("dedup parquet")?;
    let input = format!("quality.models.0.positives.1.inputs=[{:?}]", path_str(&parquet));
    expect(
        train(&[
            &input,
            "quality.models.0.positives.1.format=parquet",
            "quality.models.0.positives.1.text_field=body",
        ]),
        &[path_str(&parquet), "no column \"body\"", "text_field"],
    );
    // Settings checked before anything runs.
    expect(train(&["quality.top_fraction=0"]), &["quality.top_fraction"]);
    expect(train(&["quality.fasttext.dim=0"]), &["quality.fasttext.dim"]);
    expect(train(&["quality.models.0.language=\"\""]), &["language"]);
    // A model file that is damaged, foreign, or a classifier of other labels.
    ok(&train(&[]));
    let bytes = std::fs::read(dir.join("quality/_model/en.bin"))?;
    std::fs::remove_dir_all(dir.join("quality"))?;
    let truncated = tmp.path().join("truncated.bin");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    let foreign = tmp.path().join("foreign.bin");
    std::fs::write(&foreign, b"PK\x03\x04 this is a zip, not a model")?;
    let lid = repo().join("data/lid/lid.176.ftz");
    for (file, needle) in [
        (&truncated, "truncated"),
        (&foreign, "not a fastText"),
        (&lid, "its labels are"),
    ] {
        let from = format!("quality.models.0.from_file={:?}", path_str(file));
        expect(train(&[&from]), &[path_str(file), needle]);
    }
    // Scores and thresholds are not made from models of other settings.
    ok(&run(&[
        "run",
        "configs/demo.toml",
        "--until",
        "quality",
        "--run-dir",
        path_str(&dir),
    ]));
    let o = run(&[
        "quality",
        "--phase",
        "threshold",
        "--config",
        "configs/demo.toml",
        "--set",
        &set,
        "--set",
        "quality.fasttext.epoch=7",
    ]);
    expect(o, &["trained with other settings", "--force"]);
    let o = run(&[
        "quality",
        "--phase",
        "apply",
        "--config",
        "configs/demo.toml",
        "--set",
        &set,
        "--set",
        "quality.top_fraction=0.3",
    ]);
    expect(o, &["threshold.json", "--phase threshold"]);
    // Nothing half-done was left: the books still balance.
    ledger_ok(&dir);
    Ok(())
}

/// The full real reference sets of ../shared/data, per language.
fn real_config(run_dir: &Path) -> String {
    let d = shared();
    let s = |p: &str| d.join(p).display().to_string();
    let demo = std::fs::read_to_string(repo().join("configs/demo.toml")).expect("demo config");
    let head = demo.split("\n[quality]").next().expect("head");
    let tail = demo.split("\n[tokenizer]").nth(1).expect("tail");
    let root = repo().display().to_string();
    let head = head
        .replace(
            "dir = \"../runs/demo\"",
            &format!("dir = {:?}", run_dir.display().to_string()),
        )
        .replace("\"../", &format!("\"{root}/"));
    let src = |name: &str, inputs: &[String], format: &str, heldout: bool, more: &str| {
        format!(
            "[[quality.models.{{KIND}}]]\nname = {name:?}\ninputs = {inputs:?}\nformat = {format:?}\nheldout = {heldout}\n{more}\n"
        )
    };
    let sotu = s("text/sotu");
    let moby = s("text/moby-dick");
    let spam = s("labelled/spam-assassin-txt.tar.gz");
    let gpt2 = s("labelled/real-or-fake-text/gpt2.task.json.gz");
    let en_pos = [
        src(
            "sotu-1790-1990",
            &[
                format!("{sotu}/1[78]*.txt"),
                format!("{sotu}/19[0-8]*.txt"),
                format!("{sotu}/1990*.txt"),
            ],
            "text",
            false,
            "",
        ),
        src(
            "sotu-1991-",
            &[format!("{sotu}/199[1-9]*.txt"), format!("{sotu}/20*.txt")],
            "text",
            true,
            "",
        ),
        src(
            "moby-dick-1-99",
            &[
                format!("{moby}/chapter_[1-9].txt"),
                format!("{moby}/chapter_[1-9][0-9].txt"),
            ],
            "text",
            false,
            "",
        ),
        src(
            "moby-dick-100-",
            &[format!("{moby}/chapter_1[0-9][0-9].txt")],
            "text",
            true,
            "",
        ),
        src(
            "debian-handbook-en",
            &[s("html/debian-handbook/en-US")],
            "html",
            false,
            "",
        ),
    ]
    .concat()
    .replace("{KIND}", "positives");
    let en_neg = [
        src(
            "spam-2",
            std::slice::from_ref(&spam),
            "email",
            false,
            "members = \"spam-2/*\"",
        ),
        src(
            "easy-ham-1",
            std::slice::from_ref(&spam),
            "email",
            false,
            "members = \"easy-ham-1/*\"",
        ),
        src(
            "spam-1",
            std::slice::from_ref(&spam),
            "email",
            true,
            "members = \"spam-1/*\"",
        ),
        src(
            "easy-ham-2",
            std::slice::from_ref(&spam),
            "email",
            true,
            "members = \"easy-ham-2/*\"",
        ),
        src("hard-ham", &[spam], "email", true, "members = \"hard-ham-1/*\""),
        src(
            "gpt2-dev",
            std::slice::from_ref(&gpt2),
            "bigbench",
            false,
            "split = \"dev\"",
        ),
        src("gpt2-test", &[gpt2], "bigbench", true, "split = \"test\""),
    ]
    .concat()
    .replace("{KIND}", "negatives");
    let zh_pos = [
        src(
            "debian-reference-zh-cn",
            &[s("html/debian-reference-zh-cn")],
            "html",
            false,
            "",
        ),
        src(
            "libreoffice-help-zh-cn",
            &[s("html/libreoffice-help-zh-cn/help-zh-CN.tar.gz")],
            "html",
            false,
            "max_docs = 1500",
        ),
        src(
            "debian-handbook-zh-cn",
            &[s("html/debian-handbook/zh-CN")],
            "html",
            true,
            "",
        ),
    ]
    .concat()
    .replace("{KIND}", "positives");
    // The pool's Chinese documents are web copies of some of the anthology's first poems,
    // so the anthology held out overlaps them slightly (about 40 of 2,000 poems).
    let zh_neg = src(
        "poems-40k-first-2000",
        &[s("text/chinese-poetry/poems-40k.jsonl.gz")],
        "jsonl",
        true,
        "max_docs = 2000",
    )
    .replace("{KIND}", "negatives");
    format!(
        "{head}\n[quality]\nupstream = \"dedup\"\ntop_fraction = 0.5\nkeep_training_files = true\n\
         [quality.fasttext]\nbucket = 100000\n[quality.quantize]\nenabled = true\n\
         [[quality.models]]\nlanguage = \"en\"\npool = {{ rule_dropped_share = 1.0 }}\n{en_pos}{en_neg}\
         [[quality.models]]\nlanguage = \"zh\"\npool = {{ rule_dropped_share = 1.0, heldout_share = 0.0 }}\n{zh_pos}{zh_neg}\
         \n[tokenizer]{tail}"
    )
}

#[test]
fn real_reference_sets_train_english_and_chinese_models_that_separate_held_out_sources() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("run");
    let cfg = tmp.path().join("real.toml");
    std::fs::write(&cfg, real_config(&dir))?;
    let o = run(&[
        "run",
        path_str(&cfg),
        "--until",
        "quality",
        "--set",
        "quality.fasttext.dim=32",
    ]);
    ok(&o);
    for (lang, min_docs) in [("en", 3000), ("zh", 1000)] {
        let card = read_json(&dir.join(format!("quality/_model/{lang}.card.json")));
        let auc = card["heldout"]["roc_auc"].as_f64().ok_or("auc")?;
        eprintln!(
            "{lang}: held-out ROC-AUC {auc:.4}, best F1 {}, model {}, {}",
            card["heldout"]["best_f1"], card["model"], card["quantized"]
        );
        assert!(auc >= 0.9, "{lang}: held-out ROC-AUC {auc}\n{card}");
        let n = card["train_examples"]["hq"].as_u64().unwrap_or(0) + card["train_examples"]["cc"].as_u64().unwrap_or(0);
        assert!(n >= min_docs, "{lang}: {n} training examples");
        // The quantized model is used only when it is smaller and as accurate.
        if let (Some(ftz), Some(bin)) = (card["ftz"].as_object(), card["bin"].as_object()) {
            assert_eq!(card["model"], format!("{lang}.ftz"));
            assert!(ftz["bytes"].as_u64() < bin["bytes"].as_u64());
            let loss = bin["heldout_roc_auc"].as_f64().unwrap_or(0.0) - ftz["heldout_roc_auc"].as_f64().unwrap_or(0.0);
            assert!(loss <= 0.005, "{lang}: {card}");
        }
        let py = python_check(&dir.join("quality/_model"), lang);
        assert!(py["max_abs_diff"].as_f64().ok_or("diff")? <= 1e-6, "{lang}: {py}");
    }
    // The Chinese documents are now scored by their own model.
    let zh = read_json(&dir.join("quality/_index/threshold.json"));
    assert!(zh["models"][1]["scored"].as_u64() > Some(0), "{zh}");
    ledger_ok(&dir);
    Ok(())
}
