"""Writes data/demo/WEB-1997/web-news.jsonl.gz: the demo's one dump of ordinary web/news
text, so that its raw crawl is not all reference-like text (the score step's q needs raw
documents below the quality model's held-out positives).

BIG-bench `real_or_fake_text` (PyPI bigbench==1.0.0, Apache-2.0): all 903 documents of
its `easy` task and the `gpt2` task's documents that data/quality/make.py does not take
(dev after the first 1,500, test after the first 500) — so none of them is a training or
held-out example of the demo's quality classifier. Each starts as human-written news or
web text and switches to GPT-2 output. Rerunning writes the same bytes:

    python3 data/demo/make_web.py ../shared/data/labelled/real-or-fake-text
"""
import gzip
import json
import sys
from pathlib import Path

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/labelled/real-or-fake-text")
easy = json.load(gzip.open(src / "easy.task.json.gz"))["examples"]
gpt2 = json.load(gzip.open(src / "gpt2.task.json.gz"))["examples"]
unused = [e for e in gpt2 if e.get("meta", {}).get("split") == "dev"][1500:] + [
    e for e in gpt2 if e.get("meta", {}).get("split") == "test"
][500:]
docs = [("easy", i, e) for i, e in enumerate(easy)] + [("gpt2", i, e) for i, e in enumerate(unused)]
out = Path(__file__).parent / "WEB-1997" / "web-news.jsonl.gz"
with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
    for task, i, ex in docs:
        doc = {
            "id": f"bigbench-{task}-{i:04d}",
            "text": ex["input"],
            "source": f"bigbench/real_or_fake_text/{task}",
            "added": "1997-09-01T00:00:00Z",
            "metadata": {"url": f"http://news.example/{task}/{i:04d}", "license": "Apache-2.0"},
        }
        f.write((json.dumps(doc, ensure_ascii=False) + "\n").encode())
print(out, len(docs))
