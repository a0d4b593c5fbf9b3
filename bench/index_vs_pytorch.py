#!/usr/bin/env python3
"""`bertscope index` (every token's hidden state at every layer, stored as
f16) against PyTorch's batched forward of the same rows with
`output_hidden_states`, in the same run; then the index's size against
2 bytes × hidden × layers a token, and `bertscope search`'s own timing.

    python bench/index_vs_pytorch.py [--model models/all-MiniLM-L6-v2] [--rows 1340] [--batch 32]

PyTorch runs its default attention under torch.no_grad in length-sorted
batches of --batch rows, tokenisation included, the model already loaded;
bertscope's time is the whole command (start, model load, tokenising,
writing). The default rows hold about 95,000 tokens.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch
from transformers import AutoModel, AutoTokenizer

from heads_vs_pytorch import rows_file  # the same generated pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_forward(model_dir, path, batch):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    pairs = [l.rstrip("\n").split("\t") for l in open(path, encoding="utf-8")][1:]
    start = time.perf_counter()
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=128)
    order = sorted(range(len(pairs)), key=lambda i: -len(enc["input_ids"][i]))
    with torch.no_grad():
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            feats = tok.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
            states = model(**feats, output_hidden_states=True).hidden_states
            assert len(states) == model.config.num_hidden_layers + 1
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    p.add_argument("--rows", type=int, default=1340)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bertscope", default=os.path.join(ROOT, "target", "release", "bertscope"))
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    with tempfile.TemporaryDirectory() as tmp:
        path, out = os.path.join(tmp, "rows.tsv"), os.path.join(tmp, "index")
        rows_file(a.rows, path)
        start = time.perf_counter()
        done = subprocess.run([a.bertscope, "index", "--model", a.model, "--data", path,
                               "--output", out, "--json"], check=True, capture_output=True)
        ours = time.perf_counter() - start
        manifest = json.loads(done.stdout)
        theirs = torch_forward(a.model, path, a.batch)
        vectors = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".f16"))
        total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        hidden, layers, tokens = manifest["model"]["hidden"], len(manifest["layers"]), manifest["tokens"]
        found = subprocess.run([a.bertscope, "search", "--index", out, "--text-a", "the claim is false",
                                "--token", "2", "--layer", str(manifest["layers"][-1]), "--json"],
                               check=True, capture_output=True)
        search_ms = json.loads(found.stdout)["search_ms"]
    print(json.dumps({
        "rows": a.rows, "tokens": tokens, "layers": layers,
        "bertscope_index_s": round(ours, 2), "pytorch_forward_s": round(theirs, 2),
        "ratio": round(ours / theirs, 3),
        "vector_bytes_per_token": vectors / tokens, "limit_bytes_per_token": 2 * hidden * layers,
        "index_mb": round(total / 1e6, 1), "search_ms": round(search_ms, 2),
    }))


if __name__ == "__main__":
    main()
