#!/usr/bin/env python3
"""The Python half of scripts/gpu-check.sh: seeded random-weight checkpoints
made with `transformers`, and bertscope compared with `transformers`/PyTorch
on the same device.

    python3 scripts/gpu_check.py models --work W --files KIT/model-files --scale full|small
    python3 scripts/gpu_check.py parity|steps|speed|e2e --work W --bin BIN --device cuda|cpu --scale full|small [--demo DIR]

Each part prints what it compared and its numbers; lines starting with
"SUMMARY " are collected into gpu-check.sh's final summary. Exit status: 0 ran
and within tolerance, 1 ran and outside tolerance, 2 could not run.
Works with transformers 4.4x and 5.x.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

import torch
from transformers import (AutoModel, AutoModelForSequenceClassification,
                          AutoTokenizer, BertConfig,
                          BertForSequenceClassification)

# The shapes: MiniLM's and BERT-base's on the GPU; small ones for the CPU dry run.
SHAPES = {
    "full": {
        "minilm": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
        "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    },
    "small": {
        "minilm": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128),
        "base": dict(num_hidden_layers=2, hidden_size=96, num_attention_heads=4, intermediate_size=192),
    },
}
SEEDS = {"minilm": 1, "base": 2}
LABELS = ["agreed", "disagreed", "unrelated"]  # the demo data's, sorted (bertscope's order)
TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
CONFIG_KEYS = ["vocab_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
               "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps",
               "pad_token_id", "position_embedding_type"]

# The CPU tests' tolerances: tests/parity.rs (ATTENTION_TOL, SCORE_TOL) and
# tests/train.rs (loss 2e-5, learning rate 1e-12, weights 2e-5 after the steps;
# attention.self.key.bias within lr * steps * 2, its exact gradient being zero).
ATTENTION_TOL = 1e-5
SCORE_TOL = 1e-5
LOSS_TOL = 2e-5
LR_TOL = 1e-12
WEIGHT_TOL = 2e-5

PARITY_INPUTS = [
    ("The animal didn't cross the street because it was too tired.", None),
    ("a famous singer has died in a car crash",
     "Fact check: it is false that a famous singer has died in a car crash"),
    (" ".join(["the quick brown fox jumps over the lazy dog"] * 6), "a lazy dog " * 8),
]


def summary(line):
    print("SUMMARY " + line, flush=True)


def say(line=""):
    print(line, flush=True)


def no_tf32():
    """Full fp32 matrix products in PyTorch (bertscope/candle uses no TF32 either)."""
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_dir(work, name):
    return os.path.join(work, "models", name)


# ---------------------------------------------------------------- checkpoints

def spread_weights(model, seed, gain=1.5):
    """Seeded weights wider than BERT's init (std 0.02 gives flat attention):
    matrices N(0, gain²/fan_in), so attention scores have a spread of ~gain²."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * (gain / math.sqrt(p.shape[1])))
            elif "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def cmd_models(args):
    with open(os.path.join(args.files, "config.json")) as f:
        carried = json.load(f)
    base = {k: carried[k] for k in CONFIG_KEYS if k in carried}
    os.makedirs(os.path.join(args.work, "models"), exist_ok=True)
    for name, shape in SHAPES[args.scale].items():
        t = time.perf_counter()
        torch.manual_seed(SEEDS[name])
        cfg = BertConfig(**base, **shape, id2label=dict(enumerate(LABELS)),
                         label2id={l: i for i, l in enumerate(LABELS)})
        model = BertForSequenceClassification(cfg)
        spread_weights(model, SEEDS[name])
        targets = [(model, f"{name}-cls")]
        if name == "base":  # bench --train adds its own head: a checkpoint without one
            targets.append((model.bert, f"{name}-nohead"))
        for m, sub in targets:
            d = model_dir(args.work, sub)
            shutil.rmtree(d, ignore_errors=True)
            m.save_pretrained(d)
            for f in TOKENIZER_FILES:
                shutil.copy(os.path.join(args.files, f), d)
        n = sum(p.numel() for p in model.parameters())
        say(f"{name}-cls: {shape}, vocab {cfg.vocab_size}, {n / 1e6:.1f}M parameters, "
            f"labels {LABELS}, seed {SEEDS[name]} ({time.perf_counter() - t:.1f} s)")
    summary(f"checkpoints ({args.scale} shapes): " + ", ".join(
        f"{n} {s['num_hidden_layers']}x{s['hidden_size']}/{s['num_attention_heads']}h/{s['intermediate_size']}"
        for n, s in SHAPES[args.scale].items()))
    return 0


