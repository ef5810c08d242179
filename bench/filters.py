"""loam's filter rules beside datatrove 0.10.1, on the same English documents.

Builds the document set from real text (bench/filters.sh calls this in datatrove's venv):
  - the demo corpus (data/demo: simulated pages over real text, the genuine CC-MAIN-2014-35
    WARC/WET), through `loam ingest`;
  - the 127 en-US pages of the Debian Administrator's Handbook (../shared/data/html), wrapped
    as WARC responses and extracted by `loam ingest`;
  - paragraph windows (1-12 paragraphs) of the State of the Union addresses and Moby-Dick.
`loam filter` labels their language; documents fastText calls English with score >= 0.65 go
to both rule chains (GopherRepetition -> GopherQuality -> C4(no terminal-punct rule) ->
FineWeb). Prints agreement, disagreements by class with an example each, CPU per document.
"""
import json, random, subprocess, sys, tempfile, collections
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def warc_record(kind, uri, body):
    head = f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2022-09-22T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{abs(hash(uri)):032x}>\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body + b"\r\n\r\n"


def main():
    loam, rules, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    src = work / "src"
    src.mkdir(exist_ok=True)
    with open(src / "handbook-en.warc", "wb") as f:
        for p in sorted((SHARED / "html/debian-handbook/en-US").glob("*.html")):
            html = p.read_bytes()
            http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n" + html
            f.write(warc_record("response", f"https://debian-handbook.info/browse/stable/{p.name}", http))
    with open(src / "windows.jsonl", "w") as f:
        n = 0
        for p in sorted((SHARED / "text/sotu").glob("*.txt")) + sorted((SHARED / "text/moby-dick").glob("chapter_*.txt")):
            paras = [x.strip() for x in p.read_text().replace("\n\n", "\n").split("\n") if x.strip()]
            for _ in range(6):
                k = rng.randint(1, min(12, len(paras)))
                s = rng.randint(0, len(paras) - k)
                f.write(json.dumps({"id": f"{p.stem}-{n}", "text": "\n".join(paras[s:s + k])}) + "\n")
                n += 1
    cfg = work / "bench.toml"
    cfg.write_text(f"""[run]
dir = "{work}/run"
shards = 2
[[dumps]]
name = "DEMO"
inputs = ["{REPO}/data/demo/SIM-2024-10", "{REPO}/data/demo/SIM-2024-18", "{REPO}/data/demo/SIM-2024-26", "{REPO}/data/demo/CC-MAIN-2014-35/*.warc.gz", "{REPO}/data/demo/CC-MAIN-2014-35/*.wet.gz"]
[[dumps]]
name = "BENCH"
inputs = ["{src}"]
[filter]
lid_model = "{REPO}/data/lid/lid.176.ftz"
languages = []
min_language_score = 0.0
""")
    subprocess.run([str(loam), "run", str(cfg), "--force"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    texts = {r["id"]: r["text"] for r in pq.read_table(work / "run/ingest").to_pylist()}
    lang = {}
    for d in ("run/filter", "run/filter/_dropped"):
        for r in pq.read_table(work / d, columns=["id", "language", "language_score"]).to_pylist():
            lang[r["id"]] = (r["language"], r["language_score"])
    ids = sorted(i for i, (l, s) in lang.items() if l == "en" and s >= 0.65)
    docs = [texts[i] for i in ids]
    (work / "docs.bin").write_text("\0".join(docs), encoding="utf-8")
    chars = sum(len(d) for d in docs)
    print(f"{len(docs)} English documents (of {len(texts)} ingested), mean {chars / len(docs):.0f} characters")

    dt = subprocess.run([sys.executable, str(REPO / "bench/filters_datatrove.py"), str(work / "docs.bin")], check=True, capture_output=True, text=True)
    lo = subprocess.run([str(rules), str(work / "docs.bin"), "--repeat", "3"], check=True, capture_output=True, text=True)
    dt_rows = [l.split("\t") for l in dt.stdout.split("\n")[:len(docs)]]
    lo_rows = [l.split("\t") for l in lo.stdout.split("\n")[:len(docs)]]
    dt_dec, lo_dec = [r[0] for r in dt_rows], [r[0] for r in lo_rows]
    dt_s, lo_s = [float(r[1]) for r in dt_rows], [float(r[1]) for r in lo_rows]
    dt_t, lo_t = json.loads(dt.stderr.strip().splitlines()[-1]), json.loads(lo.stderr.strip().splitlines()[-1])

    def norm_dt(x):  # datatrove "family:reason" -> loam's reason name
        if x == "keep":
            return x
        fam, reason = x.split(":", 1)
        return reason if fam == "gopher" else f"{fam}_{reason}"

    same_keep = sum((a == "keep") == (b == "keep") for a, b in zip(dt_dec, lo_dec))
    same_reason = sum(norm_dt(a) == b for a, b in zip(dt_dec, lo_dec))
    kept = sum(a == "keep" for a in dt_dec)
    print(f"datatrove keeps {kept}, loam keeps {sum(b == 'keep' for b in lo_dec)}")
    print(f"same keep/drop decision: {same_keep}/{len(docs)} = {100 * same_keep / len(docs):.2f}%")
    print(f"same first reason:       {same_reason}/{len(docs)} = {100 * same_reason / len(docs):.2f}%")
    classes = collections.Counter()
    example = {}
    for i, (a, b) in enumerate(zip(dt_dec, lo_dec)):
        if norm_dt(a) != b:
            classes[(norm_dt(a), b)] += 1
            example.setdefault((norm_dt(a), b), ids[i])
    for (a, b), n in classes.most_common():
        print(f"  {n:4}  datatrove {a:34} loam {b:34} e.g. {example[(a, b)]}")
    by_reason = collections.Counter(norm_dt(a) for a in dt_dec)
    print("datatrove decisions:", dict(by_reason.most_common()))
    ratio = dt_t["seconds_per_doc"] / lo_t["seconds_per_doc"]
    print(f"CPU per document, rules only: datatrove {1000 * dt_t['seconds_per_doc']:.3f} ms, loam {1000 * lo_t['seconds_per_doc']:.4f} ms -> loam uses {ratio:.0f}x less")
    print("by document length (characters):")
    for lo_len, hi_len in [(0, 1500), (1500, 5000), (5000, 20000), (20000, 10**9)]:
        idx = [i for i, d in enumerate(docs) if lo_len <= len(d) < hi_len]
        if idx:
            a, b = sum(dt_s[i] for i in idx) / len(idx), sum(lo_s[i] for i in idx) / len(idx)
            print(f"  {lo_len:>6}-{hi_len if hi_len < 10**9 else 'inf':<6} {len(idx):5} docs  datatrove {1000 * a:8.3f} ms  loam {1000 * b:7.4f} ms  {a / b:5.0f}x")
    per_15kb = 1500 / (chars / len(docs))
    print(f"  per 1.5 KB of text: datatrove {1000 * dt_t['seconds_per_doc'] * per_15kb:.3f} ms, loam {1000 * lo_t['seconds_per_doc'] * per_15kb:.4f} ms")


if __name__ == "__main__":
    main()
