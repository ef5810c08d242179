"""The quality benchmark (see bench/quality.sh). Prints one JSON report and a summary."""
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import fasttext
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
LOAM, WORK, NDOCS = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
# DCLM's recipe (loam's defaults), one thread: the setting under which both are deterministic.
ARGS = dict(lr=0.1, dim=100, ws=5, epoch=5, minCount=1, wordNgrams=2, loss="softmax", bucket=2_000_000)


def sh(*args, **kw):
    t = time.perf_counter()
    subprocess.run([str(a) for a in args], check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def src(kind, name, inputs, fmt, heldout, more=""):
    return (
        f"[[quality.models.{kind}]]\nname = {json.dumps(name)}\ninputs = {json.dumps([str(i) for i in inputs])}\n"
        f"format = {json.dumps(fmt)}\nheldout = {str(heldout).lower()}\n{more}\n"
    )


def heldout_sources():
    s = SHARED
    return [
        src("positives", "sotu-1991-", [s / "text/sotu/199[1-9]*.txt", s / "text/sotu/20*.txt"], "text", True),
        src("positives", "moby-dick-100-", [s / "text/moby-dick/chapter_1[0-9][0-9].txt"], "text", True),
        src("negatives", "spam-1", [s / "labelled/spam-assassin-txt.tar.gz"], "email", True, 'members = "spam-1/*"'),
        src("negatives", "easy-ham-2", [s / "labelled/spam-assassin-txt.tar.gz"], "email", True, 'members = "easy-ham-2/*"'),
        src("negatives", "hard-ham-1", [s / "labelled/spam-assassin-txt.tar.gz"], "email", True, 'members = "hard-ham-1/*"'),
        src("negatives", "gpt2-test", [s / "labelled/real-or-fake-text/gpt2.task.json.gz"], "bigbench", True, 'split = "test"'),
    ]


def train_sources():
    s = SHARED
    sotu = [s / "text/sotu/1[78]*.txt", s / "text/sotu/19[0-8]*.txt", s / "text/sotu/1990*.txt"]
    moby = [s / "text/moby-dick/chapter_[1-9].txt", s / "text/moby-dick/chapter_[1-9][0-9].txt"]
    return [
        src("positives", "sotu-1790-1990", sotu, "text", False),
        src("positives", "moby-dick-1-99", moby, "text", False),
        src("positives", "debian-handbook-en", [s / "html/debian-handbook/en-US"], "html", False),
        src("negatives", "spam-2", [s / "labelled/spam-assassin-txt.tar.gz"], "email", False, 'members = "spam-2/*"'),
        src("negatives", "easy-ham-1", [s / "labelled/spam-assassin-txt.tar.gz"], "email", False, 'members = "easy-ham-1/*"'),
        src("negatives", "gpt2-dev", [s / "labelled/real-or-fake-text/gpt2.task.json.gz"], "bigbench", False, 'split = "dev"'),
    ]


def quality_block(model_extra, sources, quantize=False):
    ft = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {
        "lr": ARGS["lr"], "dim": ARGS["dim"], "ws": ARGS["ws"], "epoch": ARGS["epoch"], "min_count": ARGS["minCount"],
        "word_ngrams": ARGS["wordNgrams"], "loss": ARGS["loss"], "bucket": ARGS["bucket"], "thread": 1}.items())
    return (
        "[quality]\nkeep = \"all\"\nkeep_training_files = true\n[quality.normalize]\nmax_chars = 0\n"
        f"[quality.fasttext]\n{ft}\n[quality.quantize]\nenabled = {str(quantize).lower()}\n"
        f"[[quality.models]]\nlanguage = \"*\"\n{model_extra}\n" + "".join(sources)
    )


def auc(pairs):
    pairs = sorted(pairs)
    pos = sum(1 for _, y in pairs if y)
    neg = len(pairs) - pos
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        rank_sum += (i + 1 + j) / 2 * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


report = {}
WORK.mkdir(parents=True, exist_ok=True)

