"""Builds the tokenizer benchmark corpus from the real texts in ../shared/data: every State
of the Union address and Moby-Dick chapter, the first 40k classical Chinese poems, the UDHR in
532 languages and the Debian handbook in five languages (raw HTML, as a crawl holds it).
All distinct; ~48 MB. Writes OUT/corpus.jsonl (one document per line, {"text": ...}) and
OUT/train/*.txt (the same texts, one file per source, for line-by-line training).

usage: make_corpus.py SHARED_DATA OUT
"""
import glob, gzip, json, os, sys

shared, out = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, "train"), exist_ok=True)
sources = {
    "sotu": sorted(glob.glob(os.path.join(shared, "text/sotu/*.txt"))),
    "moby": sorted(glob.glob(os.path.join(shared, "text/moby-dick/*.txt"))),
    "udhr": sorted(glob.glob(os.path.join(shared, "text/udhr/*.html"))),
    "handbook": sorted(glob.glob(os.path.join(shared, "html/debian-handbook/*/*.html"))),
}
docs = {k: [open(p, encoding="utf-8", errors="replace").read() for p in v] for k, v in sources.items()}
with gzip.open(os.path.join(shared, "text/chinese-poetry/poems-40k.jsonl.gz"), "rt", encoding="utf-8") as f:
    docs["poems"] = [json.loads(l)["text"] for l in f]
n = size = 0
with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as c:
    for name in ["sotu", "moby", "poems", "udhr", "handbook"]:
        with open(os.path.join(out, "train", name + ".txt"), "w", encoding="utf-8") as t:
            for d in docs[name]:
                c.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
                t.write(d if d.endswith("\n") else d + "\n")
                n += 1
                size += len(d.encode("utf-8"))
print(json.dumps({"documents": n, "bytes": size}))