# ---------------------------------------------------------------- bertscope

def bertscope(args, *cli, timeout=300):
    """Run the binary; its stdout's last line parsed as JSON."""
    t = time.perf_counter()
    res = subprocess.run([args.bin, *cli], capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t
    if res.returncode != 0:
        err = res.stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"bertscope {cli[0]} exited {res.returncode}: " + " | ".join(err))
    lines = [l for l in res.stdout.splitlines() if l.strip()]
    if not lines:
        raise RuntimeError(f"bertscope {cli[0]}: no output")
    return json.loads(lines[-1]), seconds, res.stderr


def load_hf(d, device, classifier=True):
    cls = AutoModelForSequenceClassification if classifier else AutoModel
    return cls.from_pretrained(d, attn_implementation="eager").float().to(device)


# ---------------------------------------------------------------- parity

def cmd_parity(args):
    device = torch.device(args.device)
    no_tf32()
    worst = {"attention": 0.0, "score": 0.0}
    failures, cases = [], 0
    for name in ("minilm-cls", "base-cls"):
        d = model_dir(args.work, name)
        tok = AutoTokenizer.from_pretrained(d)
        model = load_hf(d, device).eval()
        for text_a, text_b in PARITY_INPUTS:
            enc = tok(text_a, text_b, return_tensors="pt", truncation=True, max_length=512).to(device)
            with torch.no_grad():
                out = model(**enc, output_attentions=True)
            want_att = torch.stack(out.attentions)[:, 0].float().cpu()  # [layer, head, q, k]
            want_prob = out.logits[0].float().softmax(-1).cpu()
            cli = ["--model", d, "--text-a", text_a, "--device", args.device, "--json"]
            if text_b is not None:
                cli += ["--text-b", text_b]
            label = f"{name} [{enc['input_ids'].shape[1]} tokens{', pair' if text_b else ''}]"
            try:
                att, s_att, _ = bertscope(args, "attention", *cli)
                cls, s_cls, _ = bertscope(args, "classify", *cli)
            except Exception as e:  # noqa: BLE001 - reported, and the next case runs
                failures.append(f"{label}: {e}")
                say(f"FAILED {label}: {e}")
                continue
            cases += 1
            ids_equal = att["input_ids"] == enc["input_ids"][0].tolist()
            got_att = torch.tensor(att["attentions"], dtype=torch.float32)
            if got_att.shape != want_att.shape:
                failures.append(f"{label}: attention shape {list(got_att.shape)} vs {list(want_att.shape)}")
                say(f"FAILED {failures[-1]}")
                continue
            d_att = (got_att - want_att).abs().max().item()
            probs = {p["label"]: p["score"] for p in cls["predictions"]}
            id2label = model.config.id2label
            d_score = max(abs(probs[id2label[i]] - want_prob[i].item()) for i in range(len(want_prob)))
            worst["attention"] = max(worst["attention"], d_att)
            worst["score"] = max(worst["score"], d_score)
            ok = ids_equal and d_att < ATTENTION_TOL and d_score < SCORE_TOL
            say(f"{'ok    ' if ok else 'FAILED'} {label}: token ids {'equal' if ids_equal else 'DIFFER'}, "
                f"attention max |diff| {d_att:.2e} (tol {ATTENTION_TOL:g}), "
                f"class probabilities max |diff| {d_score:.2e} (tol {SCORE_TOL:g}); "
                f"bertscope {s_att:.1f} s + {s_cls:.1f} s per call (load included)")
            if not ok:
                failures.append(label)
        del model
    verdict = "PASS" if not failures and cases else "FAIL"
    summary(f"parity on {args.device} vs transformers {verdict}: {cases} inputs x 2 shapes, "
            f"attention max |diff| {worst['attention']:.2e} (tol {ATTENTION_TOL:g}), "
            f"probabilities max |diff| {worst['score']:.2e} (tol {SCORE_TOL:g})")
    return 0 if verdict == "PASS" else (1 if cases else 2)


