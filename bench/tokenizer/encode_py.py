"""Encode throughput of a Python peer on the corpus, one thread (the script pins the core):
tool = tokenizers (HF, encode_batch_fast, the same tokenizer.json as loam) or tiktoken (an
Encoding built from the same ranks, with one regex standing in for DeepSeek's pre-tokenizer
Sequence). Writes per-document `<count> <sha256[:10] of ids as u32 LE>` lines like loam's bench.

usage: encode_py.py TOOL TOKENIZER.json CORPUS.jsonl IDS_OUT.txt
"""
import hashlib, json, struct, sys, time

tool, tok_path, corpus, out = sys.argv[1:5]
texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
nbytes = sum(len(t.encode("utf-8")) for t in texts)

if tool == "tokenizers":
    import tokenizers
    tk = tokenizers.Tokenizer.from_file(tok_path)
    start = time.perf_counter()
    ids = [e.ids for e in tk.encode_batch_fast(texts, add_special_tokens=False)]
    secs = time.perf_counter() - start
elif tool == "tiktoken":
    import tiktoken
    j = json.load(open(tok_path, encoding="utf-8"))
    # Byte-level symbols back to bytes (GPT-2's printable mapping, as HF's ByteLevel uses).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    k = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + k); k += 1
    dec = {chr(c): b for b, c in zip(bs, cs)}
    ranks = {bytes(dec[ch] for ch in tok): i for tok, i in j["model"]["vocab"].items()}
    # DeepSeek applies five Split(Isolated) regexes in sequence, then Digits; tiktoken takes
    # one regex. The alternation below tries the same classes in the same order; pieces the
    # Sequence leaves between matches ("gaps") become the last alternatives.
    pre = [p["pattern"]["Regex"] for p in j["pre_tokenizer"]["pretokenizers"] if p["type"] == "Split"]
    letters = pre[1][len("\\s?["):-len("]+")]
    punct = pre[2][len("\\s?["):-len("]+")]
    cjk = pre[4][1:-2]
    pat = (r"[\r\n]|\s?[" + letters + r"]+|\s?[" + punct + r"]+|[" + cjk + r"]+|\p{N}"
           r"|[^\r\n\s\p{N}" + letters + punct + cjk + r"]+|[^\S\r\n]+(?![" + letters + punct + r"])|[^\S\r\n]")
    enc = tiktoken.Encoding("deepseek-llm-ranks", pat_str=pat, mergeable_ranks=ranks, special_tokens={})
    start = time.perf_counter()
    ids = enc.encode_ordinary_batch(texts, num_threads=1)
    secs = time.perf_counter() - start
else:
    sys.exit("tool must be tokenizers or tiktoken")

tokens = 0
with open(out, "w") as f:
    for d in ids:
        tokens += len(d)
        f.write("%d %s\n" % (len(d), hashlib.sha256(struct.pack("<%dI" % len(d), *d)).hexdigest()[:20]))
print(json.dumps({"tool": tool, "docs": len(texts), "bytes": nbytes, "tokens": tokens, "seconds": secs,
                  "mb_per_s": nbytes / 1e6 / secs}))
