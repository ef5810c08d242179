#!/usr/bin/env bash
# SIGKILL at seeded random moments, TRIALS per stage (tests/kill_random.rs): each trial kills
# `loam run --until STAGE` after a random delay within the stage's measured duration, reruns
# it, and requires byte-identical output and a balanced ledger. Prints one line per trial
# and a summary per stage. CI runs the same test with 1 trial per stage.
#   bash bench/kill.sh                       # TRIALS=20 SEED=7, every stage
#   STAGES=score,train bash bench/kill.sh    # only those stages (same delays as a full run)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
start=$(date +%s)
LOAM_KILL_TRIALS="${TRIALS:-20}" LOAM_KILL_SEED="${SEED:-7}" LOAM_KILL_STAGES="${STAGES:-}" \
  cargo test --locked --test kill_random -- --nocapture 2>&1 | grep -E "^kill |trials|test result|panicked|differs"
echo "wall: $(( $(date +%s) - start )) s"
