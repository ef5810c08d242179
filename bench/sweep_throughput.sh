#!/usr/bin/env bash
# How a sweep should use this machine: tokens/s of one training run with 2 compute threads
# vs two concurrent 1-thread runs (what `loam sweep` does with threads_per_run = 1), and the
# same with Burn's `x86-v4` feature (gemm's AVX-512 kernels, runtime-dispatched). Same
# model, batch and token shards (bench/sweep.sh's low-quality run must exist).
# usage: bash bench/sweep_throughput.sh [STEPS]        results: $WORK/throughput.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
STEPS="${1:-60}"
WORK="${BENCH_WORK:-/tmp/loam-bench-sweep}"
RUN="$WORK/low"
[ -d "$RUN/tokenize" ] || { echo "run bench/sweep.sh first (it builds $RUN)" >&2; exit 1; }
cargo build --release --locked --bin loam
cp "$CARGO_TARGET_DIR/release/loam" "$WORK/loam-portable"
cargo build --release --locked --bin loam --features x86-v4
cp "$CARGO_TARGET_DIR/release/loam" "$WORK/loam-x86-v4"
cargo build --release --locked --bin loam   # leave the portable build in place
# A mid-grid sweep model: 2 layers × 64 at l_seq 128, 16 sequences per step.
ARGS=(--set train.model.n_layer=2 --set train.model.d_model=64 --set train.model.n_heads=2
      --set train.model.n_kv_heads=2 --set train.model.seq_len=128 --set train.micro_batch=16
      --set train.tokens=$((STEPS * 16 * 128)) --set train.eval_every=0 --set train.checkpoint_every=0
      --set train.eval_windows=4)
for r in a b; do rm -rf "$WORK/tp-$r"; cp -a "$RUN" "$WORK/tp-$r"; rm -rf "$WORK/tp-$r/train" "$WORK/tp-$r/sweep"; done
median() { python3 -c 'import json,statistics,sys; m=[json.loads(l) for l in open(sys.argv[1])][5:]; print(statistics.median(x["tokens_per_s"] for x in m))' "$1"; }
: > "$WORK/throughput.jsonl"
for bin in portable x86-v4; do
  L="$WORK/loam-$bin"
  RAYON_NUM_THREADS=2 "$L" train --run "$WORK/tp-a" "${ARGS[@]}" >/dev/null 2>&1
  one=$(median "$WORK/tp-a/train/metrics.jsonl")
  rm -rf "$WORK/tp-a/train"
  RAYON_NUM_THREADS=1 taskset -c 0 "$L" train --run "$WORK/tp-a" "${ARGS[@]}" >/dev/null 2>&1 &
  RAYON_NUM_THREADS=1 taskset -c 1 "$L" train --run "$WORK/tp-b" "${ARGS[@]}" >/dev/null 2>&1 &
  wait
  a=$(median "$WORK/tp-a/train/metrics.jsonl") b=$(median "$WORK/tp-b/train/metrics.jsonl")
  rm -rf "$WORK/tp-a/train" "$WORK/tp-b/train"
  RAYON_NUM_THREADS=1 taskset -c 0 "$L" train --run "$WORK/tp-a" "${ARGS[@]}" >/dev/null 2>&1
  solo=$(median "$WORK/tp-a/train/metrics.jsonl")
  rm -rf "$WORK/tp-a/train"
  python3 -c 'import json,sys; b,one,a,c,solo=sys.argv[1],*map(float,sys.argv[2:]); print(json.dumps({"build": b, "one_run_2_threads": one, "two_runs_1_thread_each": a + c, "per_run": [a, c], "one_run_1_thread_alone": solo, "concurrent_over_2_threads": (a + c) / one}))' \
    "$bin" "$one" "$a" "$b" "$solo" >> "$WORK/throughput.jsonl"
done
python3 - "$WORK/throughput.jsonl" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
print("%-9s %16s %20s %14s %10s" % ("build", "1 run × 2 thr", "2 runs × 1 thr (sum)", "1 run × 1 thr", "ratio"))
for x in r:
    print("%-9s %16.0f %20.0f %14.0f %10.2f" % (x["build"], x["one_run_2_threads"], x["two_runs_1_thread_each"], x["one_run_1_thread_alone"], x["concurrent_over_2_threads"]))
print("x86-v4 / portable, 2 concurrent runs: %.3f" % (r[1]["two_runs_1_thread_each"] / r[0]["two_runs_1_thread_each"]))
PY
