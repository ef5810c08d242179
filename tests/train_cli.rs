//! `loam train` from the command line on the demo's token shards: refused before the shards
//! exist; a short run writes metrics, a summary and a checkpoint whose safetensors load in
//! Python's `safetensors` with the model's names and shapes; rerunning a finished run is a
//! no-op; a changed configuration is refused on resume.
mod common;
use common::*;

use std::path::Path;

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

const SHORT: [&str; 14] = [
    "--set",
    "train.tokens=2048",
    "--set",
    "train.micro_batch=4",
    "--set",
    "train.model.seq_len=32",
    "--set",
    "train.eval_every=8",
    "--set",
    "train.checkpoint_every=8",
    "--set",
    "train.schedule.warmup_steps=4",
    "--set",
    "train.model.n_layer=1",
];

#[test]
fn train_cli_writes_loadable_checkpoints_and_resumes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("run");
    ok(&demo_ingest(&dir, &[]));
    let o = run(&["train", "--run", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("loam tokenize"), "{}", stderr(&o));

    ok(&run(&[
        "run",
        "configs/demo.toml",
        "--until",
        "tokenize",
        "--run-dir",
        path_str(&dir),
    ]));
    let mut args = vec!["train", "--run", path_str(&dir)];
    args.extend(SHORT);
    let o = run(&args);
    ok(&o);
    let res = result_line(&o);
    // 2048 tokens / (4 × 32) = 16 steps.
    assert_eq!(res["train"]["steps"], 16, "{res}");
    assert!(res["train"]["val_bpb"].as_f64().is_some_and(|b| b > 0.0), "{res}");
    assert!(res["train"]["compute"].as_f64().is_some_and(|c| c > 0.0));
    let metrics = std::fs::read_to_string(dir.join("train/metrics.jsonl"))?;
    assert_eq!(metrics.lines().count(), 16);
    let ckpt = dir.join("train/checkpoints/step-000016");
    assert_eq!(
        std::fs::read_to_string(dir.join("train/checkpoints/latest"))?,
        "step-000016"
    );
    // Python's safetensors reads loam's weights: names by module path, shapes by config.
    let script = "import json, sys\nfrom safetensors.numpy import load_file\n\
                  t = load_file(sys.argv[1])\nprint(json.dumps({k: list(v.shape) for k, v in t.items()}))";
    let py = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(ckpt.join("model.safetensors"))
        .output()?;
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let shapes: serde_json::Value = serde_json::from_slice(&py.stdout)?;
    assert_eq!(shapes["embed.weight"], serde_json::json!([8064, 64]), "{shapes}");
    assert_eq!(
        shapes["layers.0.wk.weight"],
        serde_json::json!([64, 32]),
        "GQA: 2 KV heads of 16: {shapes}"
    );
    assert_eq!(shapes["head.weight"], serde_json::json!([64, 8064]));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(ckpt.join("config.json"))?)?;
    assert_eq!(cfg["n_kv_heads"], 2);

    // Finished: rerunning is a no-op that reports the same summary.
    let mut again = args.clone();
    again.push("--resume");
    let o = run(&again);
    ok(&o);
    assert_eq!(result_line(&o)["train"], res["train"]);
    assert_eq!(std::fs::read_to_string(dir.join("train/metrics.jsonl"))?, metrics);
    // Another configuration against these checkpoints is refused, naming the way out.
    again.extend(["--set", "train.optim.weight_decay=0.2"]);
    let o = run(&again);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("another configuration"), "{}", stderr(&o));
    Ok(())
}
