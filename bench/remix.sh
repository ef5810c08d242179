#!/usr/bin/env bash
# loam remix on the multi-domain real-text corpus (tests/py/make_remix_corpus.py, repeated to
# ~1M documents) beside datatrove 0.10.1's SamplerFilter downsampling the same documents:
# documents/s on one core and peak RSS per step, the plan step's time (totals from the
# assign files alone), and whether each tool's sample changes with the sharding.
#     bash bench/remix.sh [COPIES]      (default 53: 1,007,424 documents)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
WORK="${BENCH_DIR:-/tmp/loam-bench-remix}"
COPIES="${1:-53}"
mkdir -p "$WORK"
cargo build --release --quiet
VENV="${DATATROVE_VENV:-/tmp/loam-bench-quality/dt-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'datatrove[io,processing]==0.10.1' pyarrow >&2
fi
[ -f "$WORK/corpus-$COPIES/blocklist.txt" ] || python3 tests/py/make_remix_corpus.py ../shared/data "$WORK/corpus-$COPIES" 50000 "$COPIES" >&2
python3 bench/remix/run.py "$CARGO_TARGET_DIR/release/loam" "$WORK" "$COPIES" "$VENV/bin/python"
