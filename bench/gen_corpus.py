#!/usr/bin/env python3
"""Builds loam's multi-dump demo corpus from real public-domain / MIT text.

The *text* is real (State of the Union addresses and Moby-Dick: public domain; the
Universal Declaration of Human Rights translations and classical Chinese poems: MIT).
The *crawl* is simulated: each text is wrapped as a web page with site boilerplate and
written as Common-Crawl-style WARC (warcinfo/request/response/metadata records, one gzip
member per record), WET (conversion records) and Dolma-style JSONL, over several dumps.
Later dumps re-crawl part of the earlier pages with small changes (crawl date, rotating
"related" links, a few words edited) and add new pages -- which is what cross-dump near
duplicates look like. Deterministic: same arguments, same bytes.

    python3 bench/gen_corpus.py --out data/demo                  # the committed demo
    python3 bench/gen_corpus.py --out /tmp/c --pages 200000 --dumps 5   # benchmark scale
"""
import argparse
import gzip
import html
import io
import json
import random
import re
import uuid
from pathlib import Path

SITES = {
    "sotu": ("www.addresses-archive.example", "Presidential Addresses Archive"),
    "moby": ("books.whaling-library.example", "The Whaling Library"),
    "udhr": ("rights.declarations.example", "Declarations Online"),
}
UDHR_LANGS = ["eng", "fra", "deu_1996", "spa", "rus", "cmn_hans", "cmn_hant", "jpn", "arb", "ita",
              "por_PT", "nld", "pol", "tur", "kor", "vie", "hin", "swe", "ell_monotonic", "ukr"]
MAX_CHARS = 9000   # excerpt length per page, keeps the committed demo small


def load_sources(shared):
    text = shared / "text"
    pages = []
    for p in sorted((text / "sotu").glob("*.txt")):
        paras = [l.strip() for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]
        year, *who = p.stem.split("_")
        title = f"State of the Union, {year}: {' '.join(w.capitalize() for w in who[:-1])}"
        pages.append(("sotu", p.stem, title, paras))
    for p in sorted((text / "moby-dick").glob("chapter_*.txt"), key=lambda p: int(p.stem.split("_")[1])):
        blocks = [b.strip().replace("\n", " ") for b in p.read_text(encoding="utf-8").split("\n\n") if b.strip()]
        pages.append(("moby", p.stem, blocks[0], blocks[1:]))
    for code in UDHR_LANGS:
        f = text / "udhr" / f"{code}.html"
        if not f.exists():
            continue
        raw = f.read_text(encoding="utf-8")
        paras = [html.unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in re.findall(r"<p>(.*?)</p>", raw, re.S)]
        title = html.unescape(re.search(r"<title>(.*?)</title>", raw).group(1))
        pages.append(("udhr", code, f"Universal Declaration of Human Rights ({title})", [p for p in paras if p]))
    return pages


def load_poems(shared, n):
    out = []
    with gzip.open(shared / "text" / "chinese-poetry" / "poems-40k.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if len(out) >= n:
                break
    return out


def excerpt(paras, rng, window):
    if window and len(paras) > 3:
        k = rng.randint(3, min(12, len(paras)))
        start = rng.randint(0, len(paras) - k)
        paras = paras[start:start + k]
    out, n = [], 0
    for p in paras:
        if n + len(p) > MAX_CHARS and out:
            break
        out.append(p)
        n += len(p)
    return out


def edit_words(paras, rng, rate):
    """Replaces about `rate` of the words with other words of the same page."""
    words = [w for p in paras for w in p.split()]
    if not words:
        return paras
    out = []
    for p in paras:
        ws = p.split()
        for i in range(len(ws)):
            if rng.random() < rate:
                ws[i] = rng.choice(words)
        out.append(" ".join(ws))
    return out


def render_html(page, crawl_date, related):
    site, site_name = SITES[page["source"]]
    nav = " | ".join(f'<a href="/{x.lower()}">{x}</a>' for x in ["Home", "Archive", "Search", "About"])
    rel = "".join(f'<li><a href="{html.escape(u)}">{html.escape(t)}</a></li>' for u, t in related)
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in page["paras"])
    lang = page.get("lang", "en")
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{html.escape(page['title'])} - {site_name}</title></head><body>\n"
        f'<header><div class="site">{site_name}</div><nav>{nav}</nav>'
        f'<div class="crawl">Page generated {crawl_date}</div></header>\n'
        f"<main><article><h1>{html.escape(page['title'])}</h1>\n{body}</article>\n"
        f'<aside><h3>Related</h3><ul>{rel}</ul></aside></main>\n'
        f"<footer>&copy; {crawl_date[:4]} {site_name} &middot; <a href='/privacy'>Privacy Policy</a>"
        f" &middot; <a href='/terms'>Terms of Use</a></footer>\n</body></html>\n"
    )


