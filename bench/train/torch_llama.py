"""The same LLaMA-style model and training step as loam's trainer, in PyTorch on CPU, for
tokens/s side by side (bench/train.sh). Reads windows from a loam token shard.

usage: torch_llama.py SHARD.tokens N_LAYER D_MODEL N_HEADS N_KV SEQ BATCH STEPS THREADS
prints one JSON line: median tokens/s over the steps after the first 3.
"""
import json, math, struct, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

shard, n_layer, d, h, kvh, seq, batch, steps, threads = sys.argv[1], *map(int, sys.argv[2:])
torch.set_num_threads(threads)
torch.manual_seed(0)

raw = open(shard, "rb").read()
(hlen,) = struct.unpack_from("<I", raw, 8)
hdr = json.loads(raw[12 : 12 + hlen])
tokens = np.frombuffer(raw, dtype={"u16": np.uint16, "u32": np.uint32}[hdr["dtype"]],
                       count=hdr["n_tokens"], offset=hdr["tokens_offset"]).astype(np.int64)
vocab = hdr["padded_vocab_size"]
hd = d // h
ffn = ((8 * d + 2) // 3 + 31) // 32 * 32


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w


def rope(x, cos, sin):  # x: [b, h, s, hd], interleaved pairs as Burn's RotaryEncoding
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.wq, self.wk = nn.Linear(d, h * hd, bias=False), nn.Linear(d, kvh * hd, bias=False)
        self.wv, self.wo = nn.Linear(d, kvh * hd, bias=False), nn.Linear(h * hd, d, bias=False)
        self.w1, self.w3 = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
        self.w2 = nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        n = self.n1(x)
        q = rope(self.wq(n).view(b, s, h, hd).transpose(1, 2), cos, sin)
        k = rope(self.wk(n).view(b, s, kvh, hd).transpose(1, 2), cos, sin)
        v = self.wv(n).view(b, s, kvh, hd).transpose(1, 2)
        k, v = k.repeat_interleave(h // kvh, 1), v.repeat_interleave(h // kvh, 1)
        # Explicit matmul + mask + softmax, as Burn runs attention under autodiff.
        att = (q @ k.transpose(2, 3)) / math.sqrt(hd)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        x = x + self.wo((att @ v).transpose(1, 2).reshape(b, s, h * hd))
        n = self.n2(x)
        return x + self.w2(F.silu(self.w1(n)) * self.w3(n))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block() for _ in range(n_layer))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.006)
        freqs = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(seq).float(), freqs)
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1))

    def forward(self, idx):
        x = self.emb(idx)
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin, self.mask)
        return self.head(self.norm(x))


model = Llama()
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
rng = np.random.default_rng(0)
n_windows = (len(tokens) - 1) // seq
rates, losses = [], []
for step in range(steps):
    starts = rng.integers(0, n_windows, batch) * seq
    w = torch.from_numpy(np.stack([tokens[s : s + seq + 1] for s in starts]))
    t0 = time.perf_counter()
    logits = model(w[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, vocab), w[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    rates.append(batch * seq / (time.perf_counter() - t0))
    losses.append(loss.item())
print(json.dumps({"tool": "pytorch " + torch.__version__, "threads": threads, "tokens_per_s": float(np.median(rates[3:])),
                  "first_loss": losses[0], "last_loss": losses[-1], "steps": steps}))
