"""Driver of bench/remix.sh: one run, same documents, loam vs datatrove's SamplerFilter."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

LOAM, WORK, COPIES, DT_PY = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
corpus = WORK / f"corpus-{COPIES}"


def config(run, shards, target):
    run = f"{run}-{COPIES}"
    p = WORK / f"{run}.toml"
    p.write_text(f"""[run]
dir = "{WORK / run}"
shards = {shards}
seed = 11

[[dumps]]
name = "MIX-2024"
inputs = ["{corpus}/*.jsonl.gz"]

[remix]
upstream = "ingest"
assign = ["table", "blocklist"]
blocklist = "{corpus}/blocklist.txt"
memory_limit_mb = 512
{target}
""")
    return p


def timed(*args):
    """Seconds, peak RSS (MB, GNU time) and the result of one command."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "RSS %M"] + [str(a) for a in args], capture_output=True, text=True)
    secs = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{args} failed:\n{r.stderr[-3000:]}")
    rss = int(r.stderr.strip().splitlines()[-1].split()[1]) / 1024
    return secs, rss, r


MIX = """[remix.target]
kind = "weights"
weights = { politics = 0.25, literature = 0.2, software = 0.25, law = 0.05, forum = 0.09, blocked = 0.01, other = 0.15 }
"""
DOWN = """unit = "documents"
total = {half}
"""
report = {"date": time.strftime("%Y-%m-%d"), "copies": int(COPIES)}
# Ingest once (not measured), then share it between the runs.
base = config("mix4", 4, MIX)
mix = WORK / f"mix4-{COPIES}"
if not (mix / "ingest" / "_done").is_dir() or len(list((mix / "ingest" / "_done").iterdir())) < 4:
    timed(LOAM, "ingest", "--config", str(base), "--threads", "2")
ingest = mix / "ingest"
docs = sum(json.loads(p.read_text())["kept"] for p in (ingest / "_stats").glob("*.json"))
text_bytes = sum(json.loads(p.read_text())["bytes_out"] for p in (ingest / "_stats").glob("*.json"))
report["documents"] = docs

# 1. The mixture toward stated weights, step by step, one core.
steps = {}
for phase in ["assign", "plan", "apply"]:
    secs, rss, r = timed(LOAM, "remix", "--config", str(base), "--phase", phase, "--threads", "1", "--force")
    steps[phase] = {"seconds": secs, "docs_per_s": docs / secs, "peak_rss_mb": rss}
report["loam_mixture"] = steps
plan = json.loads((mix / "remix" / "_stats" / "plan.json").read_text())
report["loam_mixture_plan"] = {"rows_out": plan["rows_out"], "l1_target_achieved": plan["l1_target_achieved"],
                               "keys": {k["key"]: [round(k["target_share"], 4), round(k["achieved_share"], 4), round(k["epochs"], 2)] for k in plan["keys"]}}
total = sum(s["seconds"] for s in steps.values())
report["loam_mixture_docs_per_s_core"] = docs / total


# 2. Plain downsampling to half, loam vs SamplerFilter(0.5), at 4 and 1 shards.
def loam_down(shards):
    cfg = config(f"down{shards}", shards, DOWN.format(half=docs // 2))
    d = WORK / f"down{shards}-{COPIES}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    (d / "ingest").symlink_to(ingest)
    secs, rss, _ = timed(LOAM, "remix", "--config", str(cfg), "--threads", "1")
    import pyarrow.parquet as pq
    ids = sorted(i for p in sorted((d / "remix").glob("*.parquet")) for i in pq.read_table(p, columns=["id"]).column("id").to_pylist())
    import hashlib
    return {"seconds": secs, "docs_per_s": docs / secs, "peak_rss_mb": rss, "kept": len(ids),
            "kept_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()}


def dt_down(tasks):
    out = WORK / f"dt{tasks}-{COPIES}"
    if out.exists():
        shutil.rmtree(out)
    secs, rss, r = timed(DT_PY, "bench/remix/dt_sample.py", str(ingest), str(out), "0.5", str(tasks))
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res.update({"docs_per_s": docs / res["seconds"], "peak_rss_mb": rss})
    return res


rounds = []
for _ in range(2):
    rounds.append({"loam4": loam_down(4), "dt4": dt_down(4)})
best = lambda k: min((r[k] for r in rounds), key=lambda x: x["seconds"])
report["downsample"] = {"loam_4_shards": best("loam4"), "datatrove_4_tasks": best("dt4"),
                        "loam_1_shard": loam_down(1), "datatrove_1_task": dt_down(1)}
d = report["downsample"]
report["downsample"]["ratio_docs_per_s"] = d["loam_4_shards"]["docs_per_s"] / d["datatrove_4_tasks"]["docs_per_s"]
report["downsample"]["loam_same_sample_at_1_and_4_shards"] = d["loam_1_shard"]["kept_ids_sha256"] == d["loam_4_shards"]["kept_ids_sha256"]
report["downsample"]["datatrove_same_sample_at_1_and_4_tasks"] = d["datatrove_1_task"]["kept_ids_sha256"] == d["datatrove_4_tasks"]["kept_ids_sha256"]
report["ingest_parquet_bytes"] = text_bytes
print(json.dumps(report, indent=1))
