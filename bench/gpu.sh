#!/usr/bin/env bash
# One prepared GPU check (~8 minutes on an H200), run from the repo root on the device
# machine with the CUDA binary carried there:
#   CUDARC_CUDA_VERSION=13000 CARGO_TARGET_DIR=~/.cache/loam-target-cuda \
#     cargo build --release --locked --features cuda --bin loam    # here, then strip and carry
#   bash bench/gpu.sh PATH/TO/loam                                   # there; results under $OUT
# Steps: nvidia-smi and nvcc first (NVRTC newer than the driver breaks PTX loading); the demo
# pipeline to token shards (CPU parts of the same binary); the tiny model on CUDA (loss falls,
# first-step time, steady tokens/s); a ~125M model (12 layers × 768, l_seq 1024) f32 for
# STEPS_125M steps with tokens/s, MFU against 790 TFLOP/s (bf16 dense, measured) and against
# the f32 peak, and GPU memory sampled with the step it was taken at (burn#4792); then a small
# real sweep (3 budgets × 5 models) whose fit.json lands under $OUT. loam trains in f32 only:
# there is no bf16 path (Burn 0.21 has no autocast), so none is timed.
# GPU_DRY_RUN=1 runs the same steps on CPU at toy sizes (a check of the script, not a measure).
set -uo pipefail
LOAM="${1:-./loam}"
OUT="${OUT:-/tmp/loam-gpu}"
DRY="${GPU_DRY_RUN:-0}"
STEPS_125M="${STEPS_125M:-200}"
# Each phase has a wall-clock cap so one slow phase cannot eat the whole lease; a capped
# phase logs "timed out" and the script goes on.
TINY_S="${TINY_S:-150}"; M125_S="${M125_S:-240}"; SWEEP_S="${SWEEP_S:-200}"; SWEEP_JOBS="${SWEEP_JOBS:-3}"
mkdir -p "$OUT"
if [ -x /usr/bin/time ]; then TIMEV="/usr/bin/time -v"; else TIMEV=""; fi
log() { echo "== $*" | tee -a "$OUT/gpu.log"; }
export CUDA_PATH="${CUDA_PATH:-/usr/local/cuda}"
export LD_LIBRARY_PATH="$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}"
log "$(date -u +%FT%TZ) loam $("$LOAM" --version 2>&1)"
if [ "$DRY" = 0 ]; then
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; cat "$OUT/nvidia-smi.txt" | head -20 | tee -a "$OUT/gpu.log"
  { command -v nvcc && nvcc --version || ls "$CUDA_PATH"/lib64/libnvrtc* ; } 2>&1 | tee -a "$OUT/gpu.log"
fi
sample_mem() {  # every second: seconds, MiB used, the step the run is at
  local dir=$1
  while sleep 1; do
    local step; step=$(wc -l < "$dir/train/metrics.jsonl" 2>/dev/null || echo 0)
    if [ "$DRY" = 0 ]; then
      echo "$(date +%s.%N) $(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1) $step"
    else
      echo "$(date +%s.%N) $(ps -o rss= -C loam | sort -n | tail -1) $step"
    fi
  done
}
summary() {  # first-step seconds, median tokens/s after step 5, first/last loss, MFU
  python3 - "$1" "$2" <<'PY'
import json, statistics, sys
m = [json.loads(l) for l in open(sys.argv[1] + "/train/metrics.jsonl")]
steady = m[5:] or m
out = {"what": sys.argv[2], "steps": len(m), "first_step_tokens_per_s": m[0]["tokens_per_s"],
       "tokens_per_s": statistics.median(x["tokens_per_s"] for x in steady),
       "mfu_vs_790tflops": statistics.median(x["mfu"] for x in steady),
       "first_loss": m[0]["loss"], "last_loss": m[-1]["loss"],
       "val_bpb": [x["val_bpb"] for x in m if x.get("val_bpb") is not None][-1:]}
print(json.dumps(out))
PY
}
log "demo pipeline to token shards"
"$LOAM" run configs/demo.toml --until tokenize --run-dir "$OUT/demo" > "$OUT/demo.json" 2> "$OUT/demo.log" || { log "pipeline failed"; tail -20 "$OUT/demo.log"; exit 1; }