# ---------------------------------------------------------------- optimiser steps

def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    return rows


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("id\ttext_a\ttext_b\tlabel\n")
        for i, r in enumerate(rows):
            f.write(f"s{i}\t{r['text_a']}\t{r['text_b']}\t{r['label']}\n")


def decay_groups(model, weight_decay):
    """bertscope's (src/train/optim.rs) and the Trainer's groups: no decay for
    biases and LayerNorm weights."""
    named = list(model.named_parameters())
    decay = [p for n, p in named if not ("bias" in n or "LayerNorm.weight" in n)]
    no_decay = [p for n, p in named if "bias" in n or "LayerNorm.weight" in n]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def linear_schedule(warmup, total):
    """transformers' get_linear_schedule_with_warmup (= train::optim::linear_schedule)."""
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


def encode(tok, rows, device, max_length=128):
    enc = tok([r["text_a"] for r in rows], [r["text_b"] for r in rows], padding=True,
              truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def torch_steps(d, rows, batch, steps, lr, weight_decay, warmup_ratio, device):
    """The same optimiser steps in PyTorch: dropout off, AdamW in two groups,
    linear warm-up/decay, clipping at 1.0 (tests/fixtures/make_fixtures.py's recipe)."""
    tok = AutoTokenizer.from_pretrained(d)
    model = load_hf(d, device).eval()  # dropout off, as --dropout 0
    warmup = math.ceil(steps * warmup_ratio)  # src/train/run_loop.rs
    opt = torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(warmup, steps))
    losses, lrs, norms = [], [], []
    for step in range(steps):
        chunk = rows[step * batch:(step + 1) * batch]
        enc = encode(tok, chunk, device)
        labels = torch.tensor([model.config.label2id[r["label"]] for r in chunk], device=device)
        opt.zero_grad()
        loss = model(**enc, labels=labels).loss
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)))
        lrs.append(sched.get_last_lr()[0])
        losses.append(float(loss))
        opt.step()
        sched.step()
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items() if "position_ids" not in k}
    return state, losses, lrs, norms, warmup


