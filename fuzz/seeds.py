"""Seeds for the fuzz targets, cut from real files: the Common Crawl WARC/WET/WAT sample
(../shared/data/crawl) and the demo corpus (data/demo), one record per seed so that each
fits libFuzzer's -max_len; a few whole gzip files; real token shards from a demo run.

    python3 fuzz/seeds.py OUT_DIR [TOKENIZE_DIR]
"""
import glob
import gzip
import os
import sys

out = sys.argv[1]
shards = sys.argv[2] if len(sys.argv) > 2 else None
here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(here)
MAX = 60000


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data[:MAX])


def records(data):
    """WARC records by their version lines (a seed needs no exact framing)."""
    parts = data.split(b"\r\nWARC/1.0\r\n")
    return [p if i == 0 else b"WARC/1.0\r\n" + p for i, p in enumerate(parts)]


crawl = sorted(glob.glob(os.path.join(repo, "../shared/data/crawl/*/*")))
demo = sorted(glob.glob(os.path.join(repo, "data/demo/*/*.warc*.gz")) + glob.glob(os.path.join(repo, "data/demo/*/*/*.warc*.gz")))
n = 0
for path in crawl + demo:
    raw = open(path, "rb").read()
    data = gzip.decompress(raw) if path.endswith(".gz") else raw
    if path.endswith(".gz") and len(raw) <= MAX:
        put("warc", f"whole-{os.path.basename(path)}", raw)
    for i, rec in enumerate(records(data)[:40]):
        n += 1
        put("warc", f"{n:04d}-{os.path.basename(path)}-{i}", rec)
        if i % 8 == 0:
            put("warc", f"{n:04d}-gz", gzip.compress(rec, mtime=0))
        if b"WARC-Type: response" in rec[:2000]:
            head, _, block = rec.partition(b"\r\n\r\n")
            put("http", f"{n:04d}", block)
            put("http", f"{n:04d}-chunked", block.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n", 1))
# Bodies as CC stored them, re-encoded: gzip content coding, a declared charset.
put("http", "gzip", b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/html\r\n\r\n" + gzip.compress(b"<html><p>caf\xc3\xa9</p></html>", mtime=0))
put("http", "latin1", b"HTTP/1.0 200 OK\nContent-Type: text/html; charset=iso-8859-1\n\n<p>caf\xe9</p>")

for path in sorted(glob.glob(os.path.join(repo, "data/demo/*/*.jsonl.gz")) + glob.glob(os.path.join(repo, "data/demo/*/*/*.jsonl.gz")) + glob.glob(os.path.join(repo, "data/quality/*.jsonl.gz"))):
    lines = gzip.decompress(open(path, "rb").read()).split(b"\n")
    for i in range(0, min(len(lines), 40), 4):
        chunk = b"\n".join(lines[i:i + 4])
        put("jsonl", f"{os.path.basename(path)}-{i}", chunk)
    put("jsonl", f"{os.path.basename(path)}-gz", gzip.compress(b"\n".join(lines[:3]), mtime=0))

def trimmed_shard(data, docs):
    """A valid shard of a real one's first `docs` documents (header rewritten to match)."""
    import json
    import struct

    hlen = struct.unpack_from("<I", data, 8)[0]
    h = json.loads(data[12:12 + hlen])
    width = 2 if h["dtype"] == "u16" else 4
    index = struct.unpack_from(f"<{h['n_docs'] + 1}Q", data, h["index_offset"])
    docs = min(docs, h["n_docs"])
    n_tokens = index[docs]
    tokens = data[4096:4096 + n_tokens * width]
    index_offset = 4096 + len(tokens) + (-len(tokens)) % 8
    h.update(n_docs=docs, n_tokens=n_tokens, index_offset=index_offset)
    head = json.dumps(h, separators=(",", ":")).encode()
    out = b"LOAMTOK1" + struct.pack("<I", len(head)) + head
    out += b"\0" * (4096 - len(out)) + tokens + b"\0" * (index_offset - 4096 - len(tokens))
    return out + struct.pack(f"<{docs + 1}Q", *index[:docs + 1])


if shards:
    for path in sorted(glob.glob(os.path.join(shards, "*.tokens")))[:4]:
        data = open(path, "rb").read()
        for docs in (0, 1, 3, 12):
            put("token_shard", f"{os.path.basename(path)}-{docs}", trimmed_shard(data, docs))
targets = ["warc", "http", "jsonl", "token_shard"]
print(" ".join(f"{t}: {len(os.listdir(os.path.join(out, t)))} seeds" for t in targets if os.path.isdir(os.path.join(out, t))))
