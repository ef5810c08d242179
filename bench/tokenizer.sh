#!/usr/bin/env bash
# Tokenizer benchmark, one run, one core (taskset -c 0, RAYON_NUM_THREADS=1), the same ~42 MB
# of distinct real text for every tool (bench/tokenizer/make_corpus.py):
#   encode: loam (fast path; and the tokenizers crate path it replaces) vs Python
#           `tokenizers` encode_batch_fast vs tiktoken built from the same ranks; every
#           document's ids compared with loam's;
#   train:  `loam tokenizer train` vs the Python trainer, same files and settings; merges compared.
# usage: bash bench/tokenizer.sh [VOCAB]    (default 32000; results in $WORK/results.json)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
VOCAB="${1:-32000}"
SHARED="${LOAM_SHARED_DATA:-../shared/data}"
WORK="${BENCH_WORK:-/tmp/loam-bench-tokenizer}"
VENV="${BENCH_VENV:-$HOME/.cache/loam-bench-tokenizer-venv}"
DS="$SHARED/tokenizers/deepseek-llm/tokenizer.json"
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'tokenizers==0.22.2' 'tiktoken==0.14.0'
fi
PY="$VENV/bin/python"

cargo build --release --locked --bin loam
cargo bench -p loam-tokenize --bench encode --locked --no-run 2>&1 | tail -1
BENCH=$(ls -t "$CARGO_TARGET_DIR"/release/deps/encode-* | grep -v '\.d$' | head -1)
[ -f "$WORK/corpus.jsonl" ] || "$PY" bench/tokenizer/make_corpus.py "$SHARED" "$WORK"

one() { RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false taskset -c 0 "$@"; }
# Peak RSS and CPU seconds of a command, via GNU time, appended to its JSON line.
measure() {
  local out; out=$(mktemp)
  one /usr/bin/time -f '%M %U %S' -o "$out.time" "$@" > "$out"
  read -r rss user sys < "$out.time"
  "$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); d["peak_rss_mb"]=int(sys.argv[2])/1024; d["cpu_s"]=float(sys.argv[3])+float(sys.argv[4]); print(json.dumps(d))' "$out" "$rss" "$user" "$sys"
  rm -f "$out" "$out.time"
}

{
  measure "$BENCH" "$DS" "$WORK/corpus.jsonl" "$WORK/ids.loam"
  LOAM_BENCH_REFERENCE=1 measure "$BENCH" "$DS" "$WORK/corpus.jsonl" "$WORK/ids.crate"
  measure "$PY" bench/tokenizer/encode_py.py tokenizers "$DS" "$WORK/corpus.jsonl" "$WORK/ids.tokenizers"
  measure "$PY" bench/tokenizer/encode_py.py tiktoken "$DS" "$WORK/corpus.jsonl" "$WORK/ids.tiktoken"
} > "$WORK/encode.jsonl"

rm -rf "$WORK/loam-tok"
TRAIN_ARGS=()
for f in "$WORK"/train/*.txt; do TRAIN_ARGS+=(--input "$f"); done
{
  measure "$CARGO_TARGET_DIR/release/loam" tokenizer train --threads 1 --out "$WORK/loam-tok" \
    --set "tokenizer.bpe.vocab_size=$VOCAB" --set tokenizer.bpe.reserved_special=0 "${TRAIN_ARGS[@]}"
  measure "$PY" bench/tokenizer/train_py.py "$DS" "$VOCAB" "$WORK/py-tok.json" "$WORK"/train/*.txt
} > "$WORK/train.jsonl"

"$PY" - "$WORK" <<'PYEOF'
import json, sys
w = sys.argv[1]
enc = [json.loads(l) for l in open(w + "/encode.jsonl")]
tr = [json.loads(l) for l in open(w + "/train.jsonl")]
ids = {t: open("%s/ids.%s" % (w, t)).read().splitlines() for t in ["loam", "crate", "tokenizers", "tiktoken"]}
for e, t in zip(enc, ["loam", "crate", "tokenizers", "tiktoken"]):
    e["docs_with_ids_differing_from_loam"] = sum(a != b for a, b in zip(ids["loam"], ids[t]))
loam = enc[0]["mb_per_s"]
for e in enc:
    e["loam_speedup"] = loam / e["mb_per_s"]
ours = json.load(open(w + "/loam-tok/tokenizer.json"))["model"]
theirs = json.load(open(w + "/py-tok.json"))["model"]
res = {"encode": enc, "train": tr,
       "train_time_ratio_loam_over_python": tr[0]["seconds"] / tr[1]["seconds"],
       "same_merges": ours["merges"] == theirs["merges"], "same_vocab": ours["vocab"] == theirs["vocab"],
       "merges": len(ours["merges"])}
json.dump(res, open(w + "/results.json", "w"), indent=1)
print("%-34s %9s %9s %11s %9s %11s" % ("encode (1 core)", "MB/s", "loam is", "ids differ", "RSS MB", "tokens"))
for e in enc:
    print("%-34s %9.2f %8.1fx %11d %9.0f %11d" % (e["tool"], e["mb_per_s"], e["loam_speedup"], e["docs_with_ids_differing_from_loam"], e["peak_rss_mb"], e["tokens"]))
print("train %d merges: loam %.1f s, python %.1f s (ratio %.3f), same merges: %s, same vocab: %s" % (
    res["merges"], tr[0]["seconds"], tr[1]["seconds"], res["train_time_ratio_loam_over_python"], res["same_merges"], res["same_vocab"]))
PYEOF