def cmd_steps(args):
    from safetensors.torch import load_file
    device = torch.device(args.device)
    no_tf32()
    batch = 8 if args.scale == "full" else 4
    steps, lr, wd, warmup_ratio = 2, 1e-3, 0.01, 0.1
    rows = read_tsv(os.path.join(args.demo, "claims-train.tsv"))[:batch * steps]
    tsv = os.path.join(args.work, "steps.tsv")
    write_tsv(tsv, rows)
    say(f"data: the first {len(rows)} rows of claims-train.tsv, batch {batch}, {steps} steps, "
        f"lr {lr:g}, weight decay {wd:g}, warm-up ratio {warmup_ratio:g}, clip 1.0, dropout 0, no shuffle")
    verdicts = []
    for name in ("minilm-cls", "base-cls"):
        d = model_dir(args.work, name)
        out = os.path.join(args.work, f"steps-{name}")
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(out + ".partial", ignore_errors=True)
        try:
            report, seconds, _ = bertscope(
                args, "finetune", "--model", d, "--train", tsv, "--output", out,
                "--device", args.device, "--epochs", "1", "--max-steps", str(steps), "--no-shuffle",
                "--dropout", "0", "--batch-size", str(batch), "--lr", str(lr), "--weight-decay", str(wd),
                "--warmup-ratio", str(warmup_ratio), "--max-grad-norm", "1.0", "--save-last", "--json")
            got = load_file(os.path.join(out, "model.safetensors"))
        except Exception as e:  # noqa: BLE001
            say(f"FAILED {name}: {e}")
            verdicts.append(f"{name} FAILED (bertscope did not run)")
            continue
        want, losses, lrs, norms, warmup = torch_steps(d, rows, batch, steps, lr, wd, warmup_ratio, device)
        before = load_file(os.path.join(d, "model.safetensors"))
        history = report.get("history", [])
        ok = len(history) == steps
        for i in range(steps):
            if i >= len(history):
                say(f"  step {i}: missing from bertscope's report")
                continue
            dl, dlr = abs(history[i]["loss"] - losses[i]), abs(history[i]["lr"] - lrs[i])
            ok &= dl < LOSS_TOL and dlr < LR_TOL
            say(f"  step {i}: loss bertscope {history[i]['loss']:.6f} torch {losses[i]:.6f} "
                f"(|diff| {dl:.1e}, tol {LOSS_TOL:g}); lr {history[i]['lr']:.3e} vs {lrs[i]:.3e}; "
                f"torch grad norm {norms[i]:.4f}")
        worst, worst_name, kb_worst, moved = 0.0, "", 0.0, 0.0
        over, missing = [], [k for k in want if k not in got]
        kb_tol = lr * steps * 2
        for k, w in want.items():
            if k not in got:
                continue
            g = got[k].float()
            if g.shape != w.shape:
                over.append(f"{k}: shape {list(g.shape)} vs {list(w.shape)}")
                continue
            diff = (g - w).abs().max().item()
            if k in before:
                moved = max(moved, (w - before[k].float()).abs().max().item())
            if k.endswith("attention.self.key.bias"):
                kb_worst = max(kb_worst, diff)
                if diff >= kb_tol:
                    over.append(f"{k}: {diff:.2e}")
                continue
            if diff > worst:
                worst, worst_name = diff, k
            if diff >= WEIGHT_TOL:
                n_over = int(((g - w).abs() >= WEIGHT_TOL).sum())
                over.append(f"{k}: max |diff| {diff:.2e}, {n_over} of {w.numel()} elements over {WEIGHT_TOL:g}")
        ok &= not over and not missing
        say(f"{'ok    ' if ok else 'FAILED'} {name}: {len(want) - len(missing)} tensors compared after "
            f"{steps} steps (warm-up {warmup}); max |diff| {worst:.2e} in {worst_name} (tol {WEIGHT_TOL:g}); "
            f"key biases {kb_worst:.2e} (tol lr*steps*2 = {kb_tol:g}); largest weight change {moved:.2e}; "
            f"bertscope finetune {seconds:.1f} s")
        for line in over[:10] + [f"missing in bertscope's checkpoint: {k}" for k in missing[:5]]:
            say(f"  over tolerance: {line}")
        verdicts.append(f"{name} {'PASS' if ok else 'FAIL'} (weights max |diff| {worst:.1e})")
    failed = any("PASS" not in v for v in verdicts) or not verdicts
    summary(f"{steps} optimiser steps on {args.device} vs PyTorch AdamW: " + "; ".join(verdicts))
    ran = any("did not run" not in v for v in verdicts)
    return 0 if not failed else (1 if ran else 2)


# ---------------------------------------------------------------- speed

def torch_forward_ms(d, device, batch, seq, runs):
    model = load_hf(d, device, classifier=False).eval()
    ids = torch.full((batch, seq), 1996, device=device)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    times = []
    with torch.inference_mode():
        for i in range(3 + runs):
            sync(device)
            t = time.perf_counter()
            res = model(input_ids=ids, attention_mask=mask, output_attentions=True)
            [a.cpu() for a in res.attentions]  # to host memory, as bertscope does
            if i >= 3:
                times.append((time.perf_counter() - t) * 1e3)
    del model, res
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return statistics.median(times)


def torch_train_examples_per_s(d, device, batch, seq, steps):
    """bench/train_vs_pytorch.py's recipe: 2 labels, dropout on, AdamW in two
    groups, lr 2e-5, clipping; one warm-up step."""
    model = AutoModelForSequenceClassification.from_pretrained(
        d, num_labels=2, attn_implementation="eager").float().to(device).train()
    ids = torch.full((batch, seq), 1996, device=device)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    labels = torch.arange(batch, device=device) % 2
    opt = torch.optim.AdamW(decay_groups(model, 0.01), lr=2e-5)

    def step():
        opt.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    rate = steps * batch / (time.perf_counter() - start)
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rate