# 1. Training. The pool (rule-dropped documents) comes from the demo corpus' filter stage.
train_dir = WORK / "train-run"
demo = (REPO / "configs/demo.toml").read_text()
head = demo.split("\n[quality]")[0].replace('dir = "../runs/demo"', f'dir = "{train_dir}"').replace('"../', f'"{REPO}/')
tail = "\n[tokenizer]" + demo.split("\n[tokenizer]")[1].replace('"../', f'"{REPO}/')
cfg = WORK / "train.toml"
pool = "pool = { rule_dropped_share = 1.0 }"
cfg.write_text(head + "\n" + quality_block(pool, train_sources() + heldout_sources()) + tail)
subprocess.run(["rm", "-rf", str(train_dir)], check=True)
sh(LOAM, "run", cfg, "--until", "filter", "--threads", "1")
loam_wall = sh(LOAM, "quality", "train", "--config", cfg, "--threads", "1")
model_dir = train_dir / "quality/_model"
card = json.loads((model_dir / "all.card.json").read_text())
facts = json.loads((model_dir / "_stats/train.json").read_text())["per_model"]["all"]
t = time.perf_counter()
py = fasttext.train_supervised(input=str(model_dir / "all.train.txt"), thread=1, seed=0, verbose=0, **ARGS)
py_train = time.perf_counter() - t
py.save_model(str(WORK / "py.bin"))
held = [line.rstrip("\n").split("\t", 3) for line in open(model_dir / "all.heldout.tsv", encoding="utf-8")]
t = time.perf_counter()
py_pairs = []
for label, _, _, text in held:
    labels, probs = py.predict(text, k=-1)
    py_pairs.append((float(dict(zip(labels, probs)).get("__label__hq", 0.0)), label == "1"))
py_eval = time.perf_counter() - t
same_bytes = (WORK / "py.bin").read_bytes() == (model_dir / "all.bin").read_bytes()
report["training"] = {
    "examples": card["train_examples"], "lines": card["train_lines"], "heldout": card["heldout_examples"],
    "loam_roc_auc": card["heldout"]["roc_auc"], "python_roc_auc": auc(py_pairs),
    "same_model_bytes": same_bytes, "bin_bytes": card["bin"]["bytes"],
    "loam_quality_train_seconds": loam_wall, "loam_fasttext_seconds": facts["fasttext"],
    "loam_prepare_seconds": facts["prepare"], "loam_evaluate_seconds": facts["evaluate"],
    "python_train_supervised_seconds": py_train, "python_predict_heldout_seconds": py_eval,
}
# Quantization, on the same model: loam's .ftz step vs Python's quantize().
t = time.perf_counter()
py.quantize(input=str(model_dir / "all.train.txt"), qnorm=True, retrain=False, cutoff=0, dsub=2, thread=1, verbose=0)
py_quant = time.perf_counter() - t
qcfg = WORK / "train-quant.toml"
qcfg.write_text(cfg.read_text().replace("[quality.quantize]\nenabled = false", "[quality.quantize]\nenabled = true"))
sh(LOAM, "quality", "train", "--config", qcfg, "--threads", "1", "--force")
qcard = json.loads((model_dir / "all.card.json").read_text())
qfacts = json.loads((model_dir / "_stats/train.json").read_text())["per_model"]["all"]
report["quantization"] = {
    "loam_seconds": qfacts["quantize"], "python_seconds": py_quant, "used": qcard["model"],
    "decision": qcard["quantized"], "ftz": qcard["ftz"], "bin_roc_auc": qcard["bin"]["heldout_roc_auc"],
}
# The .bin trained above (not quantized) is the model scored below.
model = WORK / "model.bin"
subprocess.run(["cp", str(WORK / "py.bin"), str(model)], check=True)

# 2. Scoring: the same documents and model in both tools, one core.
corpus = WORK / f"corpus-{NDOCS}"
if not corpus.exists():
    subprocess.run([sys.executable, REPO / "bench/dedup/make_corpus.py", "--docs", str(NDOCS), "--dumps", "3",
                    "--out", str(corpus)], check=True, stdout=subprocess.DEVNULL)
