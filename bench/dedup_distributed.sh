#!/usr/bin/env bash
# The dedup cluster step on the 1M-document benchmark corpus (bench/dedup/make_corpus.py,
# 6 dumps, planted duplicates): the local engine (external sort + union-find) beside the
# distributed engine (DataFusion 55.2 + datafusion-distributed 4.0) with 1, 2 and 3
# `loam worker` processes on this machine. Per run: CPU and peak RSS of every process
# (coordinator and each worker, /usr/bin/time), wall time, bytes shuffled between stages,
# label-propagation rounds, and whether the decisions are byte-identical to the local
# engine's. Then a projection to 1B and 100B documents from the measured per-document costs.
#   bash bench/dedup_distributed.sh [DOCS] [WORKER_MB]      # default 1000000 2048
# Results: BENCHMARKS.md ("dedup cluster step: local vs distributed").
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS="${1:-1000000}"
WORKER_MB="${2:-2048}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
BASE="${BENCH_DIR:-/tmp/loam-bench-dedup}"
WORK="$BASE/corpus-$DOCS"
OUT="$BASE/distributed-$DOCS"
cargo build --release --quiet --features distributed
LOAM="$CARGO_TARGET_DIR/release/loam"
[ -f "$WORK/truth.tsv" ] || python3 bench/dedup/make_corpus.py --docs "$DOCS" --dumps 6 --out "$WORK"
mkdir -p "$OUT"
RUN="$OUT/run"
CFG="$OUT/loam.toml"
{
  printf '[run]\ndir = "%s"\nshards = 4\n' "$RUN"
  for d in $(ls "$WORK/jsonl" | sort); do printf '[[dumps]]\nname = "%s"\ninputs = ["%s"]\n' "$d" "$WORK/jsonl/$d"; done
  # As the 1M local benchmark: lines off (the cluster step's grouping and graph are measured).
  printf '[dedup]\nupstream = "ingest"\nmemory_limit_mb = 1024\n[dedup.lines]\nenabled = false\n'
} > "$CFG"
if [ ! -f "$RUN/dedup/_index/signatures/_done/00003_of_00004" ]; then
  "$LOAM" ingest --config "$CFG" > /dev/null
  "$LOAM" dedup --config "$CFG" --phase signatures > /dev/null
fi

T="/usr/bin/time"
FMT="%e %U %S %M"
# One cluster step; $1 = label, the rest = extra --set flags. Writes $OUT/$label.*.
cluster() {
  local label="$1"; shift
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  "$T" -f "$FMT" -o "$OUT/$label.coord.time" "$LOAM" dedup --config "$CFG" --phase cluster --force \
    "${sets[@]}" > "$OUT/$label.out" 2> "$OUT/$label.log"
  mkdir -p "$OUT/$label.index"
  cp "$RUN"/dedup/_index/cluster/*.decisions "$RUN/dedup/_index/cluster/summary.json" \
     "$RUN/dedup/_index/cluster/_stats/cluster.json" "$OUT/$label.index/"
}

cluster local
for n in 1 2 3; do
  pids=(); urls=()
  for i in $(seq 1 "$n"); do
    "$T" -f "$FMT" -o "$OUT/w$n.$i.time" "$LOAM" worker --listen 127.0.0.1:0 --memory-limit-mb "$WORKER_MB" \
      --spill-dir "$OUT/spill" > "$OUT/w$n.$i.addr" 2> "$OUT/w$n.$i.log" &
    pids+=($!)
  done
  mkdir -p "$OUT/spill"
  for i in $(seq 1 "$n"); do
    until grep -q worker "$OUT/w$n.$i.addr" 2>/dev/null; do sleep 0.2; done
    urls+=("\"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["worker"])' "$OUT/w$n.$i.addr")\"")
  done
  list=$(IFS=,; echo "${urls[*]}")
  cluster "dist$n" 'dedup.engine="distributed"' "dedup.workers=[$list]"
  # SIGINT to each worker (the child of its `time`): a clean exit, so `time` reports it.
  for p in "${pids[@]}"; do pkill -INT -P "$p" || true; done
  wait "${pids[@]}" || true
done

python3 - "$OUT" "$DOCS" <<'EOF'
import json, pathlib, sys, filecmp
out, docs = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def t(p):
    e, u, s, m = p.read_text().split()[-4:]
    return float(e), float(u) + float(s), int(m) / 1024
rows = []
local = out / "local.index"
for label in ["local", "dist1", "dist2", "dist3"]:
    wall, cpu, rss = t(out / f"{label}.coord.time")
    workers = sorted(out.glob(f"w{label[-1]}.*.time")) if label != "local" else []
    wt = [t(w) for w in workers]
    stats = json.loads((out / f"{label}.index" / "cluster.json").read_text())
    same = all(filecmp.cmp(f, out / f"{label}.index" / f.name, shallow=False)
               for f in local.iterdir() if f.suffix == ".decisions" or f.name == "summary.json")
    rows.append(dict(label=label, wall=wall, coord_cpu=cpu, coord_rss=rss,
                     worker_cpu=[round(w[1], 1) for w in wt], worker_rss=[round(w[2]) for w in wt],
                     cpu=cpu + sum(w[1] for w in wt), shuffled=stats.get("shuffled_bytes", 0),
                     rounds=stats.get("iterations", 0), spilled=stats.get("spilled_bytes", 0), same=same))
print(f"cluster step, {docs:,} documents, this machine ({__import__('os').cpu_count()} cores)")
print("| engine | wall s | CPU s (all processes) | coordinator CPU s / peak RSS MB | workers CPU s | workers peak RSS MB | shuffled MB | rounds | spilled MB | decisions = local |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['label']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['coord_cpu']:.1f} / {r['coord_rss']:.0f} | "
          f"{r['worker_cpu']} | {r['worker_rss']} | {r['shuffled'] / 1e6:.1f} | {r['rounds']} | "
          f"{r['spilled'] / 1e6:.1f} | {'yes' if r['same'] else 'NO'} |")
json.dump(rows, open(out / "results.json", "w"), indent=1)
# Projection, on paper: CPU, shuffle and the largest hash-join build side (the one state
# that cannot spill) per document as measured at 3 workers, scaled linearly in documents
# and spread evenly over N workers of 16 cores each, used as fully as here. Not measured:
# network limits, stragglers, more label-propagation rounds on larger graphs.
import re
d3 = rows[-1]
plans = (out / "run/dedup/_index/cluster/_stats/distributed-plans.txt").read_text()
unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
build = max([float(v) * unit[u] for v, u in re.findall(r"build_mem_used=([0-9.]+) ([KMG]?B)", plans)] or [0])
cpu_doc, shuf_doc, build_doc = d3["cpu"] / docs, d3["shuffled"] / docs, build / docs
print(f"\nper document (3 workers): {cpu_doc * 1e6:.1f} µs CPU (local engine: {rows[0]['cpu'] / docs * 1e6:.1f} µs), "
      f"{shuf_doc:.0f} B shuffled, {build_doc:.0f} B in the largest hash-join build side (all workers together)")
print("| documents | workers × 16 cores | documents/hour | CPU-bound wall | shuffled per worker | largest join build side per worker |")
print("|---|---|---|---|---|---|")
for n_docs in (1e9, 1e11):
    for n in (16, 128, 1024):
        rate = n * 16 * 3600 / cpu_doc
        print(f"| {n_docs:.0e} | {n} | {rate:.2e} | {n_docs / rate:.2f} h | {n_docs * shuf_doc / n / 1e9:.0f} GB | "
              f"{n_docs * build_doc / n / 1e9:.1f} GB |")
EOF