def cmd_speed(args):
    device = torch.device(args.device)
    no_tf32()
    full = args.scale == "full"
    seq, batch = (128, 32) if full else (32, 4)
    runs, steps = (20, 10) if full else (3, 2)
    d = model_dir(args.work, "base-nohead")
    shape = SHAPES[args.scale]["base"]
    say(f"model: BERT-base shape {shape} (random weights), fp32 (no TF32) on both sides, "
        f"PyTorch eager (attn_implementation='eager')")
    if not full:
        say("(dry run: small shapes and few runs; these timings are no benchmark)")
    lines, ok = [], True
    # Forward + attentions: `bertscope bench` is batch 1.
    ours_ms = None
    try:
        res, _, _ = bertscope(args, "bench", "--model", d, "--seq", str(seq), "--runs", str(runs),
                              "--device", args.device, "--json")
        ours_ms = res["forward_ms"][str(seq)]
    except Exception as e:  # noqa: BLE001
        say(f"FAILED bertscope bench: {e}")
        ok = False
    theirs_ms = torch_forward_ms(d, device, 1, seq, runs)
    theirs_batch_ms = torch_forward_ms(d, device, batch, seq, runs)
    say(f"forward + all attentions copied to host, batch 1 x seq {seq}, median of {runs} after 3 warm-ups:")
    if ours_ms is not None:
        r = theirs_ms / ours_ms
        say(f"  bertscope {ours_ms:.2f} ms, PyTorch {theirs_ms:.2f} ms: speed ratio {r:.2f} "
            f"(PyTorch time / bertscope time; goal >= 1.0: {'met' if r >= 1.0 else 'NOT met'})")
        lines.append(f"forward b1 x {seq}: {r:.2f}x PyTorch ({ours_ms:.1f} vs {theirs_ms:.1f} ms)")
    else:
        say(f"  bertscope FAILED, PyTorch {theirs_ms:.2f} ms")
    say(f"  (PyTorch at batch {batch} x seq {seq}: {theirs_batch_ms:.1f} ms, "
        f"{batch * 1e3 / theirs_batch_ms:.0f} examples/s; bertscope has no batched forward bench)")
    # Fine-tuning steps: forward, backward, clipping, AdamW.
    ours_rate = None
    try:
        res, _, _ = bertscope(args, "bench", "--train", "--model", d, "--seq", str(seq),
                              "--batch-size", str(batch), "--runs", str(steps), "--device", args.device, "--json")
        ours_rate = res["train_examples_per_s"]
    except Exception as e:  # noqa: BLE001
        say(f"FAILED bertscope bench --train: {e}")
        ok = False
    theirs_rate = torch_train_examples_per_s(d, device, batch, seq, steps)
    say(f"fine-tuning (2-label head, dropout 0.1 on, AdamW two groups, clip 1.0), batch {batch} x seq {seq}, "
        f"{steps} steps after 1 warm-up:")
    if ours_rate is not None:
        r = ours_rate / theirs_rate
        say(f"  bertscope {ours_rate:.1f} examples/s, PyTorch {theirs_rate:.1f} examples/s: ratio {r:.2f} "
            f"(goal >= 1.0: {'met' if r >= 1.0 else 'NOT met'})")
        lines.append(f"fine-tuning b{batch} x {seq}: {r:.2f}x PyTorch ({ours_rate:.0f} vs {theirs_rate:.0f} ex/s)")
    else:
        say(f"  bertscope FAILED, PyTorch {theirs_rate:.1f} examples/s")
    if device.type == "cuda":
        say(f"GPU memory peak (PyTorch side): {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    summary(f"speed on {args.device}, BERT-base shape: " + ("; ".join(lines) if lines else "bertscope FAILED"))
    return 0 if ok else 2


# ---------------------------------------------------------------- end to end

def torch_finetune(d, train_rows, dev_rows, device, batch, lr, epochs, out):
    """PyTorch doing `finetune` by hand: same recipe, shuffled batches, dropout on."""
    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(d)
    model = load_hf(d, device).train()
    steps = math.ceil(len(train_rows) / batch) * epochs
    opt = torch.optim.AdamW(decay_groups(model, 0.01), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(math.ceil(0.1 * steps), steps))
    g = torch.Generator().manual_seed(42)
    for _ in range(epochs):
        order = torch.randperm(len(train_rows), generator=g).tolist()
        for i in range(0, len(order), batch):
            chunk = [train_rows[j] for j in order[i:i + batch]]
            enc = encode(tok, chunk, device)
            labels = torch.tensor([model.config.label2id[r["label"]] for r in chunk], device=device)
            opt.zero_grad()
            model(**enc, labels=labels).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(dev_rows), 64):
            chunk = dev_rows[i:i + 64]
            pred = model(**encode(tok, chunk, device)).logits.argmax(-1).tolist()
            correct += sum(model.config.id2label[p] == r["label"] for p, r in zip(pred, chunk))
    model.save_pretrained(out)
    sync(device)
    return time.perf_counter() - t, correct / max(1, len(dev_rows))


