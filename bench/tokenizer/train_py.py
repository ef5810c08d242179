"""BBPE training time of Python `tokenizers` with loam's settings: the DeepSeek LLM
pre-tokenizer, byte-level alphabet, min_frequency 2, the same text files line by line.
Writes the trained tokenizer.json to OUT so the script can compare merges with loam's.

usage: train_py.py DEEPSEEK_TOKENIZER.json VOCAB OUT.json FILE...
"""
import json, sys, time

import tokenizers as t

ds, vocab, out, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
tk = t.Tokenizer(t.models.BPE())
tk.pre_tokenizer = t.Tokenizer.from_file(ds).pre_tokenizer
tr = t.trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, show_progress=False,
                           initial_alphabet=t.pre_tokenizers.ByteLevel.alphabet())
start = time.perf_counter()
tk.train(files, tr)
secs = time.perf_counter() - start
tk.save(out)
print(json.dumps({"tool": "python-tokenizers", "vocab_size": vocab, "seconds": secs}))
