#!/usr/bin/env python3
"""Builds a labelled dedup benchmark corpus from real text, over several dumps.

Real text (../shared/data): State of the Union addresses, Moby-Dick chapters, the Debian
Administrator's Handbook (HTML, paragraphs extracted) and classical Chinese poems. Each
*base* document is a random run of real sentences (or 2-6 poems), so two base documents
share almost nothing. Then, planted with a seed:

- duplicates of a base document, in the same or a later dump, of a known kind:
  `exact` (same text), `case_space` (upper-cased lines, doubled spaces), `edit_1pct` /
  `edit_3pct` / `edit_5pct` (share of words replaced), `boilerplate` (site header and
  footer added), `trim` (last paragraph dropped), `append` (a new paragraph added);
- hard negatives, labelled *distinct*: a new document reusing half of a base document's
  sentences (`half_shared`), which a good deduplicator must keep.

Output: `<out>/jsonl/<dump>/part-NNNNN.jsonl.gz` ({"id", "text"}) and `<out>/truth.tsv`
(id, cluster, kind, base). Deterministic: same arguments, same bytes.

    python3 bench/dedup/make_corpus.py --docs 20000 --dumps 6 --out /tmp/dd-20k
"""
import argparse
import gzip
import html
import json
import random
import re
from pathlib import Path

SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
KINDS = ["exact", "case_space", "edit_1pct", "edit_3pct", "edit_5pct", "boilerplate", "trim", "append"]


def english_sentences(shared):
    text = shared / "text"
    paras = []
    for p in sorted((text / "sotu").glob("*.txt")):
        paras += [l.strip() for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]
    for p in sorted((text / "moby-dick").glob("chapter_*.txt")):
        paras += [b.strip().replace("\n", " ") for b in p.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    for p in sorted((shared / "html" / "debian-handbook" / "en-US").glob("*.html")):
        raw = p.read_text(encoding="utf-8", errors="replace")
        for m in re.findall(r"<p[^>]*>(.*?)</p>", raw, re.S):
            t = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", m))).strip()
            if t:
                paras.append(t)
    out = []
    for para in paras:
        for s in SENT_END.split(para):
            n = len(s.split())
            if 5 <= n <= 80:
                out.append(s)
    return out


def poems(shared):
    out = []
    with gzip.open(shared / "text" / "chinese-poetry" / "poems-40k.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            body = p.get("text") or ""
            if body:
                out.append(f"{p.get('title', '')}\n{body}")
    return out


def base_doc(rng, sents, poem_pool):
    if rng.random() < 0.05:
        return "\n".join(rng.sample(poem_pool, rng.randint(2, 6)))
    k = rng.randint(8, 30)
    chosen = [sents[rng.randrange(len(sents))] for _ in range(k)]
    paras, i = [], 0
    while i < k:
        j = i + rng.randint(2, 5)
        paras.append(" ".join(chosen[i:j]))
        i = j
    return "\n".join(paras)


def variant(rng, text, kind, sents, vocab):
    if kind == "exact":
        return text
    if kind == "case_space":
        return "\n".join(l.upper().replace(" ", "  ") for l in text.split("\n"))
    if kind.startswith("edit_"):
        rate = {"edit_1pct": 0.01, "edit_3pct": 0.03, "edit_5pct": 0.05}[kind]
        lines = []
        for line in text.split("\n"):
            words = line.split(" ")
            lines.append(" ".join(vocab[rng.randrange(len(vocab))] if rng.random() < rate else w for w in words))
        return "\n".join(lines)
    if kind == "boilerplate":
        site = rng.randrange(1000)
        head = f"Home | News | Archive | Contact — site {site}\nYou are here: Home > Articles > {rng.randrange(10**6)}"
        foot = f"Copyright {rng.randint(2000, 2025)} site {site}. All rights reserved.\nPrivacy | Terms | Cookies"
        return f"{head}\n{text}\n{foot}"
    if kind == "trim":
        lines = text.split("\n")
        return "\n".join(lines[:-1]) if len(lines) > 2 else text
    if kind == "append":
        extra = " ".join(sents[rng.randrange(len(sents))] for _ in range(rng.randint(2, 4)))
        return f"{text}\n{extra}"
    raise ValueError(kind)


def half_shared(rng, text, sents):
    parts = SENT_END.split(text.replace("\n", " "))
    if len(parts) < 4:
        # Poems have no Latin sentence ends: share half of the lines instead.
        parts = text.split("\n")
    keep = parts[: max(1, len(parts) // 2)]
    return " ".join(keep + [sents[rng.randrange(len(sents))] for _ in range(len(parts) - len(keep))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--dumps", type=int, default=6)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    ap.add_argument("--dup-share", type=float, default=0.3, help="share of base docs that get duplicates")
    ap.add_argument("--per-file", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    sents = english_sentences(a.shared)
    poem_pool = poems(a.shared)
    vocab = sorted({w for s in sents[:20000] for w in s.split() if w.isalpha()})
    dumps = [f"SIM-2025-{2 * i + 1:02d}" for i in range(a.dumps)]
    per_dump = {d: [] for d in dumps}
    truth = []
    n = 0
    bases = []
    while n < a.docs:
        di = rng.randrange(len(dumps))
        doc_id = f"d{n:08d}"
        text = base_doc(rng, sents, poem_pool)
        per_dump[dumps[di]].append((doc_id, text))
        truth.append((doc_id, doc_id, "base", ""))
        bases.append((doc_id, di, text))
        n += 1
        r = rng.random()
        if r < a.dup_share:
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
                if n >= a.docs:
                    break
                kind = rng.choice(KINDS)
                vd = rng.randint(di, len(dumps) - 1)
                vid = f"d{n:08d}"
                per_dump[dumps[vd]].append((vid, variant(rng, text, kind, sents, vocab)))
                truth.append((vid, doc_id, kind, doc_id))
                n += 1
        elif r < a.dup_share + 0.05 and len(bases) > 1 and n < a.docs:
            # A hard negative: half of an earlier base's sentences, the rest new. Distinct.
            bid, bdi, btext = bases[rng.randrange(len(bases) - 1)]
            vid = f"d{n:08d}"
            per_dump[dumps[rng.randint(bdi, len(dumps) - 1)]].append((vid, half_shared(rng, btext, sents)))
            truth.append((vid, vid, "half_shared", bid))
            n += 1
    for d, docs in per_dump.items():
        folder = a.out / "jsonl" / d
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(0, max(len(docs), 1), a.per_file):
            with gzip.open(folder / f"part-{k // a.per_file:05d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as f:
                for doc_id, text in docs[k:k + a.per_file]:
                    f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    with open(a.out / "truth.tsv", "w", encoding="utf-8") as f:
        f.write("id\tcluster\tkind\tbase\n")
        for row in truth:
            f.write("\t".join(row) + "\n")
    kinds = {}
    for _, _, k, _ in truth:
        kinds[k] = kinds.get(k, 0) + 1
    print(json.dumps({"docs": n, "dumps": dumps, "sentences": len(sents), "poems": len(poem_pool), "kinds": kinds}))


if __name__ == "__main__":
    main()
