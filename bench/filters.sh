#!/usr/bin/env bash
# loam's filter rules beside datatrove 0.10.1 on the same English documents:
# decision agreement, disagreement classes, CPU per document.   bash bench/filters.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
WORK="${BENCH_DIR:-/tmp/loam-bench-filters}"
mkdir -p "$WORK"
cargo build --release --quiet
cargo build --release --quiet -p loam-quality --example rules
VENV="${DATATROVE_VENV:-$WORK/dt-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  # datatrove runs offline; spaCy's blank English tokenizer needs no model download.
  "$VENV/bin/pip" install --quiet 'datatrove[io,processing]==0.10.1' spacy pyarrow >&2
fi
"$VENV/bin/python" bench/filters.py "$CARGO_TARGET_DIR/release/loam" "$CARGO_TARGET_DIR/release/examples/rules" "$WORK"
