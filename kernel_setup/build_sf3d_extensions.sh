#!/usr/bin/env bash
# Build SF3D's texture_baker and uv_unwrapper against the env's torch: with CUDA for the given
# compute capabilities, or (--cpu) without. Called by setup_sf3d_kernel.sh; usable alone to
# rebuild. --wheel-dir builds wheels there instead of installing them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENV_DIR=""; SRC_DIR=""; ARCH=""; CPU=0; DRY=0; WHEEL_DIR=""; EXTS="texture_baker uv_unwrapper"

usage() {
  cat <<USAGE
usage: $0 --env DIR --src DIR (--arch 8.9 | --cpu) [--only EXT] [--wheel-dir DIR] [--dry-run]
USAGE
}
while [ $# -gt 0 ]; do
  case "$1" in
    --env) ENV_DIR="$2"; shift ;;
    --src) SRC_DIR="$2"; shift ;;
    --arch) ARCH="$2"; shift ;;
    --cpu) CPU=1 ;;
    --only) EXTS="$2"; shift ;;
    --wheel-dir) WHEEL_DIR="$2"; shift ;;
    --dry-run) DRY=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$ENV_DIR" ] || [ -z "$SRC_DIR" ] || { [ "$CPU" -eq 0 ] && [ -z "$ARCH" ]; }; then
  usage >&2; exit 2
fi
PY="$ENV_DIR/bin/python"
run() { echo "+ $*"; if [ "$DRY" -eq 0 ]; then "$@"; fi; }
in_dir() { local dir="$1"; shift; echo "+ (cd $dir && $*)"; if [ "$DRY" -eq 0 ]; then (cd "$dir" && "$@"); fi; }
fail() { echo "$*" >&2; exit 1; }

# USE_NATIVE_ARCH=0 keeps the build portable across the hub's nodes, but it also drops -O3 and
# -fopenmp from the setup.py's C++ flags: pass them back in CFLAGS.
BUILD_ENV=(USE_NATIVE_ARCH=0 "CFLAGS=-O3 -fopenmp")

if [ "$CPU" -eq 1 ]; then
  BUILD_ENV+=(USE_CUDA=0)
elif [ "$DRY" -eq 1 ]; then
  BUILD_ENV+=(USE_CUDA=1 "TORCH_CUDA_ARCH_LIST=$ARCH" "CUDA_HOME=<nvcc of the torch's CUDA>")
else
  TORCH_CUDA="$("$PY" -c 'import torch; print(torch.version.cuda or "")')"
  [ -n "$TORCH_CUDA" ] || fail "This env's torch has no CUDA: install requirements-cu118.txt, or build with --cpu."
  CUDA_MAJOR="${TORCH_CUDA%%.*}"
  CC_BIN="${CC:-gcc}"
  command -v "$CC_BIN" >/dev/null || fail "No C compiler ($CC_BIN): install gcc (conda install -c conda-forge gcc gxx), or set CC and CXX."
  GCC_MAJOR="$("$CC_BIN" -dumpversion | cut -d. -f1)"
  MAX_GCC="$("$PY" "$HERE/cuda_toolchain.py" max-gcc "$TORCH_CUDA")"

  # 1) the system nvcc, when it is the torch's CUDA and accepts this gcc
  SYS_NVCC="$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p' || true)"
  if [ "$SYS_NVCC" = "$TORCH_CUDA" ] && [ "$GCC_MAJOR" -le "$MAX_GCC" ]; then
    CUDA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
    echo "using the system nvcc $SYS_NVCC ($CUDA_HOME) with $CC_BIN $GCC_MAJOR"
  else
    # 2) the torch's exact CUDA from PyPI, into the env (no root, no module system needed)
    echo "system nvcc: ${SYS_NVCC:-none}; torch needs CUDA $TORCH_CUDA: installing nvcc $TORCH_CUDA into the env"
    run "$PY" -m pip install "nvidia-cuda-nvcc-cu$CUDA_MAJOR==$TORCH_CUDA.*" \
      "nvidia-cuda-runtime-cu$CUDA_MAJOR==$TORCH_CUDA.*"
    CUDA_HOME="$("$PY" "$HERE/cuda_toolchain.py" cuda-home "$ENV_DIR")"
  fi
  # 3) a gcc nvcc accepts: this one, gcc-N on PATH, or gcc N from conda-forge
  if [ "$GCC_MAJOR" -gt "$MAX_GCC" ]; then
    if command -v "gcc-$MAX_GCC" >/dev/null && command -v "g++-$MAX_GCC" >/dev/null; then
      CC_BIN="gcc-$MAX_GCC"; export CXX="g++-$MAX_GCC"
    elif command -v conda >/dev/null; then
      run conda create -y -p "$ENV_DIR/gcc$MAX_GCC" -c conda-forge "gcc=$MAX_GCC" "gxx=$MAX_GCC"
      CC_BIN="$ENV_DIR/gcc$MAX_GCC/bin/x86_64-conda-linux-gnu-gcc"
      export CXX="$ENV_DIR/gcc$MAX_GCC/bin/x86_64-conda-linux-gnu-g++"
    else
      fail "nvcc $TORCH_CUDA accepts gcc <= $MAX_GCC, this is gcc $GCC_MAJOR and there is no conda.
Fix: install gcc $MAX_GCC and run again with CC=gcc-$MAX_GCC CXX=g++-$MAX_GCC
  (Debian/Ubuntu: apt install g++-$MAX_GCC; or install Miniforge, then this recipe uses conda-forge's gcc $MAX_GCC)."
    fi
    echo "host compiler for nvcc: $CC_BIN"
  fi
  export CC="$CC_BIN"  # torch's cpp_extension passes \$CC to nvcc as -ccbin
  BUILD_ENV+=(USE_CUDA=1 "TORCH_CUDA_ARCH_LIST=$ARCH" "CUDA_HOME=$CUDA_HOME"
              "PATH=$CUDA_HOME/bin:$PATH")
fi

for ext in $EXTS; do
  # from inside the extension's folder: its setup.py globs the sources relative to the cwd
  if [ -n "$WHEEL_DIR" ]; then
    in_dir "$SRC_DIR/$ext" env "${BUILD_ENV[@]}" "$PY" -m pip wheel --no-build-isolation --no-deps \
      -w "$WHEEL_DIR" .
  else
    in_dir "$SRC_DIR/$ext" env "${BUILD_ENV[@]}" "$PY" -m pip install --no-build-isolation \
      --force-reinstall --no-deps .
  fi
done
