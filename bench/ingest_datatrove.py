"""datatrove 0.10.1's ingest of the same files loam's bench/ingest.sh reads: WarcReader
(warcio) for WARC/WET, then, for WARC, its Trafilatura extractor (FineWeb's setting).
Prints documents and CPU seconds as one JSON line. Run by bench/ingest.sh.

    python ingest_datatrove.py warc|wet GLOB_DIR GLOB
"""
import json
import resource
import sys
import time

from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import WarcReader


def main():
    kind, data_dir, glob = sys.argv[1:4]
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
    t0 = time.process_time()
    reader = WarcReader(data_dir, glob_pattern=glob, compression="gzip", limit=limit or -1)
    steps = [reader] + ([Trafilatura(favour_precision=True, timeout=1.0)] if kind == "warc" else [])
    docs = None
    for step in steps:
        docs = step.run(docs, rank=0, world_size=1) if docs is not None else step.run(None, 0, 1)
    n, chars = 0, 0
    for d in docs:
        n += 1
        chars += len(d.text)
    cpu = time.process_time() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"docs": n, "chars": chars, "cpu_s": cpu, "peak_rss_mb": rss / 1024}))


if __name__ == "__main__":
    main()
