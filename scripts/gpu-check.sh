#!/usr/bin/env bash
# The GPU check: bertscope's CUDA build against transformers/PyTorch on the same
# GPU, in one command that ends within ~8 minutes. Run from the repository root
# on the GPU machine, with gpu-kit/ (from scripts/build-gpu-binary.sh) carried:
#
#   bash scripts/gpu-check.sh                 # CUDA: the kit's binary, system python3
#   bash scripts/gpu-check.sh --device cpu    # dry run here: target/release/bertscope,
#                                             # torch on the CPU, small shapes, few steps
# Options: --kit DIR (default gpu-kit), --bin FILE, --python PY (or $PYTHON),
#          --budget SECONDS (default 450), --out DIR (default $OUT, else a temp folder).
#
# Parts, each under a timeout and each going on after a failure:
#   1. models   seeded random-weight checkpoints made by transformers from the
#               demo model's config: MiniLM's shape (6x384, 12 heads, 1536) and
#               BERT-base's (12x768, 12 heads, 3072), 3-label classifier head
#   2. parity   `attention --json` / `classify --json` vs transformers (eager)
#   3. steps    two `finetune` optimiser steps vs the same AdamW steps in PyTorch
#   4. speed    forward + attentions (batch 1) and fine-tuning examples/s (batch
#               32 x seq 128), BERT-base shape, vs PyTorch eager
#   5. e2e      `finetune` on the demo pairs, 1 epoch, wall time
#   6. gui      `gui --view train --screenshot` when an X display or Xvfb is there
# The log and the screenshot go to the --out folder; KEEP=1 keeps the checkpoints.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$HERE/../Cargo.toml" ]; then ROOT="$(cd "$HERE/.." && pwd)"; else ROOT="$HERE"; fi
cd "$ROOT"

DEVICE=cuda KIT="" BIN="" PY="${PYTHON:-python3}" BUDGET=450 OUTDIR="${OUT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --kit) KIT="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --out) OUTDIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option $1 (see --help)"; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "--device cuda|cpu"; exit 2 ;; esac
if [ -z "$KIT" ]; then
  if [ -f "$HERE/bertscope.xz" ] || [ -f "$HERE/bertscope" ]; then KIT="$HERE"; else KIT="$ROOT/gpu-kit"; fi
fi
START=$(date +%s)
DEADLINE=$((START + BUDGET))
WORK="$(mktemp -d /tmp/gpu-check.XXXXXX)"
OUTDIR="${OUTDIR:-$WORK/out}"
mkdir -p "$OUTDIR"
exec > >(tee "$OUTDIR/gpu-check.log") 2>&1
export PYTHONUNBUFFERED=1 XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK/xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
SCALE=full; [ "$DEVICE" = cpu ] && SCALE=small

RESULTS=()   # "part|status|seconds"
note() { echo "[$(( $(date +%s) - START ))s] $*"; }

# part NAME LIMIT command...: run under min(LIMIT, time left), record the outcome.
part() {
  local name="$1" limit="$2"; shift 2
  local left=$((DEADLINE - $(date +%s)))
  echo
  echo "=== $name ==="
  if [ "$left" -lt 15 ]; then
    note "SKIPPED $name: the ${BUDGET} s budget is spent"
    RESULTS+=("$name|SKIPPED (no time left)|0"); return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$(date +%s) rc
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
  rc=${PIPESTATUS[0]}
  local dt=$(( $(date +%s) - t0 )) status
  case "$rc" in
    0) status="ok" ;;
    1) status="FAILED (outside tolerance)" ;;
    3) status="SKIPPED ($(grep -m1 '^SKIPPED' "$WORK/$name.log" | cut -d: -f2- | sed 's/^ //'))" ;;
    124|137) status="FAILED (timed out after ${limit} s)" ;;
    *) status="FAILED (exit $rc: $(grep -E '^FAILED|Error|error' "$WORK/$name.log" | tail -n 1 | cut -c1-150))" ;;
  esac
  note "$name: $status (${dt} s)"
  RESULTS+=("$name|$status|$dt")
}

echo "bertscope GPU check, device $DEVICE, $(date -u +%FT%TZ), budget ${BUDGET} s, work $WORK"

# --- environment -------------------------------------------------------------
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 \
    || echo "FAILED: nvidia-smi"
fi
"$PY" -c "import torch, transformers; print('torch', torch.__version__, '(CUDA', torch.version.cuda, ', available:', torch.cuda.is_available(), '), transformers', transformers.__version__)" \
  || echo "FAILED: $PY cannot import torch and transformers"

if [ -z "$BIN" ]; then
  if [ "$DEVICE" = cpu ]; then
    BIN="$ROOT/target/release/bertscope"
  elif [ -f "$KIT/bertscope.xz" ]; then
    BIN="$WORK/bertscope"
    xz -dc "$KIT/bertscope.xz" >"$BIN" 2>/dev/null \
      || "$PY" -c "import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())" "$KIT/bertscope.xz" >"$BIN"
    chmod +x "$BIN"
  else
    BIN="$KIT/bertscope"
  fi
