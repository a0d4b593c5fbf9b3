#!/usr/bin/env bash
# Regenerate screenshots/ from the real app on the demo model, under Xvfb.
# Needs: apt-get install xvfb xauth fonts-wqy-microhei mesa-vulkan-drivers libvulkan1
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-demo-model.sh
cargo build --release
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
mkdir -p screenshots

EN="The animal didn't cross the street because it was too tired."
ZH_A="胖虎叫大雄去買漫畫，"
ZH_B="回來慢了就打他。"

shot() { # name, model, then gui arguments
  local name="$1" model="$2"; shift 2
  xvfb-run -a -s "-screen 0 1600x1000x24" \
    target/release/bertscope gui --model "$model" "$@" --screenshot "screenshots/$name.png"
}

# MiniLM ships without a masked-LM head: the masked-LM shot uses models/demo-mlm
# (scripts/build-demo-mlm.sh, ~36 min), else a quick one fine-tuned on the demo data (~4 min).
MLM=models/demo-mlm
if [ ! -f "$MLM/model.safetensors" ]; then
  MLM=runs/minilm-mlm
  if [ ! -f runs/minilm-mlm/model.safetensors ]; then
    target/release/bertscope finetune --task mlm --model all-MiniLM-L6-v2 \
      --train assets/demo/claims-train.tsv --dev assets/demo/claims-dev.tsv \
      --output runs/minilm-mlm --epochs 6 --batch-size 16 --lr 5e-4 --overwrite
  fi
fi

# Layer 3, head 1 of MiniLM links "it" to "animal" (0.68).
M=all-MiniLM-L6-v2
shot head-view-coreference-en $M --text-a "$EN" --view head --layer 3 --head 1
shot model-view $M --text-a "$EN" --view model --layer 3 --head 1
shot matrix-view $M --text-a "$EN" --view matrix --layer 3 --head 1
shot head-view-coreference-zh $M --text-a "$ZH_A" --text-b "$ZH_B" --view head --layer 3
shot masked-lm-no-head $M --text-a "Paris is the [MASK] of France." --view mlm --layer 3
shot masked-lm "$MLM" --text-a "Paris is the [MASK] of France." --view mlm --layer 3

# The training and compare views from a real run: MiniLM fine-tuned on the demo
# pairs with a checkpoint per epoch (~3 min).
if [ ! -f runs/claims/epochs/epoch-0/model.safetensors ]; then
  target/release/bertscope finetune --model all-MiniLM-L6-v2 \
    --train assets/demo/claims-train.tsv --dev assets/demo/claims-dev.tsv \
    --output runs/claims --epochs 10 --batch-size 16 --lr 1e-4 --keep-epochs --overwrite
fi
shot training $M --view train --train-data assets/demo/claims-train.tsv --tuned runs/claims
CLAIM_A="a famous singer has died in a car crash"
CLAIM_B="Fact check: it is false that a famous singer has died in a car crash"
shot compare $M --view compare --tuned runs/claims --train-data assets/demo/claims-train.tsv \
  --text-a "$CLAIM_A" --text-b "$CLAIM_B" --layer 5 --head 0

# The Explain view: MiniLM with the 3-label head of the explanation fixtures
# (tests/fixtures/minilm_head) as a two-shard checkpoint, head importance over
# the fixture rows.
H=runs/minilm-head
if [ ! -f $H/model.safetensors.index.json ]; then
  mkdir -p $H
  cp tests/fixtures/minilm_head/config.json $H/
  cp models/$M/{tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} $H/
  ln -sf "$PWD/models/$M/model.safetensors" $H/model-00001-of-00002.safetensors
  cp tests/fixtures/minilm_head/head.safetensors $H/model-00002-of-00002.safetensors
  python3 - "$H" <<'EOF'
import json, os, struct, sys
d, weights = sys.argv[1], {}
for f in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
    with open(os.path.join(d, f), "rb") as fh:
        header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    weights.update({k: f for k in header if k != "__metadata__"})
with open(os.path.join(d, "model.safetensors.index.json"), "w") as out:
    json.dump({"metadata": {}, "weight_map": weights}, out)
