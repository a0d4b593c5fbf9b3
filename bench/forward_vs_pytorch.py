#!/usr/bin/env python3
"""Forward-pass speed of `bertscope bench` against PyTorch eager with
output_attentions=True, measured on this machine in the same run.

    python bench/forward_vs_pytorch.py [--model models/all-MiniLM-L6-v2] [--seq 16,64,256]

Needs torch + transformers, and a release build (cargo build --release).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
from transformers import AutoModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_forward_ms(model_dir, lengths, runs):
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    out = {}
    for n in lengths:
        ids = torch.full((1, n), 1996)
        ids[0, 0], ids[0, -1] = 101, 102
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            for _ in range(3):
                model(input_ids=ids, attention_mask=mask, output_attentions=True)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                res = model(input_ids=ids, attention_mask=mask, output_attentions=True)
                # bring the attentions to plain host memory, as bertscope does
                [a.numpy() for a in res.attentions]
                times.append((time.perf_counter() - t) * 1e3)
        out[n] = statistics.median(times)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--seq", default="16,64,256")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "bertscope"))
    args = ap.parse_args()
    lengths = [int(s) for s in args.seq.split(",")]
    # The CPU and the kernels this run measures (`bertscope cpu`).
    print(subprocess.check_output([args.bin, "cpu"], text=True).rstrip())

    t = time.perf_counter()
    AutoModel.from_pretrained(args.model)
    torch_load_ms = (time.perf_counter() - t) * 1e3
    ours = json.loads(subprocess.check_output(
        [args.bin, "bench", "--model", args.model, "--seq", args.seq,
         "--runs", str(args.runs), "--json", "--device", "cpu"]))
    theirs = torch_forward_ms(args.model, lengths, args.runs)

    print(f"torch threads: {torch.get_num_threads()}, runs: {args.runs} (median)")
    print(f"{'seq':>5} {'bertscope ms':>13} {'pytorch ms':>11} {'ratio':>7}")
    for n in lengths:
        a, b = ours["forward_ms"][str(n)], theirs[n]
        print(f"{n:>5} {a:>13.2f} {b:>11.2f} {a / b:>7.2f}")
    print(f"model load: bertscope {ours['load_ms']:.0f} ms, transformers {torch_load_ms:.0f} ms")
    print("ratio = bertscope / pytorch (below 1 means bertscope is faster)")


if __name__ == "__main__":
    main()
