"""Reads a loam run's token shards with nothing but the documented format (struct + json)
and checks them against Python `tokenizers` and `transformers` on the same documents.

usage: check_token_shards.py RUN_DIR UPSTREAM_STAGE
prints one JSON object: documents checked, mismatches (first few), what loaded.
"""
import glob, json, os, struct, sys

import pyarrow.parquet as pq
import tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

run, upstream = sys.argv[1], sys.argv[2]
tok_dir = os.path.join(run, "tokenizer")
tk = tokenizers.Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(tok_dir, "tokenizer.json"))
auto = AutoTokenizer.from_pretrained(tok_dir) if os.path.exists(os.path.join(tok_dir, "tokenizer_config.json")) else fast


def read_shard(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"LOAMTOK1", path
    (hlen,) = struct.unpack_from("<I", data, 8)
    h = json.loads(data[12 : 12 + hlen])
    code = {"u16": "H", "u32": "I"}[h["dtype"]]
    toks = struct.unpack_from("<%d%s" % (h["n_tokens"], code), data, h["tokens_offset"])
    idx = struct.unpack_from("<%dQ" % (h["n_docs"] + 1), data, h["index_offset"])
    assert len(data) == h["index_offset"] + 8 * (h["n_docs"] + 1), path
    return h, [list(toks[idx[i] : idx[i + 1]]) for i in range(h["n_docs"])]


checked, bad, dtypes = 0, [], set()
for src in sorted(glob.glob(os.path.join(run, upstream, "*.parquet"))):
    stem = os.path.basename(src)[: -len(".parquet")]
    h, docs = read_shard(os.path.join(run, "tokenize", stem + ".tokens"))
    dtypes.add(h["dtype"])
    texts = pq.read_table(src, columns=["text"]).column("text").to_pylist()
    assert len(texts) == len(docs) == h["n_docs"], (src, len(texts), len(docs))
    for i, (text, stored) in enumerate(zip(texts, docs)):
        ids = tk.encode(text, add_special_tokens=False).ids
        want = ids + [h["eos_id"]]
        if h.get("bos_id") is not None:
            want = [h["bos_id"]] + want
        same = (
            stored == want
            and fast(text, add_special_tokens=False)["input_ids"] == ids
            and auto(text, add_special_tokens=False)["input_ids"] == ids
            and tk.decode(ids, skip_special_tokens=False) == text
        )
        checked += 1
        if not same and len(bad) < 5:
            bad.append({"file": src, "row": i, "stored": stored[:20], "python": want[:20]})
print(json.dumps({"documents": checked, "mismatches": bad, "dtypes": sorted(dtypes),
                  "auto_class": type(auto).__name__, "eos_token": auto.eos_token}))
