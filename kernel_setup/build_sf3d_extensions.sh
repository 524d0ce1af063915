#!/usr/bin/env bash
# Build SF3D's texture_baker and uv_unwrapper against the env's torch: with CUDA for the given
# compute capabilities, or (--cpu) without. Called by setup_sf3d_kernel.sh; usable alone to
# rebuild. --wheel-dir builds wheels there instead of installing them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENV_DIR=""; SRC_DIR=""; ARCH=""; CPU=0; DRY=0; WHEEL_DIR=""; EXTS="texture_baker uv_unwrapper"
USER_NVCC=0

usage() {
  cat <<USAGE
usage: $0 --env DIR --src DIR (--arch 8.9 | --cpu) [--only EXT] [--wheel-dir DIR] [--dry-run]
          [--user-nvcc]
  --user-nvcc   do not use the system nvcc even if it fits: fetch the torch's own into the env
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
    --user-nvcc) USER_NVCC=1 ;;
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
  # torch's cpp_extension refuses an nvcc of another CUDA major than its own
  nvcc_release() { "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p'; }
  SYS_NVCC=""
  if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then SYS_NVCC_BIN="$CUDA_HOME/bin/nvcc"
  else SYS_NVCC_BIN="$(command -v nvcc || true)"; fi
  if [ -n "$SYS_NVCC_BIN" ]; then SYS_NVCC="$(nvcc_release "$SYS_NVCC_BIN")"; fi
  if [ "$USER_NVCC" -eq 0 ] && [ "${SYS_NVCC%%.*}" = "$CUDA_MAJOR" ]; then
    # 1) the system's (or $CUDA_HOME's) nvcc of the torch's CUDA major
    CUDA_HOME="$(dirname "$(dirname "$(readlink -f "$SYS_NVCC_BIN")")")"
    for home in "$CUDA_HOME" "/usr/local/cuda-$SYS_NVCC" /usr/local/cuda; do  # nvcc may be a wrapper
      if [ -f "$home/include/cuda_runtime.h" ]; then CUDA_HOME="$home"; break; fi
    done
    [ -f "$CUDA_HOME/include/cuda_runtime.h" ] || fail "nvcc $SYS_NVCC is at $SYS_NVCC_BIN, but no CUDA headers next to it: set CUDA_HOME to its toolkit folder."
    NVCC="$SYS_NVCC"
    echo "using the system nvcc $SYS_NVCC ($CUDA_HOME) for torch's CUDA $TORCH_CUDA"
  elif [ "$CUDA_MAJOR" -ge 13 ]; then
    # 2) PyPI carries the whole compiler from CUDA 13 on (nvidia-cuda-nvcc-cu11/-cu12 hold only
    #    ptxas): the torch's exact release, into the env
    echo "system nvcc: ${SYS_NVCC:-none}; torch is CUDA $TORCH_CUDA: installing nvcc $TORCH_CUDA into the env"
    # cccl: the libcu++ headers (nv/target) CUDA 13's cuda_fp16.h includes; nvvm and crt pinned
    # too: nvcc leaves them unpinned, and a newer nvvm writes PTX this ptxas refuses
    run "$PY" -m pip install "nvidia-cuda-nvcc==$TORCH_CUDA.*" "nvidia-cuda-runtime==$TORCH_CUDA.*" \
      "nvidia-cuda-cccl==$TORCH_CUDA.*" "nvidia-nvvm==$TORCH_CUDA.*" "nvidia-cuda-crt==$TORCH_CUDA.*"
    CUDA_HOME="$("$PY" "$HERE/cuda_toolchain.py" cuda-home "$ENV_DIR")"; NVCC="$TORCH_CUDA"
  elif command -v conda >/dev/null; then
    # 3) CUDA 11/12: the toolkit's compiler and headers from NVIDIA's conda channel, user-space
    echo "system nvcc: ${SYS_NVCC:-none}; torch is CUDA $TORCH_CUDA: nvcc $TORCH_CUDA from the nvidia conda channel"
    CUDA_HOME="$ENV_DIR/cuda-$TORCH_CUDA"
    if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
      run conda create -y -p "$CUDA_HOME" -c "nvidia/label/cuda-$TORCH_CUDA.0" cuda-nvcc \
        cuda-cudart-dev libcublas-dev libcusparse-dev libcusolver-dev
    fi
    NVCC="$TORCH_CUDA"
  else
    fail "This torch is built for CUDA $TORCH_CUDA; the nvcc here is ${SYS_NVCC:-missing}, and PyPI has no nvcc for CUDA $CUDA_MAJOR.
Fix, one of:
  module load cuda/$TORCH_CUDA   (where the hub has environment modules), then run this again;
  install Miniforge (no root: https://github.com/conda-forge/miniforge) and run this again: it then
    fetches nvcc $TORCH_CUDA from the nvidia conda channel into the env;
  CUDA_HOME=/path/to/cuda-$TORCH_CUDA $0 ...   (a CUDA $TORCH_CUDA toolkit you already have)."
  fi
  MAX_GCC="$("$PY" "$HERE/cuda_toolchain.py" max-gcc "$NVCC")"
  # then a gcc that nvcc accepts: this one, gcc-N on PATH, or gcc N from conda-forge
  if [ "$GCC_MAJOR" -gt "$MAX_GCC" ]; then
    if command -v "gcc-$MAX_GCC" >/dev/null && command -v "g++-$MAX_GCC" >/dev/null; then
      CC_BIN="gcc-$MAX_GCC"; export CXX="g++-$MAX_GCC"
    elif command -v conda >/dev/null; then
      run conda create -y -p "$ENV_DIR/gcc$MAX_GCC" -c conda-forge "gcc=$MAX_GCC" "gxx=$MAX_GCC"
      CC_BIN="$ENV_DIR/gcc$MAX_GCC/bin/x86_64-conda-linux-gnu-gcc"
      export CXX="$ENV_DIR/gcc$MAX_GCC/bin/x86_64-conda-linux-gnu-g++"
    else
      fail "nvcc $NVCC accepts gcc <= $MAX_GCC, this is gcc $GCC_MAJOR and there is no conda.
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
