#!/usr/bin/env python3
"""Explanation speed of `bertscope explain` against Captum / PyTorch eager on
the same machine in the same run: integrated gradients (50 Gauss–Legendre
points, batched) plus gradient-weighted attention and rollout for one input
of SEQ tokens, and head importance over ROWS labelled pairs.

    python bench/explain_vs_captum.py [--seq 64] [--rows 64] [--runs 3]

Model: the demo MiniLM with the seeded classifier head of the explain
fixture (tests/fixtures/minilm_head). bertscope's times are whole CLI runs
(load included); PyTorch's are the computations alone, model already loaded.
Needs torch, transformers, captum and a release build (cargo build --release).
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
from captum.attr import IntegratedGradients
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertForSequenceClassification

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
HEAD = os.path.join(ROOT, "tests", "fixtures", "minilm_head")
WORDS = ("the claim that the river was wide and the fox jumped over it is "
         "false according to news reports").split()


def model_dir(tmp):
    """MiniLM + the fixture head as a two-shard checkpoint bertscope loads."""
    import shutil
    from safetensors import safe_open
    shutil.copy(os.path.join(HEAD, "config.json"), tmp)
    for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt"]:
        shutil.copy(os.path.join(DEMO, name), tmp)
    shards = {"model-00001-of-00002.safetensors": os.path.join(DEMO, "model.safetensors"),
              "model-00002-of-00002.safetensors": os.path.join(HEAD, "head.safetensors")}
    weight_map = {}
    for shard, src in shards.items():
        os.symlink(src, os.path.join(tmp, shard))
        with safe_open(src, "pt") as f:
            weight_map.update({k: shard for k in f.keys()})
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return tmp


def text_of(tokenizer, seq):
    words = (WORDS * (seq // len(WORDS) + 2))
    n = seq - 2
    while len(tokenizer(" ".join(words[:n]))["input_ids"]) > seq:
        n -= 1
    return " ".join(words[:n])


def bertscope_s(binary, args, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([binary, *args, "--json"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def torch_explain_s(model, enc, runs):
    emb = model.bert.embeddings.word_embeddings(enc["input_ids"]).detach()
    target = int(model(**enc).logits.argmax())

    def f(inputs_embeds):
        n = inputs_embeds.shape[0]
        return model(inputs_embeds=inputs_embeds,
                     attention_mask=enc["attention_mask"].expand(n, -1),
                     token_type_ids=enc["token_type_ids"].expand(n, -1)).logits[:, target]

    ig = IntegratedGradients(f)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        ig.attribute(emb, baselines=torch.zeros_like(emb), n_steps=50,
                     internal_batch_size=50, return_convergence_delta=True)
        out = model(**enc, output_attentions=True)
        for a in out.attentions:
            a.retain_grad()
        out.logits[0, target].backward()
        rel = torch.eye(emb.shape[1])
        for a in out.attentions:
            cam = (a.grad * a).clamp(min=0).mean(1)[0]
            rel = rel + cam @ rel
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def torch_importance_s(model, tokenizer, rows, runs):
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        total = torch.zeros(layers, heads)
        for a, b, label in rows:
            mask = torch.ones(layers, heads, requires_grad=True)
            enc = tokenizer(a, b, truncation=True, max_length=128, return_tensors="pt")
            logits = model(**enc, head_mask=mask).logits
            torch.nn.functional.cross_entropy(logits, torch.tensor([label])).backward()
            total += mask.grad.abs()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "bertscope"))
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    with tempfile.TemporaryDirectory() as tmp:
        mdir = model_dir(tmp)
        tokenizer = AutoTokenizer.from_pretrained(mdir)
        model = BertForSequenceClassification.from_pretrained(
            DEMO, num_labels=3, attn_implementation="eager").eval()
        head = load_file(os.path.join(HEAD, "head.safetensors"))
        with torch.no_grad():
            model.classifier.weight.copy_(head["classifier.weight"])
            model.classifier.bias.copy_(head["classifier.bias"])
        text = text_of(tokenizer, args.seq)
        enc = tokenizer(text, return_tensors="pt")
        n = enc["input_ids"].shape[1]
        labels = ["agreed", "disagreed", "unrelated"]
        rows = [(" ".join(WORDS[i % 5:i % 5 + 12]), " ".join(WORDS[3 + i % 7:15 + i % 7]), i % 3)
                for i in range(args.rows)]
        data = os.path.join(tmp, "rows.tsv")
        with open(data, "w") as f:
            f.write("text_a\ttext_b\tlabel\n")
            f.writelines(f"{a}\t{b}\t{labels[c]}\n" for a, b, c in rows)

        ours = bertscope_s(args.bin, ["explain", "--model", mdir, "--text-a", text], args.runs)
        theirs = torch_explain_s(model, enc, args.runs)
        print(f"explain, {n} tokens: bertscope {ours:.2f} s (whole CLI run), "
              f"Captum+PyTorch {theirs:.2f} s (compute only): {ours / theirs:.2f}x the time")
        ours = bertscope_s(args.bin, ["explain", "--model", mdir, "--head-importance", data],
                           args.runs)
        theirs = torch_importance_s(model, tokenizer, rows, args.runs)
        print(f"head importance, {args.rows} rows: bertscope {ours:.2f} s, "
              f"PyTorch {theirs:.2f} s: {ours / theirs:.2f}x the time")


if __name__ == "__main__":
    main()