fi
[ -f "$KIT/BUILD_INFO" ] && [ "$DEVICE" = cuda ] && sed 's/^/kit: /' "$KIT/BUILD_INFO"

if [ "$DEVICE" = cuda ]; then
  # The CUDA libraries the binary links: PyTorch's wheels (nvidia/*), else a toolkit.
  LIBDIRS="$("$PY" - <<'PY'
import glob, os, site
want = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13"]
roots = site.getsitepackages() + [site.getusersitepackages()]
extra = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/nvidia/lib64",
         "/usr/lib/x86_64-linux-gnu"]
dirs = []
for w in want:
    hits = [h for r in roots for h in glob.glob(os.path.join(r, "nvidia", "**", w), recursive=True)]
    hits += [os.path.join(e, w) for e in extra if os.path.exists(os.path.join(e, w))]
    if hits and os.path.dirname(hits[0]) not in dirs:
        dirs.append(os.path.dirname(hits[0]))
print(":".join(dirs))
PY
)"
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    if [ -e "$d/libcuda.so.1" ] && ! ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 '; then LIBDIRS="$LIBDIRS:$d"; break; fi
  done
  export LD_LIBRARY_PATH="${LIBDIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi
BIN_OK=1
if [ ! -x "$BIN" ]; then
  echo "FAILED: no bertscope binary at $BIN (build it: bash scripts/build-gpu-binary.sh, or cargo build --release for --device cpu)"
  BIN_OK=0
elif ldd "$BIN" | grep -q "not found"; then
  echo "FAILED: libraries not found:"; ldd "$BIN" | grep "not found"
  BIN_OK=0
else
  echo "binary: $BIN ($("$BIN" --version 2>&1))"
fi
RESULTS+=("binary|$([ $BIN_OK = 1 ] && echo ok || echo 'FAILED (see above)')|0")

DEMO="$KIT/demo"; [ -f "$DEMO/claims-train.tsv" ] || DEMO="$ROOT/assets/demo"
FILES="$KIT/model-files"
if [ ! -f "$FILES/vocab.txt" ] && [ -f "$ROOT/models/all-MiniLM-L6-v2/vocab.txt" ]; then FILES="$ROOT/models/all-MiniLM-L6-v2"; fi
HELPER="$HERE/gpu_check.py"
COMMON=(--work "$WORK" --scale "$SCALE" --device "$DEVICE" --bin "$BIN" --demo "$DEMO")

# --- the parts ------------------------------------------------------------------
part models 120 "$PY" "$HELPER" models --work "$WORK" --scale "$SCALE" --device "$DEVICE" --files "$FILES"
part parity 150 "$PY" "$HELPER" parity "${COMMON[@]}"
part steps 150 "$PY" "$HELPER" steps "${COMMON[@]}"
part speed 150 "$PY" "$HELPER" speed "${COMMON[@]}"
part e2e 150 "$PY" "$HELPER" e2e "${COMMON[@]}"

gui_shot() {
  local shot="$OUTDIR/gui-train.png" xpid=""
  if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    if ! command -v Xvfb >/dev/null; then
      echo "SKIPPED: no display and no Xvfb on this machine: the app cannot render here"
      return 3
    fi
    Xvfb :97 -screen 0 1600x1000x24 >/dev/null 2>&1 & xpid=$!
    export DISPLAY=:97; sleep 2
  fi
  [ "$DEVICE" = cuda ] && export __GLX_VENDOR_LIBRARY_NAME=nvidia
  local t0=$(date +%s) rc
  "$BIN" gui --model "$WORK/models/minilm-cls" --view train --train-data "$DEMO/claims-train.tsv" \
    --device "$DEVICE" --screenshot "$shot"
  rc=$?
  [ -n "$xpid" ] && kill "$xpid" 2>/dev/null
  if [ $rc = 0 ] && [ -s "$shot" ]; then
    echo "SUMMARY gui --view train --screenshot on $DEVICE: saved $shot ($(( $(date +%s) - t0 )) s)"
  fi
  return $rc
}
if [ $BIN_OK = 1 ]; then
  export -f gui_shot && export BIN WORK DEMO OUTDIR DEVICE
  part gui 60 bash -c gui_shot
else
  RESULTS+=("gui|SKIPPED (no binary)|0")
fi

# --- summary ----------------------------------------------------------------------
echo
echo "=== summary (device $DEVICE, $(( $(date +%s) - START )) s in all) ==="
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'
failed=0
for r in "${RESULTS[@]}"; do
  IFS='|' read -r name status secs <<<"$r"
  printf '%-7s %-50s %4ss\n' "$name" "$status" "$secs"
  case "$status" in FAILED*) failed=$((failed + 1)) ;; esac
  grep -h '^SUMMARY ' "$WORK/$name.log" 2>/dev/null | sed 's/^SUMMARY /        /'
done
# The checkpoints (about 1 GB on the GPU) go; the log stays. KEEP=1 keeps everything.
[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK/models" "$WORK"/steps-* "$WORK"/e2e*
echo "log: $OUTDIR/gpu-check.log"
[ $failed = 0 ] && echo "ALL PARTS RAN (see the numbers above)" || echo "$failed part(s) FAILED"
exit $((failed > 0))
