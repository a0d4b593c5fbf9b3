#!/usr/bin/env python3
"""Whole fine-tuning runs, as users run them: `bertscope finetune` (load,
read, tokenise, train, save) against a PyTorch script with the same recipe
(BertForSequenceClassification, AdamW with decay groups, linear warm-up and
decay, clipping at 1.0, dropout on, batch padded to its longest row, shuffled
each epoch, `save_pretrained` at the end), on the same machine in the same run.

    python bench/finetune_vs_pytorch.py [--rows 960] [--epochs 1] [--model models/all-MiniLM-L6-v2] [--precision bf16]

With --precision bf16, bertscope runs `finetune --precision bf16` and PyTorch
its forward under CPU autocast to bf16 (the backward follows it).

Two data sets are generated (seeded) from the model's vocabulary: short pairs
(about 25 tokens) and long pairs (about 100 tokens), three labels.
"""
import argparse
import csv
import os
import random
import shutil
import subprocess
import tempfile
import time

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                          get_linear_schedule_with_warmup)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = ["agreed", "disagreed", "unrelated"]
# Words per title: short pairs come to about 25 tokens, long ones to about 100.
SIZES = {"short": (6, 14), "long": (30, 60)}


def vocabulary(model_dir):
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
        words = [w.strip() for w in f]
    return [w for w in words if w.isalpha() and w.isascii() and len(w) > 2]


def generate(path, rows, words, sizes, seed=11):
    rng = random.Random(seed)
    lo, hi = sizes
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id\ttext_a\ttext_b\tlabel\n")
        for i in range(rows):
            a = " ".join(rng.choices(words, k=rng.randint(lo, hi) // 2))
            b = " ".join(rng.choices(words, k=rng.randint(lo, hi) // 2))
            f.write(f"{i}\t{a}\t{b}\t{rng.choice(LABELS)}\n")


def pytorch_finetune(model_dir, path, out, epochs, batch, max_length, precision, seed=42):
    """The notebook's way, timed from the first line to the saved checkpoint."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = list(reader)
    labels = sorted({r["label"] for r in rows})
    enc = tok([r["text_a"] for r in rows], [r["text_b"] for r in rows], truncation=True, max_length=max_length)
    targets = [labels.index(r["label"]) for r in rows]
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels)).train()
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm.weight" in n)]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm.weight" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=2e-5)
    steps = epochs * ((len(rows) + batch - 1) // batch)
    sched = get_linear_schedule_with_warmup(opt, int(0.1 * steps), steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(rows), generator=gen).tolist()
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            features = [{"input_ids": enc["input_ids"][j], "token_type_ids": enc["token_type_ids"][j],
                         "attention_mask": enc["attention_mask"][j]} for j in idx]
            inputs = tok.pad(features, return_tensors="pt")
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model(**inputs, labels=torch.tensor([targets[j] for j in idx])).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return time.perf_counter() - start


def bertscope_finetune(binary, model_dir, path, out, epochs, batch, max_length, precision):
    start = time.perf_counter()
    subprocess.run([binary, "finetune", "--model", model_dir, "--train", path, "--output", out,
                    "--epochs", str(epochs), "--batch-size", str(batch), "--max-length", str(max_length),
                    "--dev-fraction", "0", "--device", "cpu", "--precision", precision],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--rows", type=int, default=960)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "bertscope"))
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = ap.parse_args()
    words = vocabulary(args.model)
    print(f"{args.rows} pairs, {args.epochs} epoch(s), batch {args.batch_size}, max length {args.max_length}, "
          f"torch threads {torch.get_num_threads()}, {args.precision}")
    with tempfile.TemporaryDirectory() as scratch:
        for name, sizes in SIZES.items():
            path = os.path.join(scratch, f"{name}.tsv")
            generate(path, args.rows, words, sizes)
            ours_out, theirs_out = os.path.join(scratch, f"{name}-bertscope"), os.path.join(scratch, f"{name}-torch")
            ours = bertscope_finetune(args.bin, args.model, path, ours_out, args.epochs, args.batch_size,
                                      args.max_length, args.precision)
            theirs = pytorch_finetune(args.model, path, theirs_out, args.epochs, args.batch_size,
                                      args.max_length, args.precision)
            shutil.rmtree(ours_out, ignore_errors=True)
            print(f"{name} pairs: bertscope {ours:.1f} s, pytorch {theirs:.1f} s, "
                  f"time ratio {ours / theirs:.2f} (goal: at most 0.8), speed-up {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
