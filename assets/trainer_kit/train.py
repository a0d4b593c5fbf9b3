#!/usr/bin/env python3
"""bertscope's fine-tuning run as a Hugging Face Trainer script.

Written by `bertscope finetune ... --export-trainer DIR` for the run in RUN
below. It runs unchanged on one GPU, on N GPUs and on several machines
(`torchrun`), under `accelerate launch`, and on CPU-only machines (gloo):

    python train.py
    torchrun --nproc_per_node 4 train.py
    accelerate launch --config_file accelerate.yaml train.py

Every value in RUN can be overridden on the command line, e.g.
    python train.py --model bert-base-chinese --train /data/train.tsv --output /runs/x

Progress goes to OUTPUT/bertscope-log.jsonl, one JSON line per optimiser step
and per evaluation, flushed at once: `bertscope watch OUTPUT` follows it.
The finished OUTPUT is a checkpoint bertscope opens as a tuned model, with
the per-epoch checkpoints under OUTPUT/epochs/ for its compare slider.
"""

import argparse
import csv
import json
import math
import os
import random
import shutil
import sys
import time

# The run bertscope exported (its `finetune` flags). Overridable below.
RUN = __BERTSCOPE_RUN__

WRITTEN_BY = __BERTSCOPE_WRITTEN_BY__
LOG_FILE = "bertscope-log.jsonl"
EPOCHS_DIR = "epochs"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
MLM_PROBABILITY = 0.15


class KitError(Exception):
    """A problem with the run's settings or data: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------
# Settings


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Fine-tune a BERT with the recipe bertscope exported (defaults: RUN in this file).")
    flag = p.add_argument
    flag("--model", help="model directory or Hub id")
    flag("--task", choices=["classification", "mlm"])
    flag("--train", help="training data (TSV/CSV with a header; .txt for --task mlm)")
    flag("--dev", help="dev data, evaluated after every epoch")
    flag("--dev-fraction", type=float, help="hold out this fraction of the training rows as dev data")
    flag("--output", help="output directory (a checkpoint bertscope and transformers open)")
    flag("--epochs", type=int)
    flag("--batch-size", type=int, help="the global batch: split over all processes")
    flag("--per-device-batch-size", type=int,
         help="micro-batch per process (default: batch size / processes); the rest is gradient accumulation")
    flag("--lr", type=float)
    flag("--weight-decay", type=float)
    flag("--warmup-ratio", type=float)
    flag("--max-grad-norm", type=float)
    flag("--max-length", type=int)
    flag("--seed", type=int)
    flag("--max-steps", type=int, help="stop after this many optimiser steps")
    flag("--shuffle", action=argparse.BooleanOptionalAction, help="shuffle each epoch (--no-shuffle: file order)")
    flag("--bucketing", action=argparse.BooleanOptionalAction, help="batch rows of similar length together")
    flag("--dropout", type=float, help="dropout probability of every dropout layer (default: the config's)")
    flag("--save-last", action=argparse.BooleanOptionalAction, help="keep the last epoch, not the best on dev")
    flag("--labels", type=lambda s: [x for x in s.split(",")], help="label set in class order, comma separated")
    flag("--text-a-column")
    flag("--text-b-column")
    flag("--label-column")
    flag("--id-column")
    flag("--delimiter", help="field separator (default: tab for .tsv, comma otherwise); \\t for tab")
    flag("--skip-bad-rows", action=argparse.BooleanOptionalAction, help="skip bad rows instead of stopping")
    flag("--bf16", action=argparse.BooleanOptionalAction, help="bf16 mixed precision (GPUs)")
    flag("--fp16", action=argparse.BooleanOptionalAction, help="fp16 mixed precision (GPUs)")
    flag("--overwrite", action=argparse.BooleanOptionalAction,
         help="replace an OUTPUT that holds an earlier run of this kit")
    flag("--resume-from-checkpoint", metavar="CHECKPOINT",
         help="continue from OUTPUT/checkpoint-N (or 'latest')")
    flag("--dataloader-workers", type=int, default=0)
    args = p.parse_args(argv)
    for key, value in RUN.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key in ("bf16", "fp16", "overwrite"):
        if getattr(args, key) is None:
            setattr(args, key, False)
    for key in ("model", "train", "output"):
        if not getattr(args, key):
            raise KitError(f"--{key} is required")
    if args.epochs < 1 or args.batch_size < 1:
        raise KitError("--epochs and --batch-size must be at least 1")
    if args.dev_fraction is not None and not 0.0 <= args.dev_fraction < 1.0:
        raise KitError(f"--dev-fraction {args.dev_fraction}: expected a number in [0, 1)")
    if args.dev and args.dev_fraction is not None:
        raise KitError("--dev and --dev-fraction exclude each other")
    if args.bf16 and args.fp16:
        raise KitError("--bf16 and --fp16 exclude each other")
    return args


def split_batch(batch_size, world_size, per_device=None):
    """(per-device micro-batch, gradient accumulation steps) whose product over
    all processes is exactly the global batch."""
    if batch_size % world_size:
        lower = batch_size - batch_size % world_size
        choices = " or ".join(str(b) for b in (lower, lower + world_size) if b > 0)
        raise KitError(
            f"--batch-size {batch_size} cannot be split evenly over {world_size} processes; "
            f"use a multiple of {world_size} (e.g. {choices}) so that every run takes the same steps")
    share = batch_size // world_size
    per_device = per_device or share
    if per_device < 1 or share % per_device:
        raise KitError(
            f"--per-device-batch-size {per_device} does not divide the {share} rows each of "
            f"{world_size} processes takes per step (--batch-size {batch_size})")
    return per_device, share // per_device


# ---------------------------------------------------------------------------
# Data, read as bertscope reads it


def default_delimiter(path):
    ext = os.path.splitext(path)[1].lower()
    return "\t" if ext in (".tsv", ".txt", ".tab") else ","


def delimiter_of(args, path):
    d = args.delimiter
    if d is None:
        return default_delimiter(path)
    if d in ("\\t", "tab"):
        return "\t"
    if len(d.encode("utf-8")) != 1:
        raise KitError(f"--delimiter {d!r}: expected one character")
    return d


class Rows:
    """A data file's usable rows, and its bad rows when they are skipped."""

    def __init__(self, path):
        self.path = path
        self.texts = []  # (text_a, text_b or None)
        self.labels = []
        self.lines = []  # each row's line in its file
        self.skipped = []  # (line, reason)


