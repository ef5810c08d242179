#!/usr/bin/env bash
# Ingest throughput, single core: WET pass-through and WARC with HTML main-text
# extraction, on a corpus generated from real text by bench/gen_corpus.py.
#
#   bash bench/ingest.sh [PAGES_PER_DUMP]      (default 20000; 3 dumps)
#
# Prints documents/s and MB/s (decompressed record bytes, and compressed file bytes) per
# core, CPU seconds and peak RSS, from `loam ingest --threads 1 --of 1`; then the same
# files through datatrove 0.10.1 (WarcReader; + Trafilatura for WARC, FineWeb's setting),
# installed here in a venv, and the CPU ratio. Set PEER=0 to skip the peer.
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
  local name=$1 pattern=$2
  local out="$WORK/run-$name"
  rm -rf "$out"
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/time-$name" \
    "$LOAM" ingest --input "$pattern" --out "$out" --threads 1 >/dev/null 2>"$WORK/log-$name"
  read -r wall user sys rss_kb < "$WORK/time-$name"
  python3 - "$name" "$out" "$wall" "$user" "$sys" "$rss_kb" <<'PY'
import json, sys, glob
name, out, wall, user, sys_, rss = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
st = [json.load(open(f)) for f in glob.glob(out + "/ingest/_stats/*.json")]
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

[ "${PEER:-1}" = 1 ] || exit 0
VENV="$WORK/dt-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'datatrove[io,processing]==0.10.1' lxml_html_clean >&2
fi
ONE="SIM-2024-10/warc/SIM-2024-10-00000.warc.gz"   # one file for the slow peer
cpu_of() { read -r _ u s _ < "$1"; python3 -c "print($u + $s)"; }
peer() {  # name, glob  -> prints docs and CPU seconds (children included: the extractor runs in a subprocess)
  (cd "$CORPUS" && /usr/bin/time -f '%e %U %S %M' -o "$WORK/time-dt-$1" "$VENV/bin/python" "$OLDPWD/bench/ingest_datatrove.py" "$1" . "$2" 2>/dev/null)
}
echo "--- datatrove 0.10.1 on the same files ---"
wet_docs=$(peer wet "*/wet/*.warc.wet.gz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["docs"])')
wet_dt=$(cpu_of "$WORK/time-dt-wet"); wet_loam=$(cpu_of "$WORK/time-wet")
echo "wet   datatrove docs $wet_docs cpu ${wet_dt}s | loam cpu ${wet_loam}s | loam uses $(python3 -c "print(f'{$wet_dt / $wet_loam:.1f}')")x less CPU"
rm -rf "$WORK/run-one"
/usr/bin/time -f '%e %U %S %M' -o "$WORK/time-one" "$LOAM" ingest --input "$CORPUS/$ONE" --out "$WORK/run-one" --threads 1 >/dev/null 2>&1
one_kept=$(python3 -c "import json,glob; print(sum(json.load(open(f))['kept'] for f in glob.glob('$WORK/run-one/ingest/_stats/*.json')))")
warc_docs=$(peer warc "$ONE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["docs"])')
warc_dt=$(cpu_of "$WORK/time-dt-warc"); warc_loam=$(cpu_of "$WORK/time-one")
echo "warc  $ONE: datatrove kept $warc_docs pages, cpu ${warc_dt}s | loam kept $one_kept, cpu ${warc_loam}s | loam uses $(python3 -c "print(f'{$warc_dt / $warc_loam:.1f}')")x less CPU per page"
