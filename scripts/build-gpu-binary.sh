#!/usr/bin/env bash
# Build the `cuda` binary here (no GPU needed) and pack gpu-kit/: everything
# scripts/gpu-check.sh needs on the GPU machine that git does not carry.
#
#   bash scripts/build-gpu-binary.sh          # ~1 hour on 2 cores the first time
#
# gpu-kit/ (git-ignored) then holds: bertscope.xz (the stripped CUDA binary,
# xz-compressed), model-files/ (the demo model's vocabulary, tokenizer files and
# config — not its 90 MB of weights: gpu-check.sh makes seeded checkpoints
# there), demo/ (assets/demo/*.tsv), gpu-check.sh and gpu_check.py. The
# working tree plus the kit must stay under the GPU machine's 64 MiB.
#
# The compiler is CI's (.ci/run): nvcc from PyPI's CUDA 13.0 wheels in a venv
# (~/cu13), CUDA_COMPUTE_CAP=90 (H100/H200). Those wheels hold no libcuda,
# libcublas, libcublasLt, libcurand or libnvrtc, which candle links against
# (cudarc's `dynamic-linking`), so the link uses stub libraries generated from
# cudarc's own bindings with the real sonames; on the GPU machine the binary
# loads the driver's libcuda.so.1 and the CUDA libraries PyTorch ships
# (gpu-check.sh puts them on LD_LIBRARY_PATH). libcudart is the wheel's own.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
KIT="${KIT:-$ROOT/gpu-kit}"
TARGET_DIR="${TARGET_DIR:-target/cuda-release}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
CU="${CU:-$HOME/cu13}"
LIMIT_MIB=60          # the kit alone
TREE_LIMIT_MIB=62     # the kit plus the working tree git sends (the machine takes 64)

# 1. nvcc from PyPI (the same pins as .ci/run).
cuda_home() { ls -d "$CU"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -n 1; }
if [ ! -x "$(cuda_home)/bin/nvcc" ]; then
  echo "installing nvcc (PyPI CUDA 13.0 wheels) into $CU ..."
  python3 -m venv "$CU"
  "$CU/bin/pip" install -q nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
fi
CUDA_HOME="$(cuda_home)"
export CUDA_HOME PATH="$CUDA_HOME/bin:$PATH" CUDA_COMPUTE_CAP=90
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
nvcc --version | tail -n 2

# 2. Link stubs: one C function per symbol cudarc declares, in a library with
#    the real library's soname (so the binary asks for the real one at run time).
CUDARC="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.10 2>/dev/null | head -n 1)"
if [ -z "$CUDARC" ]; then
  cargo fetch --quiet
  CUDARC="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.10 | head -n 1)"
fi
grep -q '"cudarc"' Cargo.lock && grep -A1 'name = "cudarc"' Cargo.lock | grep -q '0.19.10' \
  || { echo "Cargo.lock no longer pins cudarc 0.19.10: update CUDARC in $0"; exit 1; }
STUBS="$TARGET_DIR/link-stubs"
rm -rf "$STUBS" && mkdir -p "$STUBS"
make_stub() { # cudarc module, library name, soname
  local module="$1" lib="$2" soname="$3"
  grep -A1 'extern "C" {' "$CUDARC/src/$module/sys/mod.rs" \
    | sed -n 's/^ *\(pub \)\{0,1\}fn \([A-Za-z0-9_]*\)(.*/\2/p' | sort -u \
    | awk '{print "int " $1 "(void) { return 999; }"}' >"$STUBS/$lib.c"
  [ -s "$STUBS/$lib.c" ] || { echo "no symbols found for $lib in $CUDARC"; exit 1; }
  gcc -shared -fPIC -Wl,-soname,"$soname" -o "$STUBS/lib$lib.so" "$STUBS/$lib.c"
  ln -sf "lib$lib.so" "$STUBS/$soname" # lets the binary start here (CPU only) with LD_LIBRARY_PATH
  echo "stub lib$lib.so ($soname): $(wc -l <"$STUBS/$lib.c") symbols"
}
make_stub driver cuda libcuda.so.1
make_stub nvrtc nvrtc libnvrtc.so.13
make_stub cublas cublas libcublas.so.13
make_stub cublaslt cublasLt libcublasLt.so.13
make_stub curand curand libcurand.so.10
ln -sf "$CUDA_HOME/lib/libcudart.so.13" "$STUBS/libcudart.so"
export LIBRARY_PATH="$STUBS${LIBRARY_PATH:+:$LIBRARY_PATH}"
if [ "${STUBS_ONLY:-0}" = 1 ]; then echo "stubs in $STUBS (STUBS_ONLY=1: not building)"; exit 0; fi

# 3. Build.
echo "cargo build --release --features cuda --target-dir $TARGET_DIR (CUDA_COMPUTE_CAP=90) ..."
start=$(date +%s)
cargo build --release --features cuda --target-dir "$TARGET_DIR"
echo "built in $(( $(date +%s) - start )) s"
BIN="$TARGET_DIR/release/bertscope"
needed="$(readelf -d "$BIN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
echo "needs: $needed"
case " $needed " in
  *" libcuda.so.1 "*) ;;
  *) echo "the binary does not link libcuda.so.1: not a CUDA build?"; exit 1 ;;
esac

# 4. The kit.
rm -rf "$KIT.new" && mkdir -p "$KIT.new/model-files" "$KIT.new/demo"
strip -o "$KIT.new/bertscope" "$BIN"
raw=$(stat -c %s "$KIT.new/bertscope")
xz -T0 -6 "$KIT.new/bertscope"
for f in config.json vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json; do
  src="models/all-MiniLM-L6-v2/$f"
  [ -f "$src" ] || { echo "missing $src: run bash scripts/fetch-demo-model.sh first"; exit 1; }
  cp "$src" "$KIT.new/model-files/"
done
cp assets/demo/*.tsv "$KIT.new/demo/"
cp scripts/gpu-check.sh scripts/gpu_check.py "$KIT.new/"
{
  echo "built: $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (+ uncommitted changes)')"
  echo "nvcc: $(nvcc --version | tail -n 1); CUDA_COMPUTE_CAP=90"
  echo "needs: $needed"
  echo "binary: $raw bytes stripped"
} >"$KIT.new/BUILD_INFO"
rm -rf "$KIT" && mv "$KIT.new" "$KIT"

kit_bytes=$(du -sb "$KIT" | cut -f1)
tree_bytes=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null || true) | awk '{s+=$1} END {print s+0}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b/1048576}'; }
echo "gpu-kit/: $(mib "$kit_bytes") MiB (binary $(mib "$raw") MiB stripped, $(mib "$(stat -c %s "$KIT/bertscope.xz")") MiB xz); working tree $(mib "$tree_bytes") MiB"
if [ "$kit_bytes" -gt $((LIMIT_MIB * 1048576)) ] || [ $((kit_bytes + tree_bytes)) -gt $((TREE_LIMIT_MIB * 1048576)) ]; then
  echo "too large: the kit must stay under $LIMIT_MIB MiB and kit + tree under $TREE_LIMIT_MIB MiB"
  exit 1
fi
echo "ready: on the GPU machine (kit carried), from the repository root: bash scripts/gpu-check.sh"