def cmd_e2e(args):
    device = torch.device(args.device)
    no_tf32()
    d = model_dir(args.work, "minilm-cls")
    train, dev = os.path.join(args.demo, "claims-train.tsv"), os.path.join(args.demo, "claims-dev.tsv")
    batch, lr, epochs = 16, 1e-4, 1
    out = os.path.join(args.work, "e2e")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out + ".partial", ignore_errors=True)
    say(f"bertscope finetune --device {args.device} on the demo pairs (claims-train.tsv, dev claims-dev.tsv), "
        f"MiniLM shape, random weights: {epochs} epoch, batch {batch}, lr {lr:g}")
    try:
        report, wall, stderr = bertscope(
            args, "finetune", "--model", d, "--train", train, "--dev", dev, "--output", out,
            "--device", args.device, "--epochs", str(epochs), "--batch-size", str(batch), "--lr", str(lr),
            "--json", timeout=240)
    except Exception as e:  # noqa: BLE001
        say(f"FAILED: {e}")
        summary(f"end-to-end finetune on {args.device}: FAILED ({e})"[:400])
        return 2
    for line in stderr.splitlines():
        if line.startswith(("training on", "data:", "epoch", "saved", "warning")):
            say(f"  | {line.strip()}")
    dev_m = (report.get("epochs") or [{}])[-1].get("dev") or {}
    acc = dev_m.get("accuracy")
    acc_text = f"{acc * 100:.1f}%" if acc is not None else "n/a"
    saved = os.path.isfile(os.path.join(out, "model.safetensors"))
    say(f"bertscope: {wall:.1f} s wall (process start, load, tokenise, train, dev eval, save), "
        f"{report.get('steps')} steps, {report.get('train_examples_per_s', 0):.1f} examples/s while training, "
        f"dev accuracy {acc_text} (random weights: only the run matters), checkpoint "
        f"{'saved' if saved else 'MISSING'}")
    rows, dev_rows = read_tsv(train), read_tsv(dev)
    try:
        t_wall, t_acc = torch_finetune(d, rows, dev_rows, device, batch, lr, epochs, out + "-torch")
        say(f"PyTorch, same recipe by hand in this process (torch already imported): {t_wall:.1f} s, "
            f"dev accuracy {t_acc * 100:.1f}%")
        torch_text = f", PyTorch {t_wall:.1f} s"
    except Exception as e:  # noqa: BLE001
        say(f"PyTorch reference FAILED: {e}")
        torch_text = ""
    summary(f"end-to-end finetune on {args.device} (demo pairs, 1 epoch, MiniLM shape): "
            f"{'ok' if saved else 'FAILED'} in {wall:.1f} s wall{torch_text}")
    return 0 if saved else 2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["models", "parity", "steps", "speed", "e2e"])
    ap.add_argument("--work", required=True, help="working folder (checkpoints go in WORK/models)")
    ap.add_argument("--scale", choices=["full", "small"], default="full")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--bin", help="the bertscope binary")
    ap.add_argument("--files", help="folder with config.json and the tokenizer files (models)")
    ap.add_argument("--demo", help="folder with claims-train.tsv and claims-dev.tsv")
    args = ap.parse_args()
    if args.part != "models" and args.device == "cuda" and not torch.cuda.is_available():
        say("FAILED: PyTorch sees no CUDA device")
        return 2
    say(f"[torch {torch.__version__}, transformers {__import__('transformers').__version__}, "
        f"device {torch.cuda.get_device_name(0) if args.part != 'models' and args.device == 'cuda' else 'cpu'}]")
    try:
        return {"models": cmd_models, "parity": cmd_parity, "steps": cmd_steps,
                "speed": cmd_speed, "e2e": cmd_e2e}[args.part](args)
    except Exception as e:  # noqa: BLE001 - exit 2 = could not run (1 means outside tolerance)
        import traceback
        traceback.print_exc()
        say(f"FAILED: {type(e).__name__}: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
