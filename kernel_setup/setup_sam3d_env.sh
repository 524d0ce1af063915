#!/usr/bin/env bash
# The SAM-3D-Objects env: conda (brings the CUDA 12.1 toolkit without root), Python 3.11,
# torch 2.5.1+cu121, the upstream code. hub3d's SF3D kernel runs it as a separate worker:
# set HUB3D_SAM3D_PYTHON to the python printed at the end. --dry-run prints every step.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
ENV_DIR="${HUB3D_SAM3D_ENV:-$HOME/.conda-envs/hub3d-sam3d}"
SRC_DIR="${HUB3D_SAM3D_SRC:-$HOME/sam-3d-objects}"
SAM3D_REPO="https://github.com/facebookresearch/sam-3d-objects.git"
SAM3D_COMMIT="cf06676"
KERNEL_NAME="hub3d-sf3d"  # the kernel that serves both: gets HUB3D_SAM3D_PYTHON in its env
DRY=0

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --env) ENV_DIR="$2"; shift ;;
    --src) SRC_DIR="$2"; shift ;;
    --kernel-name) KERNEL_NAME="$2"; shift ;;
    -h|--help) echo "usage: $0 [--dry-run] [--env DIR] [--src DIR] [--kernel-name NAME]"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

step() { echo; echo "== $*"; }
run() { echo "+ $*"; if [ "$DRY" -eq 0 ]; then "$@"; fi; }
PY="$ENV_DIR/bin/python"

step "1/5 conda env $ENV_DIR (Python 3.11, CUDA 12.1 toolkit)"
if [ "$DRY" -eq 0 ] && ! command -v conda >/dev/null; then
  echo "conda not found: install Miniforge in your home (no root needed), then re-run." >&2; exit 1
fi
if [ -x "$PY" ]; then echo "exists: $ENV_DIR"
else run conda create -y -p "$ENV_DIR" python=3.11 pip; fi
run conda install -y -p "$ENV_DIR" -c "nvidia/label/cuda-12.1.0" cuda-toolkit

step "2/5 torch 2.5.1 (cu121)"
run "$PY" -m pip install torch==2.5.1 torchvision==0.20.1 --index-url https://download.pytorch.org/whl/cu121

step "3/5 SAM-3D-Objects source $SRC_DIR"
if [ -d "$SRC_DIR/.git" ]; then echo "exists: $SRC_DIR"
else
  run git clone "$SAM3D_REPO" "$SRC_DIR"
  run git -C "$SRC_DIR" checkout "$SAM3D_COMMIT"
fi

step "4/5 upstream requirements (pytorch3d, spconv, gsplat, kaolin: see its doc/setup.md)"
run env CUDA_HOME="$ENV_DIR" PIP_EXTRA_INDEX_URL="https://download.pytorch.org/whl/cu121" \
  "$PY" -m pip install -e "$SRC_DIR"
run "$PY" -m pip install -e "$REPO"  # the worker side of hub3d (no server extras needed)

step "5/5 point the hub3d kernel at it"
if [ "$DRY" -eq 1 ] || "$PY" -c "import jupyter_client" 2>/dev/null; then
  run "$PY" "$HERE/patch_kernelspec.py" "$KERNEL_NAME" --cull-idle-timeout 604800 \
    --env "HUB3D_SAM3D_PYTHON=$PY" --env "HUB3D_SAM3D_SRC=$SRC_DIR" || true
fi
echo
echo "Set in the serving kernel (done in kernelspec $KERNEL_NAME when it exists):"
echo "  export HUB3D_SAM3D_PYTHON=$PY"
echo "  export HUB3D_SAM3D_SRC=$SRC_DIR"
echo "Weights (gated, ~13 GB): hub3d fetch-weights sam3d. SAM-3D needs >= 32 GB of VRAM."
