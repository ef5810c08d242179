#!/usr/bin/env bash
# loam's quality classifier beside the Python reference tools, one run, same data and args:
#  1. training: `loam quality train` vs fastText's Python `train_supervised` (fasttext-numpy2-wheel
#     0.9.2) on the same training file — held-out ROC-AUC, model bytes, seconds;
#  2. scoring: `loam quality --phase score` vs datatrove 0.10.1's FastTextClassifierFilter on the
#     same documents and the same model — documents per second on one core.
#     bash bench/quality.sh [SCORING_DOCS]     (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
WORK="${BENCH_DIR:-/tmp/loam-bench-quality}"
mkdir -p "$WORK"
cargo build --release --quiet
VENV="${DATATROVE_VENV:-$WORK/dt-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'datatrove[io,processing]==0.10.1' 'fasttext-numpy2-wheel==0.9.2' pyarrow >&2
fi
"$VENV/bin/python" bench/quality/run.py "$CARGO_TARGET_DIR/release/loam" "$WORK" "${1:-20000}"