def render_wet_text(page, crawl_date, related):
    site, site_name = SITES[page["source"]]
    lines = [site_name, "Home | Archive | Search | About", f"Page generated {crawl_date}", page["title"]]
    lines += page["paras"]
    lines += ["Related"] + [t for _, t in related]
    lines += [f"© {crawl_date[:4]} {site_name} · Privacy Policy · Terms of Use"]
    return "\n".join(lines)


def warc_record(rng, wtype, date, body, headers=()):
    rid = uuid.UUID(int=rng.getrandbits(128), version=4)
    head = [f"WARC/1.0", f"WARC-Type: {wtype}", f"WARC-Date: {date}", f"WARC-Record-ID: <urn:uuid:{rid}>"]
    head += [f"{k}: {v}" for k, v in headers]
    head += [f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body + b"\r\n\r\n", rid


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as f:
        f.write(data)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--dumps", type=int, default=3)
    ap.add_argument("--pages", type=int, default=60, help="new + re-crawled pages per dump")
    ap.add_argument("--poems", type=int, default=40, help="JSONL poem documents per dump")
    ap.add_argument("--recrawl", type=float, default=0.5, help="share of a dump re-crawled from earlier dumps")
    ap.add_argument("--records-per-file", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=20240101)
    a = ap.parse_args()
    shared, out = Path(a.shared), Path(a.out)
    rng = random.Random(a.seed)
    sources = load_sources(shared)
    poems = load_poems(shared, a.poems * a.dumps * 2)
    order = list(range(len(sources)))
    rng.shuffle(order)
    # The declaration's translations come first, so even the small demo has prose in
    # Chinese and other languages for language id to sort.
    order = [i for i in order if sources[i][0] == "udhr"] + [i for i in order if sources[i][0] != "udhr"]
    window = a.pages * a.dumps > len(sources)  # past the pool, pages are paragraph windows
    crawled, next_src, manifest = [], 0, set()
    for d in range(a.dumps):
        dump = f"SIM-2024-{10 + 8 * d:02d}"
        month = 3 + 2 * d
        n_re = int(a.pages * a.recrawl) if crawled else 0
        pages = []
        for old in rng.sample(crawled, min(n_re, len(crawled))):
            p = dict(old)
            if rng.random() < 0.5:
                p["paras"] = edit_words(old["paras"], rng, rng.choice([0.01, 0.03, 0.1]))
            pages.append(p)
        while len(pages) < a.pages:
            src, key, title, paras = sources[order[next_src % len(order)]]
            next_src += 1
            n = next_src // len(order)
            slug = key if not window else f"{key}-{next_src}"
            site = SITES[src][0]
            lang = "en" if src != "udhr" else key.split("_")[0]
            pages.append({"source": src, "title": title, "lang": lang,
                          "url": f"http://{site}/{src}/{slug}.html",
                          "paras": excerpt(paras, rng, window or n > 0)})
        crawled.extend(pages)
        rng.shuffle(pages)
        # 60% of pages as WARC responses, the rest as WET conversions.
        n_warc = int(len(pages) * 0.6)
        ddir = out / dump
        (ddir / "warc").mkdir(parents=True, exist_ok=True)
        (ddir / "wet").mkdir(parents=True, exist_ok=True)
        (ddir / "jsonl").mkdir(parents=True, exist_ok=True)
        files = {}

        def write(kind, idx, data):
            name = ddir / kind / f"{dump}-{idx:05d}.{'warc' if kind == 'warc' else 'warc.wet'}.gz"
            files.setdefault(name, []).append(gz(data))

        for i, p in enumerate(pages):
            date = f"2024-{month:02d}-{1 + i % 27:02d}T{i % 24:02d}:{(7 * i) % 60:02d}:{(13 * i) % 60:02d}Z"
            related = [(q["url"], q["title"]) for q in rng.sample(crawled, min(4, len(crawled)))]
            kind = "warc" if i < n_warc else "wet"
            idx = (i if kind == "warc" else i - n_warc) // a.records_per_file
            fname = f"{dump}-{idx:05d}"
            if (dump, kind, idx) not in manifest:
                info = f"software: loam gen_corpus.py\r\nisPartOf: {dump}\r\ndescription: simulated crawl over real public-domain text\r\n".encode()
                rec, _ = warc_record(rng, "warcinfo", date, info, [("WARC-Filename", fname), ("Content-Type", "application/warc-fields")])
                write(kind, idx, rec)
                manifest.add((dump, kind, idx))
            if kind == "warc":
                host = p["url"].split("/")[2]
                req = f"GET /{p['url'].split('/', 3)[3]} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loam-demo\r\n\r\n".encode()
                rec, req_id = warc_record(rng, "request", date, req, [("WARC-Target-URI", p["url"]), ("Content-Type", "application/http; msgtype=request")])
                write(kind, idx, rec)
                body = render_html(p, date, related).encode("utf-8")
                resp = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
                rec, resp_id = warc_record(rng, "response", date, resp, [("WARC-Target-URI", p["url"]), ("WARC-Concurrent-To", f"<urn:uuid:{req_id}>"), ("Content-Type", "application/http; msgtype=response")])
                write(kind, idx, rec)
                meta = f"fetchTimeMs: {50 + i % 400}\r\n".encode()
                rec, _ = warc_record(rng, "metadata", date, meta, [("WARC-Target-URI", p["url"]), ("WARC-Refers-To", f"<urn:uuid:{resp_id}>"), ("Content-Type", "application/warc-fields")])
                write(kind, idx, rec)
            else:
                text = render_wet_text(p, date, related).encode("utf-8")
                rec, _ = warc_record(rng, "conversion", date, text, [("WARC-Target-URI", p["url"]), ("Content-Type", "text/plain")])
                write(kind, idx, rec)
        for name, members in files.items():
            name.write_bytes(b"".join(members))
        # Dolma-style JSONL: half the poems are new, half re-published from the previous dump.
        lines = []
        base = d * a.poems
        picks = list(range(base, base + a.poems))
        if d > 0:
            picks = picks[: a.poems // 2] + list(range(base - a.poems, base - a.poems // 2))
        for j in picks:
            poem = poems[j % len(poems)]
            lines.append(json.dumps({
                "id": f"poem-{poem['id']}", "text": f"{poem['title']}\n{poem['author']}\n{poem['text']}",
                "source": "chinese-poetry", "added": f"2024-{month:02d}-15T00:00:00Z",
                "metadata": {"url": f"http://poetry.classics.example/poem/{poem['id']}", "license": "MIT"},
            }, ensure_ascii=False))
        (ddir / "jsonl" / f"{dump}-poems.jsonl.gz").write_bytes(gz(("\n".join(lines) + "\n").encode("utf-8")))
        print(f"{dump}: {len(pages)} pages ({n_re} re-crawled), {len(lines)} poems")


if __name__ == "__main__":
    main()
