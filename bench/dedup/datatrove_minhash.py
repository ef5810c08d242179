#!/usr/bin/env python3
"""datatrove 0.10.1's four-stage MinHash dedup with FineWeb's settings (5-grams, 14
buckets x 8 hashes, 64-bit hashes) over a folder of JSONL dumps; removed documents are
written to OUT/removed. Usage: datatrove_minhash.py JSONL_DIR OUT TASKS"""
import sys

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.typeshelper import Languages

src, out, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5)


def reader():
    return JsonlReader(src, recursive=True, glob_pattern="*/*.jsonl.gz")


if __name__ == "__main__":
    LocalPipelineExecutor(
        pipeline=[reader(), MinhashDedupSignature(output_folder=f"{out}/sigs", config=cfg, language=Languages.english)],
        tasks=tasks, workers=tasks, logging_dir=f"{out}/logs/sigs",
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=f"{out}/sigs", output_folder=f"{out}/buckets", config=cfg)],
        tasks=cfg.num_buckets, workers=tasks, logging_dir=f"{out}/logs/buckets",
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=f"{out}/buckets", output_folder=f"{out}/remove_ids", config=cfg)],
        tasks=1, logging_dir=f"{out}/logs/cluster",
    ).run()
    LocalPipelineExecutor(
        pipeline=[
            reader(),
            MinhashDedupFilter(input_folder=f"{out}/remove_ids", exclusion_writer=JsonlWriter(f"{out}/removed")),
            JsonlWriter(f"{out}/kept"),
        ],
        tasks=tasks, workers=tasks, logging_dir=f"{out}/logs/filter",
    ).run()
