#!/usr/bin/env bash
# loam's dedup beside datatrove 0.10.1 (4-stage MinHash, FineWeb config) and text-dedup
# 0.4.0 (MinHash) on one labelled corpus built from real text with planted duplicates:
# precision / recall / F1 against the planted truth, CPU per document, peak RSS.
#   bash bench/dedup.sh 20000            # all three tools
#   TOOLS=loam MEMORY_MB=256 bash bench/dedup.sh 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS="${1:-20000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
WORK="${BENCH_DIR:-/tmp/loam-bench-dedup}/corpus-$DOCS"
TOOLS="${TOOLS:-loam,datatrove,text-dedup}"
cargo build --release --quiet
[ -f "$WORK/truth.tsv" ] || python3 bench/dedup/make_corpus.py --docs "$DOCS" --dumps 6 --out "$WORK"
DT="${DATATROVE_VENV:-${BENCH_DIR:-/tmp/loam-bench-dedup}/dt-venv}"
TD="${TEXTDEDUP_VENV:-${BENCH_DIR:-/tmp/loam-bench-dedup}/td-venv}"
if [[ "$TOOLS" == *datatrove* && ! -x "$DT/bin/python" ]]; then
  python3 -m venv "$DT" && "$DT/bin/pip" install --quiet 'datatrove[io,processing]==0.10.1' spacy >&2
fi
if [[ "$TOOLS" == *text-dedup* && ! -x "$TD/bin/python" ]]; then
  python3 -m venv "$TD" && "$TD/bin/pip" install --quiet text-dedup==0.4.0 >&2
fi
python3 bench/dedup/run.py --loam "$CARGO_TARGET_DIR/release/loam" --work "$WORK" --tools "$TOOLS" \
  --dt-python "$DT/bin/python" --td-python "$TD/bin/python" --memory-mb "${MEMORY_MB:-1024}"
