#!/usr/bin/env bash
# `.ci/run` cold: a fresh clone of HEAD with every cache it relies on pointed at an empty
# folder — the cargo target dirs (tests and the instrumented fuzz build), the cargo registry
# (CARGO_HOME), the Airflow venv, and the Python packages (a bare venv first on PATH, pip's
# download cache off) — so crates, wheels and builds all come from the registries as on a
# fresh machine. steps.log times each step. What it cannot undo: apt packages
# already installed (Chromium and its fonts: about 25 s to reinstall here) and the Rust
# toolchain itself.
#   bash bench/ci_cold.sh [SCRATCH]     # default /tmp/loam-ci-cold; prints the wall time
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
scratch="${1:-/tmp/loam-ci-cold}"
rm -rf "$scratch"
mkdir -p "$scratch"
# The clone sits beside the checkout so that ../shared/data resolves as CI's does.
clone="$(dirname "$repo")/ci-cold"
rm -rf "$clone"
git clone -q "$repo" "$clone"
python3 -m venv "$scratch/py"
start=$(date +%s)
set +e
env PATH="$scratch/py/bin:$PATH" PIP_NO_CACHE_DIR=1 \
  CARGO_HOME="$scratch/cargo-home" CARGO_TARGET_DIR="$scratch/target" \
  FUZZ_TARGET_DIR="$scratch/fuzz-target" LOAM_AIRFLOW_VENV="$scratch/airflow" \
  bash -x "$clone/.ci/run" > "$scratch/ci.log" 2>&1 &
ci=$!
# Bash ignores PS4 from the environment when run as root, so the steps are timed here: the
# last command traced, every 10 s.
while kill -0 "$ci" 2>/dev/null; do
  echo "$(( $(date +%s) - start )) s: $(grep -v '^++' "$scratch/ci.log" | grep '^+ ' | tail -1 | cut -c1-120)"
  sleep 10
done | uniq -f2 > "$scratch/steps.log"
wait "$ci"
rc=$?
set -e
echo "cold .ci/run of $(git -C "$repo" rev-parse --short HEAD): exit $rc, $(( $(date +%s) - start )) s; log $scratch/ci.log"
exit "$rc"
