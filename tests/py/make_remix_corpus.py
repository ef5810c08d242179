"""A multi-domain corpus of real text for the remix tests: each document is real text from
../shared/data, placed under a real-looking URL of a site of its kind (the URLs are made
up; the text is not). Domains under loam's default host table:

  politics    State of the Union paragraphs   www.presidency.ucsb.edu
  literature  Moby-Dick paragraphs            www.gutenberg.org
              Chinese poems                   so.gushiwen.cn
  software    Debian handbook (5 languages)   www.debian.org
  law         UDHR translations               www.ohchr.org
  forum       SpamAssassin ham                www.mail-archive.com
  blocked     SpamAssassin spam               hosts from the test's blocklist
  other       hosts no table lists            e.g. www.example-shop.net

usage: make_remix_corpus.py SHARED_DATA OUT_DIR [DOCS_PER_FILE] [COPIES]
Writes OUT_DIR/part-NNN.jsonl.gz (documents shuffled by a fixed seed) and
OUT_DIR/blocklist.txt. COPIES > 1 (benchmarks) repeats the ~23k documents under new ids
and URL paths (19,008 each; 53 for 1,007,424).
"""
import gzip
import html
import json
import random
import re
import sys
import tarfile
from pathlib import Path

shared, out = Path(sys.argv[1]), Path(sys.argv[2])
per_file = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
copies = int(sys.argv[4]) if len(sys.argv) > 4 else 1
out.mkdir(parents=True, exist_ok=True)
rng = random.Random(7)
docs = []


def add(url, text):
    text = text.strip()
    if len(text) >= 40:
        docs.append({"id": f"d{len(docs):06d}", "url": url, "text": text})


def paragraphs(text, per_doc):
    """Documents of about per_doc × 600 characters: lines, and sentences of long lines."""
    units = []
    for line in re.split(r"\n", text):
        line = line.strip()
        if len(line) > 1200:
            units += [u for u in re.split(r"(?<=[.!?。！？])\s*", line) if u.strip()]
        elif len(line) > 30:
            units.append(line)
    doc, i = [], 0
    for u in units:
        doc.append(u)
        if sum(len(x) for x in doc) >= 600 * per_doc:
            yield i, " ".join(doc)
            doc, i = [], i + 1
    if doc:
        yield i, " ".join(doc)


def strip_html(s):
    s = re.sub(r"(?is)<(script|style).*?</\1>", " ", s)
    s = re.sub(r"(?s)<[^>]+>", " ", s)
    return re.sub(r"[ \t]+", " ", html.unescape(s))


for p in sorted((shared / "text/sotu").glob("*.txt")):
    for i, t in paragraphs(p.read_text(encoding="utf-8"), 2):
        add(f"https://www.presidency.ucsb.edu/documents/{p.stem}#p{i}", t)
for p in sorted((shared / "text/moby-dick").glob("*.txt")):
    for i, t in paragraphs(p.read_text(encoding="utf-8"), 2):
        add(f"https://www.gutenberg.org/files/2701/{p.stem}.html#p{i}", t)
with gzip.open(shared / "text/chinese-poetry/poems-40k.jsonl.gz", "rt", encoding="utf-8") as f:
    for n, line in enumerate(f):
        if n >= 1500:
            break
        poem = json.loads(line)
        add(f"https://so.gushiwen.cn/shiwenv_{n}.aspx", f"{poem.get('title', '')}\n{poem.get('text', '')}")
for p in sorted((shared / "html/debian-handbook").glob("*/*.html")):
    for i, t in paragraphs(strip_html(p.read_text(encoding="utf-8", errors="replace")), 4):
        add(f"https://www.debian.org/doc/manuals/debian-handbook/{p.parent.name}/{p.stem}.{i}.html", t)
for p in sorted((shared / "text/udhr").glob("*.html"))[:120]:
    for i, t in paragraphs(strip_html(p.read_text(encoding="utf-8", errors="replace")), 2):
        add(f"https://www.ohchr.org/en/human-rights/universal-declaration/translations/{p.stem}#a{i}", t)
blocked_hosts = [f"cheap-deals-{i}.biz" for i in range(40)]
with tarfile.open(shared / "labelled/spam-assassin-txt.tar.gz") as tar:
    n_ham = n_spam = 0
    for m in tar:
        if not m.isfile():
            continue
        body = tar.extractfile(m).read().decode("latin-1")
        body = body.split("\n\n", 1)[-1]
        if "spam" in m.name and n_spam < 1200:
            n_spam += 1
            add(f"http://www.{rng.choice(blocked_hosts)}/offer/{n_spam}", body[:4000])
        elif "ham" in m.name and n_ham < 1500:
            n_ham += 1
            add(f"https://www.mail-archive.com/list{n_ham % 30}/msg{n_ham:05d}.html", body[:4000])
        if n_ham >= 1500 and n_spam >= 1200:
            break
others = ["www.example-shop.net", "blog.some-person.name", "0pointer.de", "forum.local-club.org"]
for i, d in enumerate(list(docs)[:: 9]):
    add(f"https://{others[i % len(others)]}/page/{i}", d["text"][:2000])
rng.shuffle(docs)
n = 0
part, f = 0, None
for c in range(copies):
    for d in docs:
        if n % per_file == 0:
            if f:
                f.close()
            f = gzip.open(out / f"part-{part:03d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=1)
            part += 1
        if c:
            d = {"id": f"{d['id']}-{c}", "url": f"{d['url']}/{c}", "text": d["text"]}
        f.write(json.dumps(d, ensure_ascii=False) + "\n")
        n += 1
if f:
    f.close()
(out / "blocklist.txt").write_text("\n".join(blocked_hosts) + "\n")
print(json.dumps({"documents": n}))
