#!/usr/bin/env python3
"""Fine-tuning throughput of `bertscope bench --train` against PyTorch running
the same recipe (BertForSequenceClassification, AdamW, clipping, dropout on)
on the same machine in the same run.

    python bench/train_vs_pytorch.py [--model models/all-MiniLM-L6-v2] [--batch-size 32] [--seq 64] [--precision bf16]

With --precision bf16 bertscope takes its linear layers' products in bf16
(`--precision bf16`) and PyTorch runs the step under CPU autocast to bf16.
"""
import argparse
import json
import os
import subprocess
import time

import torch
from transformers import AutoModelForSequenceClassification

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_examples_per_s(model_dir, batch, seq, steps, precision="fp32"):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2).train()
    ids = torch.full((batch, seq), 1996)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    labels = torch.arange(batch) % 2
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm.weight" in n)]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm.weight" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=2e-5)

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "bertscope"))
    args = ap.parse_args()
    # The CPU and the kernels this run measures (`bertscope cpu`).
    print(subprocess.check_output([args.bin, "cpu"], text=True).rstrip())
    ours = json.loads(subprocess.check_output(
        [args.bin, "bench", "--train", "--model", args.model, "--batch-size", str(args.batch_size),
         "--seq", str(args.seq), "--runs", str(args.steps), "--json", "--device", "cpu",
         "--precision", args.precision]))["train_examples_per_s"]
    theirs = torch_examples_per_s(args.model, args.batch_size, args.seq, args.steps, args.precision)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch_size}, seq {args.seq}, "
          f"{args.steps} steps, {args.precision}")
    print(f"bertscope {ours:.1f} examples/s, pytorch {theirs:.1f} examples/s, ratio {ours / theirs:.2f} (above 1: bertscope faster)")


if __name__ == "__main__":
    main()
