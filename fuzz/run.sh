#!/usr/bin/env bash
# Coverage-guided fuzzing of loam's readers with libFuzzer (libfuzzer-sys) on stable Rust.
# Coverage comes from rustc's own sanitizer-coverage pass (`-Cpasses=sancov-module` plus
# LLVM options, all stable flags); cargo-fuzz is not needed (it wants nightly for
# -Zsanitizer), and no sanitizer runtime is linked: Rust's bounds checks, overflow checks
# and debug assertions are the oracle, with libFuzzer's -rss_limit_mb and -timeout.
#
#   bash fuzz/run.sh smoke                 # every target for SMOKE_S seconds (CI: 10)
#   bash fuzz/run.sh TARGET [RUNS]         # one target for RUNS executions (default 10M)
#   bash fuzz/run.sh all [RUNS]            # every target, one after another
# Targets: warc, http, jsonl, token_shard. Corpora live in $FUZZ_CORPUS (default
# ~/.cache/loam-fuzz-corpus), seeded from real files by fuzz/seeds.py; crashes go to
# fuzz/artifacts/TARGET/ (each one becomes a regression test named after the bug).
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN_TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"  # the loam binary that makes seed shards
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/loam-fuzz-target}"
CORPUS="${FUZZ_CORPUS:-$HOME/.cache/loam-fuzz-corpus}"
TARGETS="warc http jsonl token_shard"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (host artifacts),
# which cannot link the coverage hooks.
HOST="$(rustc -vV | sed -n 's/^host: //p')"
(cd fuzz && cargo build --release --locked --bins -q --target "$HOST")
BIN="$CARGO_TARGET_DIR/$HOST/release"
if [ ! -d "$CORPUS/warc" ]; then
  # Real token shards for the shard target's seeds: the demo run's (built if missing).
  shards="${SHARDS_DIR:-runs/demo/tokenize}"
  if [ ! -d "$shards" ]; then
    mkdir -p "$CORPUS"
    env -u RUSTFLAGS CARGO_TARGET_DIR="$MAIN_TARGET" \
      cargo run -q --locked --bin loam -- run configs/demo.toml --until tokenize --run-dir "$CORPUS/demo-run" \
      > /dev/null 2> "$CORPUS/demo-run.log" || { tail -20 "$CORPUS/demo-run.log"; exit 1; }
    shards="$CORPUS/demo-run/tokenize"
  fi
  python3 fuzz/seeds.py "$CORPUS" "$shards"
fi
run_one() {  # target, extra libFuzzer flags...
  local t=$1; shift
  local log="$CORPUS/$t.log" rc
  mkdir -p "fuzz/artifacts/$t" "$CORPUS/$t"
  set +e
  "$BIN/$t" "$CORPUS/$t" -artifact_prefix="fuzz/artifacts/$t/" \
    -rss_limit_mb=256 -malloc_limit_mb=256 -timeout=10 -max_len=65536 -print_final_stats=1 "$@" > "$log" 2>&1
  rc=$?
  set -e
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|stat::slowest_unit_time_sec)" "$log" || true
  [ "$rc" = 0 ] || { echo "$t: libFuzzer exited $rc (a crash, hang or OOM); its log: $log"; tail -40 "$log"; }
  return "$rc"
}
case "${1:-smoke}" in
  smoke)
    for t in $TARGETS; do echo "== $t (${SMOKE_S:-10} s)"; run_one "$t" -max_total_time="${SMOKE_S:-10}"; done ;;
  all)
    for t in $TARGETS; do echo "== $t"; run_one "$t" -runs="${2:-10000000}"; done ;;
  *)
    run_one "$1" -runs="${2:-10000000}" ;;
esac
