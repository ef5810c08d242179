"""Reads every document stage of a loam run with DuckDB, Hugging Face `datasets` and
pyarrow, the way their users do, and prints what each saw as one JSON line
(tests/readers.rs compares it with loam's ledger).

    python3 tests/py/read_corpus.py RUN_DIR HF_CACHE_DIR
"""
import json
import sys

import datasets
import duckdb
import pyarrow.parquet as pq

run, cache = sys.argv[1], sys.argv[2]
datasets.disable_progress_bars()
out = {}
for stage in ["ingest", "filter", "dedup", "quality", "remix"]:
    folder = f"{run}/{stage}"
    con = duckdb.connect()
    glob = f"read_parquet('{folder}/*.parquet')"
    rows = con.execute(f"select count(*) from {glob}").fetchone()[0]
    by_dump = dict(con.execute(f"select dump, count(*) from {glob} group by dump order by dump").fetchall())
    # The glob, as the datasets docs show it; the dropped records by theirs; pyarrow (and
    # so pandas) on the folder itself, which skips `_`- and `.`-prefixed paths.
    files = datasets.load_dataset("parquet", data_files=f"{folder}/*.parquet", split="train", cache_dir=cache)
    dropped = datasets.load_dataset("parquet", data_files=f"{folder}/_dropped/*.parquet", split="train", cache_dir=cache)
    table = pq.read_table(folder)
    out[stage] = {
        "duckdb_rows": rows,
        "duckdb_by_dump": by_dump,
        "pyarrow_folder_rows": table.num_rows,
        "datasets_files_rows": files.num_rows,
        "datasets_dropped_rows": dropped.num_rows,
        "dropped_reasons": sorted(set(dropped["reason"])),
        "columns": files.column_names,
    }
print(json.dumps(out))
