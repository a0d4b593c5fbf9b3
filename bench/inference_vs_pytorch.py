#!/usr/bin/env python3
"""Batched inference — a forward with no gradients and no attention maps kept,
as the dataset passes and `predict` run it — `bertscope bench --inference`
against PyTorch in the same run, fp32 and bf16.

    python bench/inference_vs_pytorch.py [--model models/all-MiniLM-L6-v2] [--batch 64] [--seq 128] [--runs 10] [--rounds 3]

PyTorch runs under torch.no_grad: fp32 eager, and bf16 under CPU autocast
(`torch.autocast("cpu", dtype=torch.bfloat16)`), on the same random token ids
shape (batch × seq, every token real). Each side's rate is the median over
--runs timed forwards after warm-up; the two sides alternate --rounds times
(a shared machine's speed drifts from minute to minute), and the reported
rates and ratio are the medians over the rounds (each round's ratio taken
within it). bertscope's bf16 is skipped, with the
reason, on a CPU without AVX-512-BF16. Prints one JSON line with the rates
and the ratios (above 1: bertscope faster), and the CPU.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import torch
from transformers import AutoModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_name():
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def torch_rows_per_s(model_dir, batch, seq, runs, bf16):
    model = AutoModel.from_pretrained(model_dir).eval()
    ids = torch.randint(1000, model.config.vocab_size - 1, (batch, seq), generator=torch.Generator().manual_seed(7))
    mask = torch.ones_like(ids)
    times = []
    with torch.no_grad():
        for i in range(runs + 2):
            start = time.perf_counter()
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    model(input_ids=ids, attention_mask=mask)
            else:
                model(input_ids=ids, attention_mask=mask)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def ours(binary, model_dir, batch, seq, runs, precision):
    done = subprocess.run([binary, "bench", "--inference", "--model", model_dir, "--batch-size", str(batch),
                           "--seq", str(seq), "--runs", str(runs), "--precision", precision, "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None, done.stderr.strip()
    return json.loads(done.stdout)["rows_per_s"], None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3,
                   help="alternate the two sides this many times; the medians are reported")
    p.add_argument("--bertscope", default=os.path.join(ROOT, "target", "release", "bertscope"))
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    cpu = json.loads(subprocess.check_output([a.bertscope, "cpu", "--json"]))
    out = {"cpu": cpu_name(), "threads": os.cpu_count(), "batch": a.batch, "seq": a.seq,
           "torch": torch.__version__, "bf16_kernel": cpu["bf16_kernel"],
           "amx_not_taken_because": cpu["amx_not_taken_because"]}
    out["rounds"] = a.rounds
    for precision in ["fp32", "bf16"]:
        # Alternating rounds, so that a shared machine's slow minutes fall
        # on both sides; each round's ratio is taken within the round.
        ours_rates, theirs_rates, ratios, why = [], [], [], None
        for _ in range(max(1, a.rounds)):
            rate, why = ours(a.bertscope, a.model, a.batch, a.seq, a.runs, precision)
            theirs = torch_rows_per_s(a.model, a.batch, a.seq, a.runs, precision == "bf16")
            theirs_rates.append(theirs)
            if rate is not None:
                ours_rates.append(rate)
                ratios.append(rate / theirs)
        out[f"pytorch_{precision}_rows_per_s"] = round(statistics.median(theirs_rates), 1)
        if not ours_rates:
            out[f"bertscope_{precision}"] = f"skipped: {why}"
            continue
        out[f"bertscope_{precision}_rows_per_s"] = round(statistics.median(ours_rates), 1)
        out[f"ratio_{precision}"] = round(statistics.median(ratios), 3)
        out[f"ratios_{precision}"] = [round(r, 3) for r in ratios]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
