#!/usr/bin/env python3
"""Runs loam, datatrove 0.10.1 (4-stage MinHash, FineWeb config) and text-dedup 0.4.0
(MinHash) on the same labelled corpus (make_corpus.py) and scores them against the
planted truth. Each tool runs as its own process under /usr/bin/time: CPU = user + sys
of the process and its children, peak RSS = the largest process.

    python3 bench/dedup/run.py --loam target/release/loam --work /tmp/dd-20k \
        --dt-python /opt/dt-venv/bin/python --td-python /opt/td-venv/bin/python

Scoring is survivor-agnostic: a planted cluster of m documents should lose m - 1 of them,
whichever copy a tool keeps. TP = Σ min(removed, m - 1); FP = the rest of the removals
(a cluster emptied, or a distinct document removed); FN = Σ (m - 1) - TP.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(cmd, log, env=None):
    """Runs cmd under /usr/bin/time; returns (wall s, cpu s, peak RSS MB)."""
    tf = log.with_suffix(".time")
    t0 = time.time()
    with open(log, "w") as out:
        r = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(tf)] + cmd,
                           stdout=out, stderr=subprocess.STDOUT, env=env)
    wall = time.time() - t0
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({r.returncode}); see {log}")
    e, u, s, m = tf.read_text().split()[-4:]
    return {"wall_s": round(wall, 2), "cpu_s": round(float(u) + float(s), 2), "peak_rss_mb": round(int(m) / 1024, 1)}


def read_truth(work):
    truth = {}
    with open(work / "truth.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            i, c, k, _ = line.rstrip("\n").split("\t")
            truth[i] = (c, k)
    return truth


def score(truth, removed):
    members = defaultdict(list)
    for i, (c, _) in truth.items():
        members[c].append(i)
    tp = fp = fn = 0
    for c, ms in members.items():
        r = sum(1 for m in ms if m in removed)
        tp += min(r, len(ms) - 1)
        fp += max(0, r - (len(ms) - 1))
        fn += (len(ms) - 1) - min(r, len(ms) - 1)
    p = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
    # Recall per planted kind: the copy or its original was removed (one of the pair went).
    by_kind = defaultdict(lambda: [0, 0])
    base_of = {i: c for i, (c, k) in truth.items() if k not in ("base", "half_shared")}
    for i, b in base_of.items():
        k = truth[i][1]
        by_kind[k][1] += 1
        by_kind[k][0] += int(i in removed or b in removed)
    hard = [i for i, (_, k) in truth.items() if k == "half_shared"]
    return {
        "precision": round(p, 4), "recall": round(rc, 4), "f1": round(f1, 4),
        "tp": tp, "fp": fp, "fn": fn, "removed": len(removed),
        "recall_by_kind": {k: round(a / n, 3) for k, (a, n) in sorted(by_kind.items())},
        "hard_negatives_removed": sum(1 for i in hard if i in removed), "hard_negatives": len(hard),
    }


def run_loam(a, work, out):
    run = out / "loam-run"
    shutil.rmtree(run, ignore_errors=True)
    dumps = sorted(p.name for p in (work / "jsonl").iterdir())
    cfg = out / "loam.toml"
    lines = [f'[run]\ndir = "{run}"\nshards = {a.shards}\n']
    for d in dumps:
        lines.append(f'[[dumps]]\nname = "{d}"\ninputs = ["{work / "jsonl" / d}"]\n')
    lines.append(f'[dedup]\nupstream = "ingest"\nmemory_limit_mb = {a.memory_mb}\n[dedup.lines]\nenabled = false\n')
    cfg.write_text("".join(lines))
    th = ["--threads", str(a.threads)]
    ing = timed([a.loam, "ingest", "--config", str(cfg)] + th, out / "loam-ingest.log")
    sets = [x for kv in a.loam_set for x in ("--set", kv)]
    ded = timed([a.loam, "dedup", "--config", str(cfg)] + th + sets, out / "loam-dedup.log")
    removed = set()
    import pyarrow.parquet as pq
    t = pq.read_table(run / "dedup" / "_dropped", columns=["id", "reason"])
    for i, r in zip(t.column("id").to_pylist(), t.column("reason").to_pylist()):
        if r in ("exact_duplicate", "near_duplicate"):
            removed.add(i.split("/", 1)[1])
    cluster_stats = json.loads((run / "dedup/_index/cluster/_stats/cluster.json").read_text())
    summary = json.loads((run / "dedup/_index/cluster/summary.json").read_text())
    cluster_stats["candidates_rejected_by_jaccard"] = summary["candidates_rejected_by_jaccard"]
    cluster_stats["curve"] = [round(p["removed_share"], 4) for p in summary["curve"]]
    return {"time": ded, "ingest_time": ing, "removed": removed, "cluster": cluster_stats}


def run_datatrove(a, work, out):
    dt = out / "datatrove"
    shutil.rmtree(dt, ignore_errors=True)
    t = timed([a.dt_python, str(HERE / "datatrove_minhash.py"), str(work / "jsonl"), str(dt), str(a.threads)],
              out / "datatrove.log")
    removed = set()
    for f in sorted((dt / "removed").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                removed.add(json.loads(line)["id"])
    return {"time": t, "removed": removed}


def run_textdedup(a, work, out):
    td = out / "text-dedup"
    shutil.rmtree(td, ignore_errors=True)
    td.mkdir(parents=True)
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(td / "hf"))
    # Its input format: a saved HF dataset (conversion not timed).
    prep = ("import datasets, glob, sys; files = sorted(glob.glob(sys.argv[1] + '/*/*.jsonl.gz')); "
            "datasets.load_dataset('json', data_files=files, split='train', cache_dir=sys.argv[3])"
            ".save_to_disk(sys.argv[2])")
    subprocess.run([a.td_python, "-c", prep, str(work / "jsonl"), str(td / "in"), str(td / "cache")],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = timed([a.td_python, "-m", "text_dedup.minhash", "--path", str(td / "in"), "--local",
               "--column", "text", "--output", str(td / "out"), "--num_perm", "112", "--b", "14",
               "--r", "8", "--ngram", "5", "--hash_func", "xxh3", "--num_proc", str(a.threads),
               "--cache_dir", str(td / "cache")], out / "text-dedup.log", env=env)
    kept = subprocess.run([a.td_python, "-c", "import datasets, json, sys; "
                           "print(json.dumps(list(datasets.load_from_disk(sys.argv[1])['id'])))", str(td / "out")],
                          check=True, env=env, capture_output=True, text=True).stdout
    kept = set(json.loads(kept))
    return {"time": t, "kept": kept}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loam", required=True)
    ap.add_argument("--work", type=Path, required=True, help="corpus folder from make_corpus.py")
    ap.add_argument("--out", type=Path, help="results folder (default WORK/results)")
    ap.add_argument("--dt-python")
    ap.add_argument("--td-python")
    # One worker each by default: /usr/bin/time cannot see the CPU of pool workers that
    # datatrove and datasets do not wait for, and CPU per document is the comparison.
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--memory-mb", type=int, default=1024)
    ap.add_argument("--tools", default="loam,datatrove,text-dedup")
    ap.add_argument("--loam-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra --set for loam dedup, e.g. dedup.minhash.verify_jaccard=0.7")
    a = ap.parse_args()
    out = a.out or a.work / "results"
    out.mkdir(parents=True, exist_ok=True)
    truth = read_truth(a.work)
    n = len(truth)
    results = {"documents": n, "threads": a.threads}
    tools = a.tools.split(",")
    if "loam" in tools:
        r = run_loam(a, a.work, out)
        results["loam"] = {**r["time"], "ingest": r["ingest_time"], "cluster_step": r["cluster"],
                           **score(truth, r["removed"])}
    if "datatrove" in tools and a.dt_python:
        r = run_datatrove(a, a.work, out)
        results["datatrove"] = {**r["time"], **score(truth, r["removed"])}
    if "text-dedup" in tools and a.td_python:
        r = run_textdedup(a, a.work, out)
        removed = set(truth) - r["kept"]
        results["text-dedup"] = {**r["time"], **score(truth, removed)}
    for name in ("loam", "datatrove", "text-dedup"):
        if name in results:
            results[name]["cpu_ms_per_doc"] = round(1000 * results[name]["cpu_s"] / n, 4)
    if "loam" in results:
        for peer in ("datatrove", "text-dedup"):
            if peer in results:
                results[f"cpu_ratio_{peer}_over_loam"] = round(results[peer]["cpu_s"] / max(results["loam"]["cpu_s"], 1e-9), 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
