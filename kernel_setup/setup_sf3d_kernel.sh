#!/usr/bin/env bash
# One command: a user-space env with torch 2.4.1 (CUDA 11.8 build, or --cpu), SF3D's pins and its
# two extensions, hub3d, and a Jupyter kernel "hub3d-sf3d". Idempotent; --dry-run prints every
# step without running it. The last step imports every class the SF3D config names, so a broken
# env fails here and not in the first job.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
ENV_DIR="${HUB3D_ENV:-$HOME/.venvs/hub3d-sf3d}"
SRC_DIR="${HUB3D_SF3D_SRC:-$HOME/stable-fast-3d}"
SF3D_REPO="https://github.com/Stability-AI/stable-fast-3d.git"
SF3D_COMMIT="ff21fc4"
KERNEL_NAME="hub3d-sf3d"
CULL_TIMEOUT=604800  # one week: a long model load or a quiet night must not end the kernel
USE_CONDA=0; DRY=0; CPU=0; ARCH=""; GPU_QUERY=""; PYTHON_BIN="${PYTHON:-}"
# SF3D's pins have wheels for CPython 3.10 and 3.11 only (gpytoolbox 0.2.0); hub3d needs >= 3.10
PY_OK='import sys; sys.exit(0 if sys.version_info[:2] in ((3, 10), (3, 11)) else 1)'

usage() {
  cat <<USAGE
usage: $0 [--dry-run] [--cpu] [--conda] [--env DIR] [--src DIR] [--arch 8.9] [--gpu-query FILE]
          [--kernel-name NAME] [--cull-timeout SECONDS] [--python python3.11]
  --dry-run        print every step, run nothing
  --cpu            no CUDA: torch from PyPI, extensions built with USE_CUDA=0 (CPU servers, laptops)
  --conda          make a conda env (python 3.11) instead of a venv
  --python PY      the Python for the venv (3.10 or 3.11; default: the first of python3.11,
                   python3.10, python3 that is one)
  --src DIR        an existing stable-fast-3d checkout or extracted archive (else: git clone)
  --arch           TORCH_CUDA_ARCH_LIST; default: the card's compute capability from nvidia-smi
  --gpu-query FILE saved output of 'nvidia-smi --query-gpu=compute_cap --format=csv,noheader'
                   (e.g. from a GPU node, to build on a CPU-only login node)
USAGE
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --cpu) CPU=1 ;;
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
ENV_DIR="$(realpath -m "$ENV_DIR")"; SRC_DIR="$(realpath -m "$SRC_DIR")"

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

step "1/7 Python"
PY="$ENV_DIR/bin/python"
if [ -x "$PY" ] || [ "$USE_CONDA" -eq 1 ]; then
  echo "$PY (the env's own)"
else
  if [ -z "$PYTHON_BIN" ]; then
    for candidate in python3.11 python3.10 python3; do
      if command -v "$candidate" >/dev/null && "$candidate" -c "$PY_OK" 2>/dev/null; then
        PYTHON_BIN="$candidate"; break
      fi
    done
  fi
  if [ -z "$PYTHON_BIN" ] || ! "$PYTHON_BIN" -c "$PY_OK" 2>/dev/null; then
    found="$("${PYTHON_BIN:-python3}" --version 2>&1 || echo none)"
    echo "SF3D's pinned packages have wheels for Python 3.10 and 3.11 only; found: $found." >&2
    echo "Fix: rerun with --python /path/to/python3.11, or with --conda (makes a Python 3.11 env)." >&2
    exit 1
  fi
  echo "$PYTHON_BIN ($("$PYTHON_BIN" --version 2>&1))"
fi

step "2/7 GPU architecture"
if [ "$CPU" -eq 1 ]; then
  echo "--cpu: no CUDA build (SF3D runs on the CPU: ~1.5 min a job on 2 cores, ~9 GB RAM)"
else
  if [ -z "$ARCH" ]; then ARCH="$(detect_arch)"; fi
  if [ -z "$ARCH" ]; then
    echo "No GPU visible and no --arch: run this on a GPU node, or pass --arch 8.9 (RTX 6000 Ada)," >&2
    echo "8.0 (A100), 9.0 (H100); or --cpu for an env that runs SF3D on the CPU." >&2
    exit 1
  fi
  echo "TORCH_CUDA_ARCH_LIST=$ARCH"
fi

step "3/7 environment $ENV_DIR"
if [ -x "$PY" ]; then echo "exists: $ENV_DIR"
elif [ "$USE_CONDA" -eq 1 ]; then run conda create -y -p "$ENV_DIR" python=3.11 pip
else run "$PYTHON_BIN" -m venv "$ENV_DIR"
fi

step "4/7 packages (torch 2.4.1, SF3D's pins, hub3d)"
# setuptools 69.5.1: what SF3D's README pins for building its extensions (torch 2.1's
# cpp_extension needed pkg_resources.packaging, gone in setuptools 70; 2.4.1's no longer imports
# pkg_resources, and this is the release upstream built with); wheel: for --no-build-isolation
run "$PY" -m pip install --upgrade pip
run "$PY" -m pip install setuptools==69.5.1 wheel
if [ "$CPU" -eq 1 ]; then
  run "$PY" -m pip install -r "$HERE/requirements-cpu.txt"
else
  run "$PY" -m pip install -r "$REPO/requirements-cu118.txt"
fi
run "$PY" -m pip install -e "$REPO[notebook,sf3d]"

step "5/7 SF3D source $SRC_DIR"
if [ -f "$SRC_DIR/sf3d/system.py" ]; then echo "exists: $SRC_DIR"
else
  run git clone "$SF3D_REPO" "$SRC_DIR"
  run git -C "$SRC_DIR" checkout "$SF3D_COMMIT"
fi

step "6/7 build texture_baker and uv_unwrapper"
BUILD=(bash "$HERE/build_sf3d_extensions.sh" --env "$ENV_DIR" --src "$SRC_DIR")
if [ "$CPU" -eq 1 ]; then BUILD+=(--cpu); else BUILD+=(--arch "$ARCH"); fi
if [ "$DRY" -eq 1 ]; then BUILD+=(--dry-run); fi
"${BUILD[@]}"

step "7/7 kernelspec $KERNEL_NAME (--user) and the load check"
DISPLAY_NAME="Python (hub3d SF3D, $([ "$CPU" -eq 1 ] && echo CPU || echo CUDA 11.8))"
run "$PY" -m ipykernel install --user --name "$KERNEL_NAME" --display-name "$DISPLAY_NAME"
run "$PY" "$HERE/patch_kernelspec.py" "$KERNEL_NAME" --cull-idle-timeout "$CULL_TIMEOUT" \
  --env "HUB3D_SF3D_SRC=$SRC_DIR" --env "PATH=$ENV_DIR/bin:\${PATH}"
# every class the SF3D config names, imported by its path (no weights): what SF3D(cfg) will need
run env "HUB3D_SF3D_SRC=$SRC_DIR" "$PY" "$REPO/hub3d/doctor/sf3d_probe.py" --check

step "done"
echo "Check it: $PY -m hub3d doctor"
echo "Then open sf3d_api_server.ipynb with the kernel \"$DISPLAY_NAME\" and Run All."