def read_lines(path):
    rows = Rows(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise KitError(f"{path}:{number}: the line is not valid UTF-8")
            if number == 1:
                text = text.lstrip("\ufeff").strip()
            if text:
                rows.texts.append((text, None))
                rows.labels.append(None)
                rows.lines.append(number)
    return rows


def read_table(path, args, require_label):
    """A delimited file with a header, as bertscope reads it: fields trimmed,
    blank lines ignored, a bad row an error naming `file:line` (or skipped)."""
    if path.endswith(".txt") and not require_label:
        return read_lines(path)
    rows = Rows(path)
    try:
        f = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as e:
        raise KitError(f"{path}: cannot read: {e.strerror}")
    with f:
        reader = csv.reader(f, delimiter=delimiter_of(args, path))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            header = []
        if not any(header):
            raise KitError(f"{path}:1: the file is empty (expected a header row)")
        if any(bad_utf8(h) for h in header):
            raise KitError(f"{path}:1: the header is not valid UTF-8")

        def column(name, role, flag, required=True):
            if name in header:
                return header.index(name)
            if required:
                raise KitError(f"{path}:1: no column \"{name}\" in the header ({', '.join(header)}); "
                               f"choose the {role} column with {flag}")
            return None

        a = column(args.text_a_column, "sentence A", "--text-a-column")
        b = (column(args.text_b_column, "sentence B", "--text-b-column") if args.text_b_column
             else column("text_b", "", "", required=False))
        label = column(args.label_column, "label", "--label-column", required=require_label)
        line = 1
        for record in reader:
            start, line = line + 1, reader.line_num
            if not record or record == [""]:
                continue
            reason, row = check_row(record, header, a, b, label, require_label)
            if reason is None:
                rows.texts.append((row[0], row[1]))
                rows.labels.append(row[2])
                rows.lines.append(start)
            elif args.skip_bad_rows:
                rows.skipped.append((start, reason))
            else:
                raise KitError(f"{path}:{start}: {reason}")
    return rows


def bad_utf8(text):
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def check_row(record, header, a, b, label, require_label):
    if len(record) != len(header):
        return f"row has {len(record)} fields but the header has {len(header)}", None

    def field(col):
        text = record[col]
        if bad_utf8(text):
            raise ValueError(f"column \"{header[col]}\" is not valid UTF-8")
        return text.strip()

    try:
        text_a = field(a)
        if not text_a:
            return f"column \"{header[a]}\" is empty", None
        text_b = None
        if b is not None:
            text_b = field(b)
            if not text_b:
                return f"column \"{header[b]}\" is empty", None
        value = None
        if label is not None:
            value = field(label) or None
            if value is None and require_label:
                return f"column \"{header[label]}\" is empty", None
    except ValueError as e:
        return str(e), None
    return None, (text_a, text_b, value)


def report_skipped(rows, is_main):
    if rows.skipped and is_main:
        lines = ", ".join(str(line) for line, _ in rows.skipped[:20])
        more = ", …" if len(rows.skipped) > 20 else ""
        print(f"warning: {rows.path}: skipped {len(rows.skipped)} bad rows (lines {lines}{more}); "
              f"first: {rows.skipped[0][1]}", file=sys.stderr)


def split_dev(rows, fraction, seed):
    """A seeded random `fraction` of the rows held out as dev data (as many
    rows as bertscope holds out; drawn by Python's generator, not bertscope's)."""
    order = list(range(len(rows.texts)))
    random.Random(seed).shuffle(order)
    # Half away from zero, as bertscope rounds (Python's round() goes to even).
    dev_idx = set(order[:math.floor(len(order) * fraction + 0.5)])
    train, dev = Rows(rows.path), Rows(rows.path)
    for i, row in enumerate(zip(rows.texts, rows.labels, rows.lines)):
        side = dev if i in dev_idx else train
        side.texts.append(row[0])
        side.labels.append(row[1])
        side.lines.append(row[2])
    train.skipped = rows.skipped
    return train, dev


def class_indices(rows, labels):
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for line, label in zip(rows.lines, rows.labels):
        if label not in index:
            raise KitError(f"{rows.path}:{line}: label \"{label or ''}\" does not occur in the "
                           f"training data (labels: {', '.join(labels)})")
        out.append(index[label])
    return out


def encode(tokenizer, rows, max_length, classes=None):
    """Pairs as BERT sees them, `[CLS] A [SEP] (B [SEP])`, truncated longest-first."""
    a = [t[0] for t in rows.texts]
    pairs = any(t[1] is not None for t in rows.texts)
    b = [t[1] or "" for t in rows.texts] if pairs else None
    enc = tokenizer(a, b, truncation="longest_first", max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    out = [{k: enc[k][i] for k in keys} for i in range(len(a))]
    if classes is not None:
        for row, c in zip(out, classes):
            row["labels"] = c
    return out


def percentile(sorted_values, p):
    if not sorted_values:
        return 0
    i = int(round(p / 100.0 * (len(sorted_values) - 1)))
    return sorted_values[min(i, len(sorted_values) - 1)]


# ---------------------------------------------------------------------------
# Progress, epoch checkpoints and the result in bertscope's layout


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_checkpoint_files(src, dst):
    """The files bertscope and transformers load: config, weights, tokenizer."""
    tmp = dst + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in os.listdir(src):
        if name in ("config.json", "generation_config.json") or name in TOKENIZER_FILES or \
                name.endswith(".safetensors") or name == "model.safetensors.index.json":
            link_or_copy(os.path.join(src, name), os.path.join(tmp, name))
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def make_callback(base):
    """The kit's TrainerCallback, on the installed transformers' base class."""

    class BertscopeProgress(base):
        """Appends one JSON line per optimiser step and per evaluation to
        OUTPUT/bertscope-log.jsonl (main process only), and keeps a checkpoint
        per epoch in OUTPUT/epochs/epoch-N for bertscope's compare slider."""

        def __init__(self, run):
            self.run = run
            self.lr_used = None

        def log(self, state, record):
            if not state.is_world_process_zero:
                return
            record = {**record, "time": round(time.time(), 3)}
            with open(os.path.join(self.run.output, LOG_FILE), "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()

        def on_train_begin(self, args, state, control, model=None, **kw):
            self.log(state, {"event": "start", "max_steps": state.max_steps, "epochs": self.run.epochs,
                             "global_step": state.global_step, **self.run.plan})
            zero = os.path.join(self.run.output, EPOCHS_DIR, "epoch-0")
            if state.is_world_process_zero and state.global_step == 0 and model is not None:
                os.makedirs(os.path.dirname(zero), exist_ok=True)
                tmp = zero + ".partial"
                model.save_pretrained(tmp, safe_serialization=True)
                self.run.tokenizer.save_pretrained(tmp)
                shutil.rmtree(zero, ignore_errors=True)
                os.replace(tmp, zero)

        def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
            if optimizer is not None:
                self.lr_used = optimizer.param_groups[0]["lr"]

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" in logs and not any(k.startswith("eval_") for k in logs):
                lr = self.lr_used if self.lr_used is not None else logs.get("learning_rate")
                self.log(state, {"step": state.global_step, "epoch": state.epoch, "loss": logs["loss"],
                                 "learning_rate": lr, "grad_norm": logs.get("grad_norm")})

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            metrics = dict(metrics or {})
            if self.run.task == "mlm" and "eval_loss" in metrics:
                metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 700.0))
            if self.run.task == "classification":
                metrics["eval_confusion"] = self.run.last_confusion
            self.log(state, {"step": state.global_step, "epoch": state.epoch, **metrics})

        def on_save(self, args, state, control, **kw):
            if not state.is_world_process_zero:
                return
            checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            epoch = max(1, math.ceil((state.epoch or 0) - 1e-9))
            if os.path.isdir(checkpoint):
                copy_checkpoint_files(checkpoint, os.path.join(self.run.output, EPOCHS_DIR, f"epoch-{epoch}"))
            self.log(state, {"event": "checkpoint", "step": state.global_step, "epoch": state.epoch,
                             "checkpoint": os.path.basename(checkpoint), "path": f"{EPOCHS_DIR}/epoch-{epoch}"})

    return BertscopeProgress


def best_epoch(evals, task, save_last, last_epoch):
    """bertscope's rule: highest dev accuracy, a tie to the lower dev loss
    (masked LM: lowest dev loss); the last epoch with --save-last or no dev data."""
    if save_last or not evals:
        return last_epoch
    best, best_key = None, None
    for epoch in sorted(evals):
        m = evals[epoch]
        loss = m.get("eval_loss", float("inf"))
        key = (-loss, 0.0) if task == "mlm" else (m.get("eval_accuracy", 0.0), -loss)
        if best_key is None or key > best_key:
            best, best_key = epoch, key
    return best


def dev_summary(m, task):
    if not m:
        return None
    loss = m.get("eval_loss", float("nan"))
    return {
        "accuracy": m.get("eval_accuracy", 0.0),
        "macro_f1": m.get("eval_macro_f1", 0.0),
        "confusion": m.get("eval_confusion") or [],
        "loss": loss,
        "perplexity": m.get("eval_perplexity") if task == "mlm" else None,
    }


# ---------------------------------------------------------------------------
# The run


class Run:
    pass


def prepare(args, world_size, is_main):
    run = Run()
    run.task, run.output, run.epochs = args.task, os.path.abspath(args.output), args.epochs
    labelled = args.task == "classification"
    train = read_table(args.train, args, labelled)
    report_skipped(train, is_main)
    dev = None
    if args.dev:
        dev = read_table(args.dev, args, labelled)
        report_skipped(dev, is_main)
    elif args.dev_fraction:
        train, dev = split_dev(train, args.dev_fraction, args.seed)
    if not train.texts:
        raise KitError(f"{args.train}: no training rows")
    run.labels = []
    train_classes = dev_classes = None
    if labelled:
        run.labels = list(args.labels) if args.labels else sorted(set(train.labels))
        train_classes = class_indices(train, run.labels)
        dev_classes = class_indices(dev, run.labels) if dev is not None else None
    run.per_device, run.accumulation = split_batch(args.batch_size, world_size, args.per_device_batch_size)
    # The data and the batch were checked before torch is imported: such
    # errors come at once.
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(args.model)
    run.tokenizer = AutoTokenizer.from_pretrained(args.model)
    max_length = min(args.max_length, getattr(config, "max_position_embeddings", args.max_length))
    run.train = encode(run.tokenizer, train, max_length, train_classes)
    run.dev = None
    if dev is not None and dev.texts:
        run.dev = encode(run.tokenizer, dev, max_length, dev_classes)
    counts = {}
    for label in train.labels if labelled else []:
        counts[label] = counts.get(label, 0) + 1
    pairs = any(t[1] for t in train.texts)
    full = run.tokenizer([t[0] for t in train.texts], [t[1] or "" for t in train.texts] if pairs else None)
    full_lengths = sorted(len(ids) for ids in full["input_ids"])
    run.summary = {
        "train_rows": len(run.train),
        "dev_rows": len(run.dev or []),
        "label_counts": dict(sorted(counts.items())),
        "majority_baseline": max(counts.values()) / len(run.train) if counts else 0.0,
        "length_percentiles": [percentile(full_lengths, p) for p in (50, 90, 95, 99, 100)],
        "truncated": sum(1 for n in full_lengths if n > max_length),
        "skipped_rows": len(train.skipped),
    }
    steps_per_epoch = math.ceil(len(run.train) / args.batch_size)
    run.total = min(args.max_steps or steps_per_epoch * args.epochs, steps_per_epoch * args.epochs)
    run.warmup = math.ceil(run.total * args.warmup_ratio)
    run.plan = {"world_size": world_size, "batch_size": args.batch_size, "per_device_batch_size": run.per_device,
                "gradient_accumulation_steps": run.accumulation, "steps_per_epoch": steps_per_epoch,
                "warmup_steps": run.warmup, "train_rows": len(run.train), "dev_rows": len(run.dev or [])}
    run.last_confusion = []
    return run


def build_model(args, run):
    import transformers

    transformers.set_seed(args.seed)
    config = transformers.AutoConfig.from_pretrained(args.model)
    if args.dropout is not None:
        config.hidden_dropout_prob = args.dropout
        config.attention_probs_dropout_prob = args.dropout
        if hasattr(config, "classifier_dropout"):
            config.classifier_dropout = args.dropout
    if args.task == "mlm":
        return transformers.AutoModelForMaskedLM.from_pretrained(args.model, config=config)
    had = [config.id2label[i] for i in sorted(config.id2label)] if getattr(config, "id2label", None) else []
    trained_head = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
    if trained_head and had != run.labels:
        raise KitError(f"{args.model}: the checkpoint's classifier has labels [{', '.join(had)}] but the data "
                       f"has [{', '.join(run.labels)}]; fine-tune from a checkpoint without a classifier "
                       f"or relabel the data")
    config.num_labels = len(run.labels)
    config.id2label = dict(enumerate(run.labels))
    config.label2id = {label: i for i, label in enumerate(run.labels)}
    config.architectures = ["BertForSequenceClassification"]
    return transformers.AutoModelForSequenceClassification.from_pretrained(args.model, config=config)


def compute_metrics_for(run):
    import numpy as np

    def classification(prediction):
        logits, gold = prediction.predictions, prediction.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        pred = np.argmax(logits, axis=-1)
        k = len(run.labels)
        confusion = np.zeros((k, k), dtype=np.int64)
        np.add.at(confusion, (gold, pred), 1)
        f1s = []
        for c in range(k):
            tp = confusion[c, c]
            predicted, actual = confusion[:, c].sum(), confusion[c, :].sum()
            f1s.append(0.0 if tp == 0 else 2 * tp / (predicted + actual))
        run.last_confusion = confusion.tolist()
        return {"accuracy": float((pred == gold).mean()), "macro_f1": float(np.mean(f1s))}

    def masked(prediction):
        pred, gold = prediction.predictions, prediction.label_ids
        if isinstance(pred, tuple):
            pred = pred[0]
        chosen = gold != -100
        return {"accuracy": float((pred[chosen] == gold[chosen]).mean()) if chosen.any() else 0.0}

    return masked if run.task == "mlm" else classification


def argmax_logits(logits, labels):
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def training_arguments(args, run):
    import inspect

    import torch
    import transformers

    accepted = inspect.signature(transformers.TrainingArguments.__init__).parameters
    kw = dict(
        output_dir=run.output,
        per_device_train_batch_size=run.per_device,
        per_device_eval_batch_size=run.per_device,
        gradient_accumulation_steps=run.accumulation,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
        optim="adamw_torch",
        max_grad_norm=args.max_grad_norm,
        num_train_epochs=args.epochs,
        max_steps=run.total,
        lr_scheduler_type="linear",
        warmup_steps=run.warmup,
        seed=args.seed,
        data_seed=args.seed,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="epoch",
        report_to=[],
        bf16=args.bf16,
        fp16=args.fp16,
        dataloader_num_workers=args.dataloader_workers,
        remove_unused_columns=False,
        disable_tqdm=False,
    )
    if not torch.cuda.is_available() and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        # A CPU-only machine: processes talk over gloo.
        kw["use_cpu"] = True
        if run.plan["world_size"] > 1:
            kw["ddp_backend"] = "gloo"
    strategy = "epoch" if run.dev else "no"
    kw["eval_strategy" if "eval_strategy" in accepted else "evaluation_strategy"] = strategy
    sampling = "group_by_length" if (args.shuffle and args.bucketing) else ("random" if args.shuffle else "sequential")
    if "train_sampling_strategy" in accepted:
        kw["train_sampling_strategy"] = sampling
    else:
        kw["group_by_length"] = sampling == "group_by_length"
    run.sampling = sampling
    return transformers.TrainingArguments(**{k: v for k, v in kw.items() if k in accepted})


def make_trainer(args, run, model, callback):
    import inspect

    import torch
    import transformers

    class KitTrainer(transformers.Trainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            # BERT's heads average the loss over their own batch and ignore
            # `num_items_in_batch`, yet transformers 5 multiplies such a loss by
            # the number of processes, doubling the gradients of a 2-process
            # run. Off: each process's mean loss, averaged by DDP, as bertscope.
            self.model_accepts_loss_kwargs = False

        def _get_train_sampler(self, *a, **kw):
            if run.sampling == "sequential" and not hasattr(self.args, "train_sampling_strategy"):
                return torch.utils.data.SequentialSampler(self.train_dataset)
            return super()._get_train_sampler(*a, **kw)

    if run.task == "mlm":
        collator = transformers.DataCollatorForLanguageModeling(run.tokenizer, mlm_probability=MLM_PROBABILITY)
    else:
        collator = transformers.DataCollatorWithPadding(run.tokenizer)
    kw = dict(model=model, args=training_arguments(args, run), data_collator=collator,
              train_dataset=run.train, eval_dataset=run.dev, callbacks=[callback],
              compute_metrics=compute_metrics_for(run))
    if run.task == "mlm":
        kw["preprocess_logits_for_metrics"] = argmax_logits
    accepted = inspect.signature(transformers.Trainer.__init__).parameters
    kw["processing_class" if "processing_class" in accepted else "tokenizer"] = run.tokenizer
    return KitTrainer(**kw)


def check_output(args, run, resuming):
    out = run.output
    if not os.path.exists(out) or resuming:
        return
    if not os.path.isdir(out):
        raise KitError(f"{out}: exists and is not a directory")
    names = os.listdir(out)
    if not names:
        return
    ours = os.path.exists(os.path.join(out, LOG_FILE))
    if not ours:
        raise KitError(f"{out}: is not empty and holds no run of this kit ({LOG_FILE} missing); "
                       f"choose another --output")
    if not args.overwrite:
        raise KitError(f"{out}: holds an earlier run; pass --overwrite to replace it, or "
                       f"--resume-from-checkpoint latest to continue it")


def clear_output(run):
    for name in os.listdir(run.output):
        path = os.path.join(run.output, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def read_log(path):
    """Each step's (epoch, loss, lr) and each epoch's dev metrics, from the log
    (a resumed run repeats the steps after its checkpoint: the last one counts)."""
    steps, evals = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            epoch = max(1, math.ceil((record.get("epoch") or 0) - 1e-9))
            if "event" in record:
                continue
            if any(k.startswith("eval_") for k in record):
                evals[epoch] = record
            elif "loss" in record and "step" in record:
                steps[record["step"]] = (epoch, record["loss"], record["learning_rate"])
    return [(s, *steps[s]) for s in sorted(steps)], evals


def finish(args, run, trainer, progress, started):
    """The main process: the kept epoch's weights, metrics.json and
    training_args.json in OUTPUT, the Trainer's checkpoint-N folders removed."""
    import torch
    import transformers

    state = trainer.state
    steps, evals = read_log(os.path.join(run.output, LOG_FILE))
    epochs_done = sorted({e for _, e, _, _ in steps})
    last = epochs_done[-1] if epochs_done else 0
    kept = best_epoch(evals, run.task, args.save_last, last)
    source = os.path.join(run.output, EPOCHS_DIR, f"epoch-{kept}")
    if not os.path.isdir(source):
        trainer.save_model(source)
    for name in os.listdir(source):
        link_or_copy_over(os.path.join(source, name), os.path.join(run.output, name))
    epochs = []
    for e in epochs_done:
        losses = [loss for _, epoch, loss, _ in steps if epoch == e]
        epochs.append({"epoch": e, "train_loss": sum(losses) / max(len(losses), 1),
                       "dev": dev_summary(evals.get(e), run.task)})
    elapsed = max(time.time() - started, 1e-9)
    report = {
        "outcome": "Finished",
        "steps": state.global_step,
        "epochs": epochs,
        "best_epoch": kept if epochs_done else None,
        "summary": run.summary,
        "train_examples_per_s": state.global_step * args.batch_size / elapsed,
        "history": [{"step": s, "epoch": e, "loss": loss, "lr": lr} for s, e, loss, lr in steps],
    }
    write_json(os.path.join(run.output, "metrics.json"), report)
    settings = {
        "task": run.task, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "weight_decay": args.weight_decay, "warmup_ratio": args.warmup_ratio,
        "max_grad_norm": args.max_grad_norm, "max_length": args.max_length, "seed": args.seed,
        "max_steps": args.max_steps, "shuffle": args.shuffle, "bucketing": args.bucketing,
        "dropout": args.dropout, "precision": "fp32", "save_last": args.save_last,
        "labels": run.labels, "base_model": args.model, "written_by": WRITTEN_BY,
        "trainer": {**run.plan, "bf16": args.bf16, "fp16": args.fp16,
                    "transformers": transformers.__version__, "torch": torch.__version__},
    }
    write_json(os.path.join(run.output, "training_args.json"), settings)
    for name in os.listdir(run.output):
        if name.startswith("checkpoint-"):
            shutil.rmtree(os.path.join(run.output, name), ignore_errors=True)
    progress.log(state, {"event": "finished", "step": state.global_step, "epoch": state.epoch,
                         "best_epoch": report["best_epoch"]})
    print(f"saved {run.output} (epoch {kept} kept, {state.global_step} steps)", file=sys.stderr)


def link_or_copy_over(src, dst):
    if os.path.isdir(dst) and not os.path.islink(dst):
        shutil.rmtree(dst)
    elif os.path.exists(dst):
        os.remove(dst)
    link_or_copy(src, dst)


def from_env(names, default):
    """The first of the launchers' variables that is set (torchrun, MPI)."""
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def main(argv):
    args = parse_args(argv)
    world_size = from_env(("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"), 1)
    is_main = from_env(("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"), 0) == 0
    run = prepare(args, world_size, is_main)

    import transformers

    resume = args.resume_from_checkpoint
    resuming = bool(resume)
    if resume == "latest":
        resume = True
    check_output(args, run, resuming)
    if is_main:
        if args.overwrite and not resuming and os.path.isdir(run.output):
            clear_output(run)
        os.makedirs(run.output, exist_ok=True)
        accumulation = (f", {run.accumulation} accumulation steps" if run.accumulation > 1 else "")
        print(f"global batch {args.batch_size} = {world_size} processes × {run.per_device} per device"
              f"{accumulation}; {run.total} optimiser steps, {run.warmup} warm-up", file=sys.stderr)
    model = build_model(args, run)
    progress = make_callback(transformers.TrainerCallback)(run)
    trainer = make_trainer(args, run, model, progress)
    if trainer.args.world_size != world_size:
        raise KitError(f"the launcher started {world_size} processes but the Trainer sees "
                       f"{trainer.args.world_size}; launch with torchrun or accelerate launch")
    started = time.time()
    trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        finish(args, run, trainer, progress, started)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KitError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
