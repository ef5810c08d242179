#!/usr/bin/env bash
# Trainer throughput on CPU, one run: loam (Burn 0.21 Flex, release) vs PyTorch (pip wheel)
# on the same model (LLaMA: RMSNorm, GQA + RoPE, SwiGLU, untied head), batch, sequence
# length, thread count and token shards (the demo corpus, encoded by loam's demo tokenizer).
# Both do a full step: forward, cross-entropy, backward, global-norm clip, AdamW.
# usage: bash bench/train.sh [STEPS]        results: $WORK/results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
STEPS="${1:-20}"
WORK="${BENCH_WORK:-/tmp/loam-bench-train}"
VENV="${BENCH_VENV:-$HOME/.cache/loam-bench-train-venv}"
L=4 D=256 H=8 KV=4 SEQ=256 B=8
mkdir -p "$WORK"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'torch==2.9.1' numpy
fi
cargo build --release --locked --bin loam
LOAM="$CARGO_TARGET_DIR/release/loam"
[ -f "$WORK/run/tokenize/summary.json" ] || "$LOAM" run configs/demo.toml --until tokenize --run-dir "$WORK/run" >/dev/null
SHARD=$(ls "$WORK"/run/tokenize/*.tokens | head -1)

: > "$WORK/results.jsonl"
for T in 1 2; do
  CPUS=$(seq -s, 0 $((T - 1)))
  rm -rf "$WORK/run/train"
  /usr/bin/time -f '%M' -o "$WORK/rss" env RAYON_NUM_THREADS=$T taskset -c "$CPUS" "$LOAM" train --run "$WORK/run" \
    --set train.model.n_layer=$L --set train.model.d_model=$D --set train.model.n_heads=$H \
    --set train.model.n_kv_heads=$KV --set train.model.seq_len=$SEQ --set train.micro_batch=$B \
    --set train.tokens=$((STEPS * B * SEQ)) --set train.eval_every=0 --set train.checkpoint_every=0 \
    --set train.eval_windows=8 >/dev/null 2>&1
  python3 - "$WORK" "$T" "$(cat "$WORK/rss")" <<'PY' >> "$WORK/results.jsonl"
import json, statistics, sys
w, t, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = [json.loads(l) for l in open(w + "/run/train/metrics.jsonl")]
print(json.dumps({"tool": "loam (burn 0.21 flex)", "threads": t, "tokens_per_s": statistics.median(x["tokens_per_s"] for x in m[3:]),
                  "first_loss": m[0]["loss"], "last_loss": m[-1]["loss"], "steps": len(m), "peak_rss_mb": rss / 1024}))
PY
  /usr/bin/time -f '%M' -o "$WORK/rss" taskset -c "$CPUS" "$VENV/bin/python" bench/train/torch_llama.py "$SHARD" $L $D $H $KV $SEQ $B "$STEPS" $T > "$WORK/torch.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["peak_rss_mb"]=int(open(sys.argv[2]).read())/1024; print(json.dumps(d))' "$WORK/torch.json" "$WORK/rss" >> "$WORK/results.jsonl"
done
python3 - "$WORK" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1] + "/results.jsonl")]
print("%-24s %7s %12s %10s %9s" % ("tool", "threads", "tokens/s", "loss", "RSS MB"))
for x in r:
    print("%-24s %7d %12.0f %10.3f %9.0f" % (x["tool"], x["threads"], x["tokens_per_s"], x["last_loss"], x["peak_rss_mb"]))
for t in (1, 2):
    a = [x for x in r if x["threads"] == t]
    print("threads %d: loam / pytorch = %.3f" % (t, a[0]["tokens_per_s"] / a[1]["tokens_per_s"]))
PY
