"""Writes the sweep benchmark's corpus: three dumps of real English text from ../shared/data,
as Dolma-style JSONL (id, text, source, added, metadata.url), none of it a training or
held-out example of the demo's quality classifier:

- WEB: BIG-bench real_or_fake_text documents the classifier never sees (data/demo/WEB-1997:
  human news/web text that turns into GPT-2 output), Apache-2.0;
- MAIL: the SpamAssassin public corpus, 6,046 e-mails (ham and spam), the body after the
  headers, quoted-printable soft breaks joined (see its LICENSE/NOTICE);
- DOCS: the Debian Administrator's Handbook, en-US, 127 HTML pages as text (tags dropped,
  scripts and styles skipped), GPL-2+ / CC-BY-SA-3.0.

The State of the Union addresses and Moby-Dick are left out: they are the classifier's own
positive sources, and with them the final corpus scores q = 1 at any cut (tried: 4.5M tokens
but q clipped to 1 with every document kept), so the two cuts could not differ in q.

The mix spans reference-like prose (the handbook), ordinary web/news text and e-mail, so a
quality threshold has something to choose. Rerunning writes the same bytes:

    python3 bench/sweep/make_corpus.py ../shared/data OUT_DIR
"""
import gzip
import html.parser
import json
import re
import shutil
import sys
import tarfile
from pathlib import Path

shared, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)


def write(name, docs):
    (out / name).mkdir(exist_ok=True)
    path = out / name / f"{name.lower()}.jsonl.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        for d in docs:
            f.write((json.dumps(d, ensure_ascii=False) + "\n").encode())
    return path


repo = Path(__file__).resolve().parents[2]
(out / "WEB").mkdir(exist_ok=True)
shutil.copyfile(repo / "data/demo/WEB-1997/web-news.jsonl.gz", out / "WEB/web.jsonl.gz")

mail = []
with tarfile.open(shared / "labelled/spam-assassin-txt.tar.gz") as t:
    for m in sorted((m for m in t.getmembers() if m.isfile()), key=lambda m: m.name):
        raw = t.extractfile(m).read().decode("latin-1")
        body = raw.split("\n\n", 1)[1] if "\n\n" in raw else raw
        body = body.replace("=\n", "")
        if len(body.strip()) < 200:
            continue
        folder = m.name.split("/")[0]
        mail.append({"id": f"mail-{len(mail):05d}", "text": body, "source": f"spamassassin/{folder}",
                     "added": "2002-01-01T00:00:00Z",
                     "metadata": {"url": f"http://mail.example/{m.name}", "label": folder}})
write("MAIL", mail)


class Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in ("p", "div", "br", "li", "h1", "h2", "h3", "pre", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


docs = []
for p in sorted((shared / "html/debian-handbook/en-US").glob("*.html")):
    t = Text()
    t.feed(p.read_text(encoding="utf-8", errors="replace"))
    text = re.sub(r"\n\s*\n+", "\n\n", re.sub(r"[ \t]+", " ", "".join(t.parts))).strip()
    # One document per section-sized chunk (~8 KB), so a page is not one giant document.
    paras, cur, n = text.split("\n\n"), [], 0
    for para in paras + [None]:
        if para is None or (n > 8000 and cur):
            if cur:
                docs.append({"id": f"handbook-{len(docs):04d}", "text": "\n\n".join(cur),
                             "source": "debian-handbook/en-US", "added": "2022-09-22T00:00:00Z",
                             "metadata": {"url": f"http://handbook.example/{p.stem}/{len(docs)}"}})
            cur, n = [], 0
        if para is not None:
            cur.append(para)
            n += len(para)
write("DOCS", docs)
print(json.dumps({"web": 3540, "mail": len(mail), "docs": len(docs)}))
