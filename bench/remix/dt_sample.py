"""datatrove 0.10.1's SamplerFilter on loam's ingest Parquet: read → sample → Parquet.

usage: dt_sample.py IN_DIR OUT_DIR RATE TASKS
Prints one JSON line: seconds, documents in, kept ids (as a sorted-list hash and count).
"""
import hashlib
import json
import sys
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import SamplerFilter
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter

src, out, rate, tasks = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
LocalPipelineExecutor(
    pipeline=[
        ParquetReader(src, glob_pattern="*.parquet", text_key="text", id_key="id"),
        SamplerFilter(rate=rate, seed=11),
        ParquetWriter(str(out / "kept"), output_filename="${rank}.parquet"),
    ],
    tasks=tasks,
    workers=1,
    logging_dir=str(out / "logs"),
).run()
secs = time.perf_counter() - t
import pyarrow.parquet as pq

ids = sorted(i for p in sorted((out / "kept").glob("*.parquet")) for i in pq.read_table(p, columns=["id"]).column("id").to_pylist())
print(json.dumps({"seconds": secs, "kept": len(ids), "kept_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()}))
