"""Checks a loam quality model against the reference Python fastText (fasttext-numpy2-wheel).

usage: check_quality.py MODEL_DIR STEM

- Loads MODEL_DIR/STEM.card.json and the model file it names; scores every example of
  MODEL_DIR/STEM.heldout.tsv (label, source, loam's score, normalised text) with Python's
  `predict(text, k=-1)` and reports the largest |loam - Python| difference.
- If MODEL_DIR/STEM.train.txt exists, trains `fasttext.train_supervised` on it with the
  card's arguments (thread 1) and reports whether the model bytes equal loam's .bin.
Prints one JSON object.
"""
import hashlib
import json
import os
import sys
import tempfile

import fasttext

model_dir, stem = sys.argv[1], sys.argv[2]
card = json.load(open(os.path.join(model_dir, stem + ".card.json")))
model = fasttext.load_model(os.path.join(model_dir, card["model"]))
labels = list(model.get_labels())
max_diff, n = 0.0, 0
for line in open(os.path.join(model_dir, stem + ".heldout.tsv"), encoding="utf-8"):
    label, source, score, text = line.rstrip("\n").split("\t", 3)
    got_labels, probs = model.predict(text, k=-1)
    p = dict(zip(got_labels, probs)).get("__label__hq", 0.0)
    max_diff = max(max_diff, abs(float(p) - float(score)))
    n += 1
report = {"documents": n, "max_abs_diff": max_diff, "labels": labels}
train = os.path.join(model_dir, stem + ".train.txt")
if os.path.exists(train) and card.get("fasttext"):
    a = card["fasttext"]
    m = fasttext.train_supervised(
        input=train, lr=a["lr"], dim=a["dim"], ws=a["ws"], epoch=a["epoch"], minCount=a["min_count"],
        minCountLabel=a["min_count_label"], minn=a["minn"], maxn=a["maxn"], neg=a["neg"],
        wordNgrams=a["word_ngrams"], loss=a["loss"], bucket=a["bucket"], thread=1,
        lrUpdateRate=a["lr_update_rate"], t=a["t"], seed=a["seed"], verbose=0,
    )
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "py.bin")
        m.save_model(out)
        py = hashlib.sha256(open(out, "rb").read()).hexdigest()
    report["python_bin_sha256"] = py
    report["same_bin_bytes"] = py == card["bin"]["sha256"]
print(json.dumps(report))
