#!/usr/bin/env bash
# Ingest throughput, single core: WET pass-through and WARC with HTML main-text
# extraction, on a corpus generated from real text by bench/gen_corpus.py.
#
#   bash bench/ingest.sh [PAGES_PER_DUMP]      (default 20000; 3 dumps)
#
# Prints documents/s and MB/s (decompressed record bytes, and compressed file bytes) per
# core, CPU seconds and peak RSS, from `loam ingest --threads 1 --of 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
PAGES="${1:-20000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
WORK="${BENCH_DIR:-/tmp/loam-bench-ingest}"
mkdir -p "$WORK"
CORPUS="$WORK/corpus-$PAGES"
if [ ! -d "$CORPUS" ]; then
  python3 bench/gen_corpus.py --out "$CORPUS" --pages "$PAGES" --poems 10 --records-per-file 5000 >&2
fi
cargo build --release --quiet
LOAM="$CARGO_TARGET_DIR/release/loam"

measure() {  # name, glob
  local name=$1 pattern=$2 out="$WORK/run-$name"
  rm -rf "$out"
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/time-$name" \
    "$LOAM" ingest --input "$pattern" --out "$out" --threads 1 >/dev/null 2>"$WORK/log-$name"
  read -r wall user sys rss_kb < "$WORK/time-$name"
  python3 - "$name" "$out" "$wall" "$user" "$sys" "$rss_kb" <<'PY'
import json, sys, glob
name, out, wall, user, sys_, rss = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
st = [json.load(open(f)) for f in glob.glob(out + "/ingest/stats/*.json")]
kept = sum(s["kept"] for s in st); docs_in = sum(s["docs_in"] for s in st)
raw = sum(s["bytes_in"] for s in st); comp = sum(s["counters"].get("input_file_bytes", 0) for s in st)
cpu = user + sys_
print(f"{name:5} records {docs_in:>8}  docs kept {kept:>7}  cpu {cpu:7.2f}s  wall {wall:7.2f}s  "
      f"{kept / cpu:9.0f} docs/s/core  {raw / 1e6 / cpu:6.1f} MB/s/core (records)  "
      f"{comp / 1e6 / cpu:6.1f} MB/s/core (gz files)  peak RSS {rss / 1024:6.0f} MB")
PY
}
echo "corpus: $CORPUS ($PAGES pages per dump, 3 dumps); $(nproc) cores, loam --threads 1"
measure wet "$CORPUS/*/wet/*.warc.wet.gz"
measure warc "$CORPUS/*/warc/*.warc.gz"
