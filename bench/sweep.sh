#!/usr/bin/env bash
# The IsoFLOP sweep on CPU, on real text: builds the benchmark corpus
# (bench/sweep/make_corpus.py: BIG-bench web/news, SpamAssassin mail, the Debian handbook),
# runs the pipeline to `score` twice — a low-quality cut (quality.top_fraction = 1.0: every
# filtered, deduplicated document) and a high-quality cut (0.3) — then `loam sweep` on each:
# plan around the score's M_opt, every run (release build, concurrent 1-thread runs), both
# fits with bootstrap intervals, the score's prediction with z. Prints one summary table and
# writes $WORK/summary.json.
# usage: bash bench/sweep.sh ["[BUDGETS]"] [PER_BUDGET]      e.g. bash bench/sweep.sh "[1e12, 1e13, 1e14]" 7
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loam-target}"
BUDGETS="${1:-[2e10, 6e10, 2e11]}"
PER="${2:-7}"
WORK="${BENCH_WORK:-/tmp/loam-bench-sweep}"
SHARED="${LOAM_SHARED_DATA:-../shared/data}"
mkdir -p "$WORK"
cargo build --release --locked --bin loam ${BENCH_FEATURES:+--features "$BENCH_FEATURES"}
LOAM="$CARGO_TARGET_DIR/release/loam"
python3 bench/sweep/make_corpus.py "$SHARED" "$WORK/corpus"
for cut in low:1.0 high:0.3; do
  name=${cut%%:*} frac=${cut##*:}
  sed -e "s#@REPO@#$PWD#g; s#@CORPUS@#$WORK/corpus#g; s#@RUN@#$WORK/$name#g" bench/sweep/sweep.toml > "$WORK/$name.toml"
  set_args=(--set "quality.top_fraction=$frac" --set "sweep.budgets=$BUDGETS" --set "sweep.per_budget=$PER")
  "$LOAM" run "$WORK/$name.toml" --until score "${set_args[@]}" > "$WORK/$name.pipeline.json" 2> "$WORK/$name.pipeline.log"
  /usr/bin/time -f '{"wall_s": %e, "user_s": %U, "sys_s": %S}' -o "$WORK/$name.time.json" \
    "$LOAM" sweep --config "$WORK/$name.toml" "${set_args[@]}" > "$WORK/$name.sweep.json" 2> "$WORK/$name.sweep.log"
done
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
out = {}
for name in ("low", "high"):
    score = json.load(open(f"{w}/{name}/score/score.json"))
    fit = json.load(open(f"{w}/{name}/sweep/fit.json"))
    t = json.load(open(f"{w}/{name}.time.json"))
    c, s = fit["check"], fit["sweep"]
    u = score["budgets"][0]["unique_tokens"]
    runs = s["runs"]
    out[name] = {
        "q": score["q"], "p_raw": score["corpus"]["p_raw"], "p_final": score["corpus"]["p_final"],
        "unique_tokens": u, "max_epochs": max(r["tokens"] for r in runs) / u, "a_predicted": c["a_predicted"], "sigma_predicted": c["sigma_predicted"],
        "a_approach2": fit["a_approach2"], "a2_interval": fit["bootstrap"]["a2"],
        "a_approach3": fit["a_approach3"], "a3_interval": fit["bootstrap"]["a3"],
        "law": fit["approach3"]["law"], "measured_by": c["measured_by"], "a_hat": c["a_hat"], "s": c["s"],
        "z": c["z"], "verdict": c["verdict"], "a_post": c["a_post"], "warnings": fit["warnings"],
        "points": fit["points"], "runs": len(runs), "dropped": [r for r in runs if r["dropped"]],
        "slices": [{k: sl[k] for k in ("budget", "points", "size_opt", "loss_opt", "refused")}
                   for sl in (fit["approach2"]["fit"] or {"slices": []})["slices"]],
        "sweep_wall_s": t["wall_s"], "sweep_cpu_s": t["user_s"] + t["sys_s"],
        "run_wall_s": [r["wall_s"] for r in runs], "run_cpu_s": [r["cpu_s"] for r in runs],
    }
json.dump(out, open(f"{w}/summary.json", "w"), indent=1)
def iv(i):
    return "-" if not i else "[%.3f, %.3f]" % (i["lo"], i["hi"])
print("%-5s %6s %8s %8s %16s %8s %16s %7s %-13s %8s %8s" % ("cut", "q", "a(q)", "a2", "a2 95%", "a3", "a3 95%", "z", "verdict", "wall s", "CPU s"))
for n, r in out.items():
    z = "-" if r["z"] is None else "%+.2f" % r["z"]
    a2 = "-" if r["a_approach2"] is None else "%.4f" % r["a_approach2"]
    print("%-5s %6.3f %8.4f %8s %16s %8.4f %16s %7s %-13s %8.0f %8.0f" % (n, r["q"], r["a_predicted"], a2, iv(r["a2_interval"]),
          r["a_approach3"], iv(r["a3_interval"]), z, r["verdict"][:13], r["sweep_wall_s"], r["sweep_cpu_s"]))
    print("      %d unique tokens; the most-trained run sees them %.1f times" % (r["unique_tokens"], r["max_epochs"]))
    for sl in r["slices"]:
        print("      C = %.2e: %d runs, vertex %s, loss %s %s" % (sl["budget"], sl["points"],
              "-" if sl["size_opt"] is None else "%.3e" % sl["size_opt"],
              "-" if sl["loss_opt"] is None else "%.4f" % sl["loss_opt"], sl["refused"] or ""))
    for wmsg in r["warnings"]:
        print("      warning:", wmsg)
PY
