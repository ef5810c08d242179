#!/usr/bin/env bash
# The cluster step's band-bucket grouping: loam's external sort vs DataFusion 55.2 (sort
# plan and group-by plan) on the same records and memory limit. Needs a finished loam
# dedup run (its signature tables).
#   bash bench/dedup/grouping.sh RUN_DIR [BUDGET_MB]
set -euo pipefail
cd "$(dirname "$0")"
RUN="$1"; BUDGET="${2:-128}"
export CARGO_TARGET_DIR="${GROUPING_TARGET_DIR:-$HOME/.cache/loam-grouping-target}"
(cd grouping && cargo build --release --quiet)
BIN="$CARGO_TARGET_DIR/release/grouping-bench"
WORK="${BENCH_DIR:-/tmp/loam-bench-dedup}/grouping"
mkdir -p "$WORK"
"$BIN" extract "$RUN/dedup/_index/signatures" "$WORK/records.parquet"
for mode in loam df-sort df-groupby; do
  rm -rf "$WORK/tmp-$mode"
  /usr/bin/time -f "$mode: %e s wall, %U s user, %S s sys, %M KB peak RSS" \
    "$BIN" "$mode" "$WORK/records.parquet" "$BUDGET" "$WORK/tmp-$mode" 2>&1 || echo "$mode: failed"
done