score_dir = WORK / "score-run"
subprocess.run(["rm", "-rf", str(score_dir)], check=True)
scfg = WORK / "score.toml"
scfg.write_text(
    f'[run]\ndir = "{score_dir}"\nshards = 1\nseed = 42\n[[dumps]]\nname = "BENCH-1"\ninputs = ["{corpus}/jsonl"]\n'
    + quality_block(f'from_file = "{model}"\npool = {{ enabled = false }}', heldout_sources()).replace(
        "[quality]\n", '[quality]\nupstream = "ingest"\n')
)
sh(LOAM, "ingest", "--config", scfg, "--threads", "1")
sh(LOAM, "quality", "train", "--config", scfg, "--threads", "1")
sh(LOAM, "quality", "--phase", "score", "--config", scfg, "--threads", "1")
sh(LOAM, "quality", "--phase", "threshold", "--config", scfg)
sh(LOAM, "quality", "--phase", "apply", "--config", scfg, "--threads", "1")
rows = pq.read_table(score_dir / "quality", columns=["id", "quality_score", "text"]).to_pylist()
n = len(rows)



def timed_rss(*args):
    """(seconds the command reports on stdout, peak RSS in MB) of a command."""
    out = subprocess.run(["/usr/bin/time", "-f", "RSS %M"] + [str(a) for a in args], check=True,
                         capture_output=True, text=True)
    rss = int(out.stderr.strip().splitlines()[-1].split()[1]) / 1024
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "", rss


def dt(mode, extra=()):
    logs = WORK / f"dt-logs-{mode}"
    subprocess.run(["rm", "-rf", str(logs)], check=True)
    secs, rss = timed_rss(sys.executable, REPO / "bench/quality/dt_score.py", score_dir / "ingest", model, mode, logs, *extra)
    return float(secs), rss


dt("collect", [WORK / "dt-scores.json"])
dt_scores = json.load(open(WORK / "dt-scores.json"))
# Three interleaved rounds (this VM's timings spread by ±15%); medians are reported.
rounds = {"dt_read": [], "dt": [], "loam": []}
for _ in range(3):
    rounds["dt_read"].append(dt("read")[0])
    secs, dt_rss = dt("score")
    rounds["dt"].append(secs)
    t = time.perf_counter()
    _, loam_rss = timed_rss(LOAM, "quality", "--phase", "score", "--config", scfg, "--threads", "1", "--force")
    rounds["loam"].append(time.perf_counter() - t)
med = {k: sorted(v)[1] for k, v in rounds.items()}
dt_read, dt_total, loam_score = med["dt_read"], med["dt"], med["loam"]
diffs = sorted(abs(r["quality_score"] - dt_scores[r["id"]]) for r in rows if r["id"] in dt_scores)
report["scoring"] = {
    "documents": n, "text_bytes": sum(len(r["text"].encode()) for r in rows),
    "loam_score_seconds": loam_score, "loam_docs_per_s": n / loam_score,
    "datatrove_seconds": dt_total, "datatrove_reader_only_seconds": dt_read,
    "datatrove_docs_per_s": n / dt_total, "loam_peak_rss_mb": loam_rss, "datatrove_peak_rss_mb": dt_rss, "ratio_docs_per_s": (n / loam_score) / (n / dt_total),
    "ratio_classifier_only": (dt_total - dt_read) / loam_score,
    "rounds": rounds, "scores_compared": len(diffs), "share_within_1e-6": sum(d <= 1e-6 for d in diffs) / max(len(diffs), 1),
    "max_abs_diff": diffs[-1] if diffs else None,
}
print(json.dumps(report, indent=1))
tr, sc, q = report["training"], report["scoring"], report["quantization"]
print(f"\ntraining: ROC-AUC loam {tr['loam_roc_auc']:.4f} vs Python {tr['python_roc_auc']:.4f}; same bytes: "
      f"{tr['same_model_bytes']}; fastText call {tr['loam_fasttext_seconds']:.1f} s vs train_supervised "
      f"{tr['python_train_supervised_seconds']:.1f} s (whole loam step {tr['loam_quality_train_seconds']:.1f} s)")
print(f"quantize: loam {q['loam_seconds']:.1f} s vs Python {q['python_seconds']:.1f} s; {q['decision']}")
print(f"scoring: {sc['documents']} docs, loam {sc['loam_docs_per_s']:.0f} docs/s vs datatrove "
      f"{sc['datatrove_docs_per_s']:.0f} docs/s = {sc['ratio_docs_per_s']:.1f}x "
      f"(classifier only {sc['ratio_classifier_only']:.1f}x); peak RSS {sc['loam_peak_rss_mb']:.0f} vs "
      f"{sc['datatrove_peak_rss_mb']:.0f} MB; {sc['share_within_1e-6']:.1%} of scores within 1e-6")
