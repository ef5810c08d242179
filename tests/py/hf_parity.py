"""Loads a `loam export --format hf` folder with transformers (CPU torch, f32) and compares
it with loam's own outputs for each case (tests/export_hf.rs writes them): AutoTokenizer ids
of the text, logits of the prompt window against loam's (safetensors), and greedy
`generate` against loam's new tokens. Prints one JSON list.

    python3 tests/py/hf_parity.py EXPORT_DIR CASES.json
"""
import json
import sys

import torch
from safetensors.numpy import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

export, cases_path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(export)
model = LlamaForCausalLM.from_pretrained(export, torch_dtype=torch.float32)
model.eval()
out = []
for case in json.load(open(cases_path)):
    prompt = torch.tensor([case["prompt_ids"]], dtype=torch.long)
    mask = torch.ones_like(prompt)
    ref = load_file(case["logits"])["logits"]
    with torch.no_grad():
        logits = model(input_ids=prompt, attention_mask=mask).logits[0].numpy()
        new = len(case["new_ids"])
        gen = model.generate(
            input_ids=prompt,
            attention_mask=mask,
            max_new_tokens=new,
            do_sample=False,
        )
    out.append(
        {
            "tokenizer_ids": tok.encode(case["text"], add_special_tokens=False),
            "max_abs_diff": float(abs(logits - ref).max()),
            "logit_std": float(logits.std()),
            "generated": gen[0, prompt.shape[1]:].tolist(),
        }
    )
print(json.dumps(out))