EOF
fi
shot explain $H --view explain --train-data tests/fixtures/explain_rows_minilm.tsv \
  --text-a "Scientists confirm that drinking coffee reverses aging overnight" \
  --text-b "Coffee does not reverse aging, researchers say after reviewing the evidence"
# Head ablation (four heads switched off, the classifier's bars) and the neuron
# view (layer 3, head 1: "they" → "animals" from q·k).
THEY="The animals did not cross the street because they were too tired."
shot ablation $H --view model --text-a "$THEY" --mask-heads 0:1,2:5,5:0,5:7 --layer 5
shot neurons $H --view head --text-a "$THEY" --neurons 3:1 --query-token 9
echo "screenshots/ updated: look at every PNG before committing"
# The Tokens view: wordpieces, ids, segments and mask of a pair.
shot tokens $M --view tokens --text-a "Tokenisers split unfamiliar words like electroencephalography into pieces." \
  --text-b "Segment ids tell the second sentence apart."
# The Heads view: MiniLM's coreference accuracy per head on the bundled
# English set, head 3-1's rows listed.
shot heads-coref $M --view heads --layer 3 --head 1
# The export section's figures: the figure alone, light.
target/release/bertscope export --model "models/$M" --text-a "$EN" --view head --layer 3 --head 1 \
  --light --output screenshots/export-head.svg
target/release/bertscope export --model "models/$M" --text-a "$EN" --view matrix --layer 3 --head 1 \
  --light --scale 1 --output screenshots/export-matrix.png
# The Data view: the demo pairs' [CLS] at layer 6 as MiniLM is fine-tuned on
# them (4 epochs, each kept), base → tuned as an animated GIF (ImageMagick's
# convert, IM=path to pick one) and the tuned stage as a PNG.
if [ ! -f runs/demo-tuned/epochs/epoch-4/model.safetensors ]; then
  target/release/bertscope finetune --model "models/$M" --train assets/demo/claims-train.tsv \
    --dev assets/demo/claims-dev.tsv --output runs/demo-tuned --epochs 4 --batch-size 16 \
    --lr 1e-4 --keep-epochs --overwrite
fi
DATA=(--tuned runs/demo-tuned --train-data assets/demo/claims-train.tsv --view data)
shot data-view $M "${DATA[@]}"
IM="${IM:-convert}"
if "$IM" -version 2> /dev/null | grep -q ImageMagick; then
  FRAMES="$(mktemp -d)"
  for s in 0 0.5 1 1.5 2 2.5 3 3.5 4 4.5 5; do
    shot "data-frame" $M "${DATA[@]}" --stage "$s"
    "$IM" screenshots/data-frame.png -crop 1100x620+320+130 +repage -resize 70% "$FRAMES/$s.png"
  done
  rm screenshots/data-frame.png
  "$IM" -delay 45 -loop 0 "$FRAMES"/{0,0.5,1,1.5,2,2.5,3,3.5,4,4.5,5}.png -delay 200 "$FRAMES/5.png" \
    -layers Optimize screenshots/data-view.gif
fi
# Watch a run: the Trainer kit on the demo pairs under 2 torchrun processes on
# the CPU, caught mid-run. Needs a Python with torch, transformers and
# accelerate: VENV=path/to/venv (skipped without one).
if [ -x "${VENV:-}/bin/torchrun" ]; then
  KIT="$(mktemp -d)"
  target/release/bertscope finetune --model "models/$M" --train assets/demo/claims-train.tsv \
    --dev assets/demo/claims-dev.tsv --output "$KIT/out" --epochs 6 --batch-size 16 --lr 1e-4 \
    --max-length 64 --export-trainer "$KIT/kit"
  (cd "$KIT" && OMP_NUM_THREADS=1 "$VENV/bin/torchrun" --nproc_per_node 2 kit/train.py > run.log 2>&1) &
  until grep -q '"step": 60,' "$KIT/out/bertscope-log.jsonl" 2>/dev/null; do sleep 1; done
  shot watch-run $M --watch "$KIT/out"
  wait
fi
