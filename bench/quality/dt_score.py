"""datatrove 0.10.1 over loam's ingest output, in its own process (so its peak RSS is its own).

usage: dt_score.py INGEST_DIR MODEL MODE LOG_DIR [SCORES_JSON]
MODE: read (ParquetReader alone), score (+ FastTextClassifierFilter), collect (+ write the
scores to SCORES_JSON). Prints the seconds the pipeline took.
"""
import json
import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import FastTextClassifierFilter
from datatrove.pipeline.readers import ParquetReader

ingest, model, mode, logs = sys.argv[1:5]
scores = {}


def collect(data, rank=0, world_size=1):
    for doc in data:
        scores[doc.id] = doc.metadata.get("__label__hq")
        yield doc


steps = [ParquetReader(ingest, glob_pattern="part-*.parquet", text_key="text", id_key="id")]
if mode != "read":
    # keep_labels is needed: datatrove 0.10.1 fails with neither keep nor remove labels.
    steps.append(FastTextClassifierFilter(model, keep_labels=("hq", 0.0), newline_replacement=" "))
if mode == "collect":
    steps.append(collect)
t = time.perf_counter()
LocalPipelineExecutor(pipeline=steps, tasks=1, workers=1, logging_dir=logs).run()
print(time.perf_counter() - t)
if mode == "collect":
    json.dump(scores, open(sys.argv[5], "w"))
