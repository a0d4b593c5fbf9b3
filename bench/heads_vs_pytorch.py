#!/usr/bin/env python3
"""`bertscope heads` against PyTorch computing the same seven head statistics
from `output_attentions`, over the same rows, in the same run.

    python bench/heads_vs_pytorch.py [--model models/all-MiniLM-L6-v2] [--rows 10000] [--batch 32]

PyTorch runs eager attention (the only kind that returns the maps) under
torch.no_grad, in length-sorted batches of --batch rows, reducing each batch
on the fly as bertscope does. Prints both times, their ratio and bertscope's
peak resident memory.
"""
import argparse
import json
import os
import random
import resource
import subprocess
import tempfile
import time
import unicodedata

import torch
from transformers import AutoModel, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rows_file(n, path):
    rng = random.Random(7)
    words = open(os.path.join(ROOT, "assets", "demo", "claims-train.tsv"), encoding="utf-8").read().split()
    with open(path, "w", encoding="utf-8") as f:
        f.write("text_a\ttext_b\n")
        for _ in range(n):
            a = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))
            b = " ".join(rng.choice(words) for _ in range(rng.randint(3, 25)))
            f.write(f"{a}\t{b}\n")


def is_punct(t):
    t = t[2:] if t.startswith("##") else t
    return bool(t) and all(unicodedata.category(c).startswith("P") for c in t)


def torch_stats(model_dir, path, batch):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    pairs = [l.rstrip("\n").split("\t") for l in open(path, encoding="utf-8")][1:]
    start = time.perf_counter()
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=128)
    order = sorted(range(len(pairs)), key=lambda i: -len(enc["input_ids"][i]))
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    sums = torch.zeros(7, L, H, dtype=torch.float64)
    with torch.no_grad():
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            feats = tok.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
            att = torch.stack(model(**feats, output_attentions=True).attentions).double()  # L B H S S
            mask = feats["attention_mask"].double()  # B S: real tokens
            seq = mask.shape[1]
            tokens = [tok.convert_ids_to_tokens(enc["input_ids"][i]) + ["[PAD]"] * seq for i in idx]
            sep = torch.tensor([[t == "[SEP]" for t in row[:seq]] for row in tokens], dtype=torch.float64)
            punct = torch.tensor([[is_punct(t) for t in row[:seq]] for row in tokens], dtype=torch.float64)
            q = mask[None, :, None, :]  # the real query positions
            prev = torch.diagonal(att, offset=-1, dim1=-2, dim2=-1)  # query i, key i-1
            nxt = torch.diagonal(att, offset=1, dim1=-2, dim2=-1)    # query i, key i+1
            sums[0] += (att[..., 0] * q).sum((1, 3))
            sums[1] += ((att * sep[None, :, None, None, :]).sum(-1) * q).sum((1, 3))
            sums[2] += ((att * punct[None, :, None, None, :]).sum(-1) * q).sum((1, 3))
            sums[3] += (torch.diagonal(att, dim1=-2, dim2=-1) * q).sum((1, 3))
            sums[4] += (prev * q[..., 1:]).sum((1, 3))
            sums[5] += (nxt * q[..., 1:]).sum((1, 3))
            ent = -(att * torch.log2(att.clamp_min(1e-30))).sum(-1)
            sums[6] += (ent * q).sum((1, 3))
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    p.add_argument("--rows", type=int, default=10000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bertscope", default=os.path.join(ROOT, "target", "release", "bertscope"))
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.tsv")
        rows_file(a.rows, path)
        start = time.perf_counter()
        out = subprocess.run([a.bertscope, "heads", "--model", a.model, "--data", path, "--json"],
                             check=True, capture_output=True)
        ours = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        json.loads(out.stdout)
        theirs = torch_stats(a.model, path, a.batch)
    print(json.dumps({"rows": a.rows, "bertscope_s": round(ours, 2), "pytorch_s": round(theirs, 2),
                      "ratio": round(ours / theirs, 3), "bertscope_peak_rss_mb": round(peak_mb)}))


if __name__ == "__main__":
    main()
