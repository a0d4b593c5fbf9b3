#!/usr/bin/env python3
"""Preparing training data at the tutorial's scale: `bertscope bench --data`
(read, tokenise, encode, length statistics, as `finetune` does it) against
`transformers`' fast tokenizer on the same generated pairs, on the same
machine in the same run.

    python bench/data_prep_vs_hf.py [--rows 120000] [--model models/all-MiniLM-L6-v2]

The pairs are generated (seeded) from the model's own vocabulary: English
words and CJK characters, 8 to 40 words a title, like the tutorial's
claim/headline pairs.
"""
import argparse
import csv
import json
import os
import random
import subprocess
import tempfile
import time

import numpy as np
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = ["agreed", "disagreed", "unrelated"]


def vocabulary(model_dir):
    """Whole words of the vocabulary (no ## pieces, no [specials], no quotes)."""
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
        words = [w.strip() for w in f]
    # No quotes: a TSV field may not hold one unquoted (the two readers would
    # disagree on where such a row ends).
    return [w for w in words if w and not w.startswith("##") and not w.startswith("[") and '"' not in w]


def generate(path, rows, words, seed=7):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id\ttext_a\ttext_b\tlabel\n")
        for i in range(rows):
            a = " ".join(rng.choices(words, k=rng.randint(8, 40)))
            b = " ".join(rng.choices(words, k=rng.randint(8, 40)))
            f.write(f"{i}\t{a}\t{b}\t{rng.choice(LABELS)}\n")


def hf_prepare(model_dir, path, max_length):
    tok = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    start = time.perf_counter()
    a, b, labels = [], [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for row in reader:
            a.append(row[1])
            b.append(row[2])
            labels.append(row[3])
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    enc = tok(a, b, truncation=True, max_length=max_length)
    lengths = np.array([len(ids) for ids in enc["input_ids"]])
    np.percentile(lengths, [50, 90, 95, 99, 100])
    sorted(set(labels))
    return read_s, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--rows", type=int, default=120_000)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "bertscope"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "pairs.tsv")
        generate(path, args.rows, vocabulary(args.model))
        ours = json.loads(subprocess.check_output(
            [args.bin, "bench", "--data", path, "--model", args.model,
             "--max-length", str(args.max_length), "--json"]))
        hf_read, hf_tok = hf_prepare(args.model, path, args.max_length)
    ours_all = ours["read_s"] + ours["tokenize_s"]
    print(f"{args.rows} generated pairs, max length {args.max_length}, {os.cpu_count()} cores")
    print(f"bertscope: read {ours['read_s']:.2f} s + tokenise {ours['tokenize_s']:.2f} s = {ours_all:.2f} s")
    print(f"transformers fast tokenizer: read {hf_read:.2f} s + tokenise {hf_tok:.2f} s = {hf_read + hf_tok:.2f} s")
    print(f"ratio (bertscope time / transformers time): tokenise {ours['tokenize_s'] / hf_tok:.2f}, "
          f"all {ours_all / (hf_read + hf_tok):.2f} (the goal: at most 2)")


if __name__ == "__main__":
    main()
