"""Writes the demo's quality-classifier sets from ../shared/data (see README.md here).

Positives: State of the Union addresses and Moby-Dick chapters (public domain), each cut
to its first 10,000 characters — the classifier's normaliser reads no further. Negatives:
BIG-bench real_or_fake_text GPT-2 examples (Apache-2.0), in BIG-bench's own task-file
format, the dev and test splits apart. Deterministic: rerunning writes the same bytes.
"""
import glob
import gzip
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../../shared/data")
CUT = 10_000


def write_jsonl(name, rows):
    with open(os.path.join(HERE, name), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            for r in rows:
                f.write((json.dumps(r, ensure_ascii=False) + "\n").encode())


def sotu(lo, hi):
    for p in sorted(glob.glob(os.path.join(SHARED, "text/sotu/*.txt"))):
        year = int(os.path.basename(p)[:4])
        if lo <= year <= hi:
            text = open(p, encoding="utf-8").read()[:CUT]
            yield {"id": os.path.basename(p)[:-4], "text": text}


def moby(lo, hi):
    def num(p):
        return int(re.search(r"(\d+)", os.path.basename(p)).group(1))

    for p in sorted(glob.glob(os.path.join(SHARED, "text/moby-dick/chapter_*.txt")), key=num):
        if lo <= num(p) <= hi:
            yield {"id": f"moby-dick-{num(p)}", "text": open(p, encoding="utf-8").read()[:CUT]}


write_jsonl("sotu-1790-1990.jsonl.gz", sotu(1790, 1990))
write_jsonl("sotu-1991-2021.jsonl.gz", sotu(1991, 2100))
write_jsonl("moby-dick-1-100.jsonl.gz", moby(1, 100))
write_jsonl("moby-dick-101-135.jsonl.gz", moby(101, 1000))

task = json.load(gzip.open(os.path.join(SHARED, "labelled/real-or-fake-text/gpt2.task.json.gz")))
for split, n in [("dev", 1500), ("test", 500)]:
    sub = dict(task)
    sub["examples"] = [e for e in task["examples"] if e.get("meta", {}).get("split") == split][:n]
    with open(os.path.join(HERE, f"real-or-fake-gpt2.{split}.task.json.gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            f.write(json.dumps(sub, ensure_ascii=False).encode())
