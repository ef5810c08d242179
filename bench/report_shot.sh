#!/usr/bin/env bash
# The README's screenshot of the report (docs/report.png): the demo run's page rendered by
# headless Chromium at 1280 px with the network cut, cropped to the header and the dedup
# section and reduced to 64 colours (needs python3 with Pillow).
#   bash bench/report_shot.sh [RUN_DIR]     # default: a fresh demo run under /tmp
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
RUN="${1:-/tmp/loam-report-shot/demo}"
cargo build --release --quiet
[ -f "$RUN/report/report.html" ] || "$CARGO_TARGET_DIR/release/loam" run configs/demo.toml --run-dir "$RUN" > /dev/null
PROFILE="$(mktemp -d)"
trap 'rm -rf "$PROFILE"' EXIT
unshare --net --map-root-user chromium --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$PROFILE" --window-size=1280,16000 --screenshot="$PROFILE/full.png" \
  "file://$(realpath "$RUN/report/report.html")" 2> /dev/null
python3 - "$PROFILE/full.png" "$RUN/report/report.html" <<'PY'
import re, sys
from PIL import Image
full = Image.open(sys.argv[1]).convert("RGB")
# The page body is 1040 px wide, centred. The dedup section starts where its heading is
# drawn: each section's heading has a 2 px grey rule across the body.
px = full.load()
def rule_rows(y0):
    for y in range(y0, full.height - 1):
        # A section's rule spans the whole body (tables' row lines do not) and is 2 px.
        if all(px[x, y] == px[x, y + 1] == (217, 217, 217) for x in range(140, 1140, 40)):
            yield y
top = full.crop((120, 0, 1160, 640))
starts = list(rule_rows(0))
html = open(sys.argv[2], encoding="utf-8").read()
# Sections in page order; the dedup section is the one after filter.
ids = re.findall(r'<section id="([a-z]+)">', html)
heads = []
for y in starts:
    if not heads or y > heads[-1] + 4:
        heads.append(y)
i = ids.index("dedup")  # every section heading draws one rule
y = heads[i] if i < len(heads) else heads[0]
dedup = full.crop((120, y, 1160, y + 740))
out = Image.new("RGB", (1040, top.height + dedup.height), "white")
out.paste(top, (0, 0))
out.paste(dedup, (0, top.height))
out = out.resize((780, out.height * 780 // 1040), Image.LANCZOS)
out.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save("docs/report.png", optimize=True)
print("docs/report.png", out.size)
PY
