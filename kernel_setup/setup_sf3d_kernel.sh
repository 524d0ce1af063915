#!/usr/bin/env bash
# One command: a user-space env with the CUDA 11.8 torch, SF3D built with CUDA, hub3d, and a
# Jupyter kernel "hub3d-sf3d". Idempotent; --dry-run prints every step without running it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
ENV_DIR="${HUB3D_ENV:-$HOME/.venvs/hub3d-sf3d}"
SRC_DIR="${HUB3D_SF3D_SRC:-$HOME/stable-fast-3d}"
SF3D_REPO="https://github.com/Stability-AI/stable-fast-3d.git"
SF3D_COMMIT="ff21fc4"
KERNEL_NAME="hub3d-sf3d"
CULL_TIMEOUT=604800  # one week: a long model load or a quiet night must not end the kernel
USE_CONDA=0; DRY=0; ARCH=""; GPU_QUERY=""; PYTHON_BIN="${PYTHON:-python3}"

usage() {
  cat <<USAGE
usage: $0 [--dry-run] [--conda] [--env DIR] [--src DIR] [--arch 8.9] [--gpu-query FILE]
          [--kernel-name NAME] [--cull-timeout SECONDS] [--python python3.10]
  --dry-run        print every step, run nothing
  --conda          make a conda env (python 3.10) instead of a venv
  --arch           TORCH_CUDA_ARCH_LIST; default: the card's compute capability from nvidia-smi
  --gpu-query FILE saved output of 'nvidia-smi --query-gpu=compute_cap --format=csv,noheader'
                   (e.g. from a GPU node, to build on a CPU-only login node)
USAGE
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --conda) USE_CONDA=1 ;;
    --env) ENV_DIR="$2"; shift ;;
    --src) SRC_DIR="$2"; shift ;;
    --arch) ARCH="$2"; shift ;;
    --gpu-query) GPU_QUERY="$2"; shift ;;
    --kernel-name) KERNEL_NAME="$2"; shift ;;
    --cull-timeout) CULL_TIMEOUT="$2"; shift ;;
    --python) PYTHON_BIN="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

step() { echo; echo "== $*"; }
run() {  # print the command; run it unless --dry-run
  echo "+ $*"
  if [ "$DRY" -eq 0 ]; then "$@"; fi
}

# compute capability: --arch, else a saved query, else nvidia-smi (last column, deduplicated)
detect_arch() {
  local out=""
  if [ -n "$GPU_QUERY" ]; then out="$(cat "$GPU_QUERY")"
  elif command -v nvidia-smi >/dev/null 2>&1; then
    out="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null || true)"
  fi
  echo "$out" | awk -F', *' 'NF && $NF ~ /^[0-9]+\.[0-9]+$/ {print $NF}' | sort -u | paste -sd';' -
}

step "1/6 GPU architecture"
if [ -z "$ARCH" ]; then ARCH="$(detect_arch)"; fi
if [ -z "$ARCH" ]; then
  echo "No GPU visible and no --arch: run this on a GPU node, or pass --arch 8.9 (RTX 6000 Ada)," >&2
  echo "8.0 (A100), 9.0 (H100); a baker built without CUDA fails at run time." >&2
  exit 1
fi
echo "TORCH_CUDA_ARCH_LIST=$ARCH"

step "2/6 environment $ENV_DIR"
if [ "$USE_CONDA" -eq 1 ]; then
  PY="$ENV_DIR/bin/python"
  if [ -x "$PY" ]; then echo "exists: $ENV_DIR"
  else run conda create -y -p "$ENV_DIR" python=3.10 pip; fi
else
  PY="$ENV_DIR/bin/python"
  if [ -x "$PY" ]; then echo "exists: $ENV_DIR"
  else run "$PYTHON_BIN" -m venv "$ENV_DIR"; fi
fi

step "3/6 packages (torch cu118, SF3D pins, hub3d)"
run "$PY" -m pip install --upgrade pip wheel setuptools
run "$PY" -m pip install -r "$REPO/requirements-cu118.txt"
run "$PY" -m pip install -e "$REPO[notebook,sf3d]"

step "4/6 SF3D source $SRC_DIR"
if [ -d "$SRC_DIR/.git" ]; then echo "exists: $SRC_DIR"
else
  run git clone "$SF3D_REPO" "$SRC_DIR"
  run git -C "$SRC_DIR" checkout "$SF3D_COMMIT"
fi

step "5/6 build texture_baker and uv_unwrapper with CUDA (nvcc must be 11.8, like torch)"
if [ "$DRY" -eq 0 ]; then
  command -v nvcc >/dev/null || { echo "nvcc not found: module load cuda/11.8, or conda install -c nvidia cuda-nvcc=11.8" >&2; exit 1; }
fi
for ext in texture_baker uv_unwrapper; do
  # USE_NATIVE_ARCH=0 drops -O3/-fopenmp from uv_unwrapper's flags: pass them back in CFLAGS
  run env USE_CUDA=1 USE_NATIVE_ARCH=0 TORCH_CUDA_ARCH_LIST="$ARCH" CFLAGS="-O3 -fopenmp" \
    "$PY" -m pip install --no-build-isolation --force-reinstall --no-deps "$SRC_DIR/$ext"
done

step "6/6 kernelspec $KERNEL_NAME (--user)"
run "$PY" -m ipykernel install --user --name "$KERNEL_NAME" --display-name "Python (hub3d SF3D, CUDA 11.8)"
run "$PY" "$HERE/patch_kernelspec.py" "$KERNEL_NAME" --cull-idle-timeout "$CULL_TIMEOUT" \
  --env "HUB3D_SF3D_SRC=$SRC_DIR" --env "PATH=$ENV_DIR/bin:\${PATH}"

step "done"
echo "Check it: $PY -m hub3d doctor"
echo "Then open sf3d_api_server.ipynb with the kernel \"Python (hub3d SF3D, CUDA 11.8)\" and Run All."