if [ "$DRY" = 0 ]; then TINY_STEPS=300; else TINY_STEPS=20; fi
log "tiny model on the device: $TINY_STEPS steps"
timeout "$TINY_S" "$LOAM" train --run "$OUT/demo" --set train.from_score=false --set train.model.n_layer=2 --set train.model.d_model=64 \
  --set train.model.n_heads=4 --set train.model.n_kv_heads=2 --set train.micro_batch=16 \
  --set train.tokens=$((TINY_STEPS * 16 * 64)) --set train.eval_every=100 --set train.checkpoint_every=0 \
  --set train.peak_flops=7.9e14 > "$OUT/tiny.json" 2> "$OUT/tiny.log" || { log "tiny failed or timed out ($?)"; tail -30 "$OUT/tiny.log" | tee -a "$OUT/gpu.log"; }
# A capped run still reports the steps it made.
[ -s "$OUT/demo/train/metrics.jsonl" ] && summary "$OUT/demo" tiny | tee -a "$OUT/results.jsonl"
cp "$OUT/demo/train/metrics.jsonl" "$OUT/tiny.metrics.jsonl" 2>/dev/null; rm -rf "$OUT/demo/train"

if [ "$DRY" = 0 ]; then L=12 D=768 H=12 KV=12 SEQ=1024 B=16 S=$STEPS_125M; else L=2 D=128 H=2 KV=2 SEQ=128 B=2 S=12; fi
log "~125M model: $L layers × $D, l_seq $SEQ, $B sequences/step, $S steps (f32)"
sample_mem "$OUT/demo" > "$OUT/memory.txt" & SAMPLER=$!
timeout "$M125_S" $TIMEV "$LOAM" train --run "$OUT/demo" --set train.from_score=false --set train.model.n_layer=$L --set train.model.d_model=$D \
  --set train.model.n_heads=$H --set train.model.n_kv_heads=$KV --set train.model.seq_len=$SEQ \
  --set train.micro_batch=$B --set train.tokens=$((S * B * SEQ)) --set train.eval_every=0 \
  --set train.checkpoint_every=0 --set train.eval_windows=4 --set train.peak_flops=7.9e14 \
  --set train.schedule.peak_lr=3e-4 --set train.schedule.warmup_steps=20 \
  > "$OUT/m125.json" 2> "$OUT/m125.log"
rc=$?; kill $SAMPLER 2>/dev/null
[ $rc = 0 ] || { log "125M failed or timed out ($rc)"; tail -30 "$OUT/m125.log" | tee -a "$OUT/gpu.log"; }
if [ -s "$OUT/demo/train/metrics.jsonl" ]; then
  summary "$OUT/demo" m125 | tee -a "$OUT/results.jsonl"
  python3 - "$OUT" <<'PY' | tee -a "$OUT/results.jsonl"
import json, sys
o = sys.argv[1]
rows = [l.split() for l in open(o + "/memory.txt") if len(l.split()) == 3]
at = {}
for t, mem, step in rows:
    for want in (10, 100, 200):
        if int(step) >= want and want not in at:
            at[want] = float(mem)
r = [json.loads(l) for l in open(o + "/results.jsonl")][-1]
# f32 non-tensor peak of an H200 SXM: 67 TFLOP/s (NVIDIA's datasheet).
print(json.dumps({"what": "m125_memory_and_f32_mfu", "memory_mib_at_step": at,
                  "mfu_vs_f32_peak": r["mfu_vs_790tflops"] * 790 / 67}))
PY
  cp "$OUT/demo/train/metrics.jsonl" "$OUT/m125.metrics.jsonl"
fi
rm -rf "$OUT/demo/train"

if [ "$DRY" = 0 ]; then BUD="[1e11, 3e11, 1e12]" PER=5; else BUD="[5e9, 1e10, 2e10]" PER=3; fi
log "small real sweep: $BUD × $PER models on the demo's tokens"
"$LOAM" run configs/demo.toml --until score --run-dir "$OUT/demo" > /dev/null 2>> "$OUT/demo.log"
start=$(date +%s); timeout "$SWEEP_S" "$LOAM" sweep --config configs/demo.toml --set "run.dir=$OUT/demo" \
  --set "sweep.budgets=$BUD" --set sweep.per_budget=$PER --set sweep.jobs=$SWEEP_JOBS --set sweep.seq_len=64 \
  > "$OUT/sweep.json" 2> "$OUT/sweep.log" || log "sweep failed or timed out ($?)"
log "sweep: $(( $(date +%s) - start )) s wall"
tail -12 "$OUT/sweep.log" | tee -a "$OUT/gpu.log"
cp "$OUT/demo/sweep/fit.json" "$OUT/sweep.fit.json" 2>/dev/null
log "done $(date -u +%FT%TZ)"
