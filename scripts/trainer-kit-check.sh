#!/usr/bin/env bash
# The Trainer kit end to end, as a user runs it: bertscope writes a kit for
# a fine-tuning run of the demo model on the demo claim pairs, the kit runs
# under `torchrun --nproc_per_node 2` on the CPU (gloo) in a venv, and
# `bertscope watch` follows it live. Then:
#   - its schedule against bertscope's own run of the same flags (the same
#     number of optimiser steps, the same learning rate at every step);
#   - the result opened by `bertscope classify`, `bertscope compare` and
#     `transformers`, and its dev accuracy against the majority baseline.
#
#   bash scripts/trainer-kit-check.sh          # VENV=... to reuse a venv with torch
#
# Needs the demo model (scripts/fetch-demo-model.sh) and about 3 GB for torch.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="${VENV:-$ROOT/target/kit-venv}"
BIN="${BIN:-$ROOT/target/release/bertscope}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

bash scripts/fetch-demo-model.sh
[ -x "$BIN" ] || cargo build --release
MODEL="$ROOT/models/all-MiniLM-L6-v2"
FLAGS=(--train "$ROOT/assets/demo/claims-train.tsv" --dev "$ROOT/assets/demo/claims-dev.tsv"
       --epochs 3 --batch-size 16 --lr 5e-5 --max-length 64 --seed 11)

echo "== the kit"
"$BIN" finetune --model "$MODEL" "${FLAGS[@]}" --output "$WORK/out" --export-trainer "$WORK/kit"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet -r "$WORK/kit/requirements.txt"

echo "== torchrun --nproc_per_node 2, watched live"
(cd "$WORK" && OMP_NUM_THREADS=1 "$VENV/bin/torchrun" --nproc_per_node 2 kit/train.py > torchrun.log 2>&1) &
RUN=$!
"$BIN" watch "$WORK/out" --interval 1 | tee "$WORK/watch.log"
wait "$RUN" || { tail -30 "$WORK/torchrun.log"; echo "FAIL: the kit's run failed"; exit 1; }
grep -q "step 36/36" "$WORK/watch.log" || { echo "FAIL: the watcher did not see the last step"; exit 1; }

echo "== bertscope's own run of the same flags"
"$BIN" finetune --model "$MODEL" "${FLAGS[@]}" --output "$WORK/own" --json > "$WORK/own.json"

echo "== the schedules, the result"
"$VENV/bin/python" - "$WORK" "$MODEL" <<'PY'
import json, os, sys
work, model = sys.argv[1], sys.argv[2]
ours = json.load(open(os.path.join(work, "own.json")))["history"]
kit = [json.loads(l) for l in open(os.path.join(work, "out", "bertscope-log.jsonl"))]
steps = [r for r in kit if "learning_rate" in r]
assert len(steps) == len(ours), f"{len(steps)} kit steps, {len(ours)} of bertscope's"
worst = max(abs(a["lr"] - b["learning_rate"]) for a, b in zip(ours, steps))
assert all(a["step"] == b["step"] for a, b in zip(ours, steps))
assert worst <= 1e-12, f"learning rates differ by {worst}"
print(f"schedule: {len(steps)} optimiser steps, learning rates equal at every step (max |diff| {worst:.1e})")
from transformers import AutoModelForSequenceClassification, AutoTokenizer
import torch
out = os.path.join(work, "out")
m = AutoModelForSequenceClassification.from_pretrained(out).eval()
t = AutoTokenizer.from_pretrained(out)
metrics = json.load(open(os.path.join(out, "metrics.json")))
best = metrics["best_epoch"]
acc = metrics["epochs"][best - 1]["dev"]["accuracy"]
base = metrics["summary"]["majority_baseline"]
print(f"transformers loads it: labels {m.config.id2label}; best epoch {best}, dev accuracy {acc:.3f} (majority baseline {base:.3f})")
assert acc > base, "the kit's run did not learn"
PY
"$BIN" classify --model "$WORK/out" --text-a "the museum will be free on Sundays" --text-b "Officials say the museum will be free on Sundays"
"$BIN" compare --base "$MODEL" --tuned "$WORK/out" --text-a "the museum will be free on Sundays" > /dev/null
"$BIN" watch "$WORK/out" --once
echo "PASS: the Trainer kit ran on 2 processes, was watched live, and matches bertscope's schedule"
