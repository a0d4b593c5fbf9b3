#!/usr/bin/env bash
# Render bertscope's SVG exports with librsvg (rsvg-convert) and headless
# Chromium and report each one's mean pixel difference from the PNG export of
# the same view (ImageMagick's `compare -metric MAE`, 0 = identical, 1 = all
# different). Needs: apt-get install librsvg2-bin chromium imagemagick.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-demo-model.sh > /dev/null
cargo build --release -q
BIN=target/release/bertscope
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
COMPARE="${COMPARE:-compare}"
CONVERT="${CONVERT:-convert}"
M=models/all-MiniLM-L6-v2
EN="The animal didn't cross the street because it was too tired."

export_both() { # name, then export arguments
  local name="$1"; shift
  for ext in svg png; do
    "$BIN" export --model "$M" --text-a "$EN" "$@" --scale 1 --output "$OUT/$name.$ext" 2> /dev/null
  done
}
export_both head --view head --layer 3 --head 1
export_both model --view model --layer 3 --head 1
export_both matrix --view matrix --layer 3 --head 1
export_both tokens --view tokens
# A lesson's scene (the built-in lesson's coreference scene), as the handout draws it.
"$BIN" present assets/lessons/bert-tutorial.toml --scene 3 --export-dir "$OUT/lesson" --format svg 2> /dev/null
"$BIN" present assets/lessons/bert-tutorial.toml --scene 3 --export-dir "$OUT/lesson" --format png --scale 1 2> /dev/null
cp "$OUT/lesson/scene-03.svg" "$OUT/lesson.svg"
cp "$OUT/lesson/scene-03.png" "$OUT/lesson.png"

mae() { # the normalised mean absolute error of two same-sized PNGs
  "$COMPARE" -metric MAE "$1" "$2" null: 2>&1 | sed -E 's/.*\((.*)\)/\1/'
}

printf '%-8s %10s %10s %14s %14s\n' view width height librsvg chromium
for name in head model matrix tokens lesson; do
  png="$OUT/$name.png"
  size=$("$CONVERT" "$png" -format '%w %h' info:)
  read -r w h <<< "$size"
  rsvg-convert "$OUT/$name.svg" -w "$w" -h "$h" -o "$OUT/$name.rsvg.png"
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="$w,$h" --screenshot="$OUT/$name.chromium.png" "file://$(realpath "$OUT/$name.svg")" 2> /dev/null
  for r in rsvg chromium; do
    "$CONVERT" "$OUT/$name.$r.png" -background "rgb(27,27,27)" -flatten -crop "${w}x${h}+0+0" +repage "$OUT/$name.$r.flat.png"
  done
  "$CONVERT" "$png" -background "rgb(27,27,27)" -flatten "$OUT/$name.flat.png"
  printf '%-8s %10s %10s %14s %14s\n' "$name" "$w" "$h" \
    "$(mae "$OUT/$name.flat.png" "$OUT/$name.rsvg.flat.png")" \
    "$(mae "$OUT/$name.flat.png" "$OUT/$name.chromium.flat.png")"
done
echo "renders in $OUT"
