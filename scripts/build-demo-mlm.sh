#!/usr/bin/env bash
# Build models/demo-mlm: the demo MiniLM with a masked-LM head, trained by
# bertscope's own `finetune --task mlm` on an open English corpus that the
# package registries serve — the glosses and example sentences of WordNet 3.0
# (Debian's wordnet-base, pinned and checksum-verified). The lessons' cloze
# scene uses it: the demo model ships without a masked-LM head.
#
#   bash scripts/build-demo-mlm.sh            # the full build (see README for time)
#   STEPS=50 bash scripts/build-demo-mlm.sh   # a quick check that it works
#
# Does nothing when models/demo-mlm is already there; a half-finished run
# resumes (finetune --resume).
set -euo pipefail

cd "$(dirname "$0")/.."
DEB_SHA256="61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752"
OUT="models/demo-mlm"
STEPS="${STEPS:-3000}"
BIN="${BIN:-target/release/bertscope}"

if [ -s "$OUT/config.json" ] && [ -s "$OUT/model.safetensors" ]; then
  echo "$OUT already built"
  exit 0
fi
bash scripts/fetch-demo-model.sh
[ -x "$BIN" ] || cargo build --release
mkdir -p models/.cache
deb="models/.cache/wordnet-base_3.0-37_all.deb"
if [ ! -s "$deb" ]; then
  echo "downloading WordNet 3.0 (Debian wordnet-base) ..."
  command -v apt-get >/dev/null || { echo "apt-get is needed to fetch Debian's wordnet-base" >&2; exit 1; }
  (cd models/.cache && apt-get download wordnet-base=1:3.0-37) || {
    echo "apt-get download wordnet-base failed: run 'apt-get update' first" >&2
    exit 1
  }
  mv models/.cache/wordnet-base_*3.0-37_all.deb "$deb"
fi
echo "$DEB_SHA256  $deb" | sha256sum --check --quiet -

corpus="models/.cache/wordnet-glosses.txt"
if [ ! -s "$corpus" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  dpkg-deb -x "$deb" "$tmp" 2>/dev/null || (cd "$tmp" && ar x "$OLDPWD/$deb" && tar -xf data.tar.* )
  # Each synset line ends in "| gloss; \"example\"; \"example\"": keep the
  # definitions and the examples of 6 to 40 words as sentences.
  python3 - "$tmp"/usr/share/wordnet/data.{noun,verb,adj,adv} > "$corpus" <<'PY'
import random, re, sys
out = set()
for path in sys.argv[1:]:
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:
                continue
            for part in line.split("|", 1)[1].split(";"):
                text = part.strip().strip('"').strip()
                text = re.sub(r"\s+", " ", text)
                if 6 <= len(text.split()) <= 40:
                    out.add(text[0].upper() + text[1:] + ("" if text[-1] in ".!?" else "."))
lines = sorted(out)
random.Random(0).shuffle(lines)
print("\n".join(lines))
PY
fi
echo "corpus: $(wc -l < "$corpus") sentences from WordNet glosses"

run="$OUT.partial"
if [ -d "$run" ]; then
  "$BIN" finetune --resume "$run"
else
  "$BIN" finetune --task mlm --model models/all-MiniLM-L6-v2 --train "$corpus" \
    --dev-fraction 0.01 --output "$OUT" --epochs 1 --max-steps "$STEPS" \
    --batch-size 32 --max-length 48 --lr 2e-4 --seed 1
fi
echo "built $OUT: try  $BIN fill-mask --model $OUT --text-a 'Paris is the [MASK] of France.'"
