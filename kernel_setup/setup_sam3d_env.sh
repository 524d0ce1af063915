#!/usr/bin/env bash
# The SAM-3D-Objects env, as upstream's doc/setup.md builds it: a conda env from its
# environments/default.yml (Python 3.11.0, the CUDA 12.1 toolkit, gcc/gxx 12.4 — nvcc 12.1 needs
# gcc <= 12 — setuptools 75.8.2), then pip install -e '.[dev]', '.[p3d]' and, with kaolin's
# find-links page, '.[inference]', then upstream's hydra patch. hub3d's serving kernel runs it as
# a separate worker (HUB3D_SAM3D_PYTHON). The last step imports everything notebook/inference.py
# needs, so a broken env fails here and not in the first job. ~15-20 GB on disk.
#
# External tools can be overridden (tests put recorded fakes first on PATH):
#   HUB3D_CONDA    conda, mamba or micromamba to use (default: the first found on PATH, else
#                  Miniforge is installed into ~/miniforge3, no root needed)
#   NVIDIA_SMI     nvidia-smi (the cards decide TORCH_CUDA_ARCH_LIST and whether flash_attn
#                  must import: upstream uses it on cards named A100/H100/H200)
# --dry-run prints every step and changes nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
ENV_DIR="${HUB3D_SAM3D_ENV:-$HOME/.conda-envs/hub3d-sam3d}"
SRC_DIR="${HUB3D_SAM3D_SRC:-$HOME/sam-3d-objects}"
DATA_DIR="${HUB3D_DATA_DIR:-$HOME/hub3d-data}"
SAM3D_REPO="https://github.com/facebookresearch/sam-3d-objects.git"
SAM3D_COMMIT="cf06676"  # the commit hub3d's adapter and tests/upstream are checked against
MINIFORGE_URL="https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-x86_64.sh"
# From upstream's doc/setup.md: torch 2.5.1+cu121 and NVIDIA's wheels; kaolin 0.17.0's wheels.
EXTRA_INDEX="https://pypi.ngc.nvidia.com https://download.pytorch.org/whl/cu121"
KAOLIN_LINKS="https://nvidia-kaolin.s3.us-east-2.amazonaws.com/torch-2.5.1_cu121.html"
KERNEL_NAME="hub3d-sf3d"  # the kernel that serves both: gets HUB3D_SAM3D_PYTHON in its env
NVIDIA_SMI="${NVIDIA_SMI:-nvidia-smi}"
DRY=0

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --env) ENV_DIR="$2"; shift ;;
    --src) SRC_DIR="$2"; shift ;;
    --data-dir) DATA_DIR="$2"; shift ;;
    --kernel-name) KERNEL_NAME="$2"; shift ;;
    -h|--help) echo "usage: $0 [--dry-run] [--env DIR] [--src DIR] [--data-dir DIR] [--kernel-name NAME]"
               exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

step() { echo; echo "== $*"; }
run() { echo "+ $*"; if [ "$DRY" -eq 0 ]; then "$@"; fi; }
PY="$ENV_DIR/bin/python"
# What activating the env does, for pip's builds: its nvcc, gcc 12 and CUDA_HOME first.
IN_ENV=(env "PATH=$ENV_DIR/bin:$PATH" "CONDA_PREFIX=$ENV_DIR" "CUDA_HOME=$ENV_DIR")

step "1/8 conda"
CONDA="${HUB3D_CONDA:-}"
if [ -z "$CONDA" ]; then
  for tool in micromamba mamba conda; do
    if command -v "$tool" >/dev/null; then CONDA="$(command -v "$tool")"; break; fi
  done
fi
if [ -z "$CONDA" ]; then
  echo "no conda, mamba or micromamba on PATH: installing Miniforge into $HOME/miniforge3"
  run curl -fsSL -o "$HOME/miniforge3.sh" "$MINIFORGE_URL"
  run bash "$HOME/miniforge3.sh" -b -u -p "$HOME/miniforge3"
  CONDA="$HOME/miniforge3/bin/mamba"
else
  echo "using $CONDA ($("$CONDA" --version 2>&1 | head -n1))"
fi

step "2/8 cards (TORCH_CUDA_ARCH_LIST for pytorch3d, gsplat and flash_attn builds)"
CARDS=""
if command -v "$NVIDIA_SMI" >/dev/null; then
  CARDS="$("$NVIDIA_SMI" --query-gpu=name,memory.total,compute_cap --format=csv,noheader,nounits \
           2>/dev/null || true)"
fi
ARCH="$(printf '%s\n' "$CARDS" | awk -F', *' 'NF>=3 && $3 ~ /^[0-9.]+$/ {print $3}' | sort -u \
        | paste -sd';' -)"
if [ -n "$ARCH" ]; then
  printf '%s\n' "$CARDS" | sed 's/^/card: /'
else
  # Upstream's note: build on a GPU node. Without a card the CUDA kernels are built for the
  # data-centre and workstation generations SAM-3D's 32 GB need allows.
  ARCH="8.0;8.6;8.9;9.0"
  echo "WARNING: no GPU visible: building for TORCH_CUDA_ARCH_LIST=$ARCH; better run this" \
       "on the GPU node that will serve (upstream's doc/setup.md says the same)." >&2
fi
echo "TORCH_CUDA_ARCH_LIST=$ARCH"
BUILD=("${IN_ENV[@]}" "TORCH_CUDA_ARCH_LIST=$ARCH" "FORCE_CUDA=1")

step "3/8 SAM-3D-Objects source $SRC_DIR (commit $SAM3D_COMMIT)"
if [ -f "$SRC_DIR/environments/default.yml" ]; then echo "exists: $SRC_DIR"
else
  run git clone "$SAM3D_REPO" "$SRC_DIR"
  run git -C "$SRC_DIR" checkout "$SAM3D_COMMIT"
fi

step "4/8 conda env $ENV_DIR from upstream's environments/default.yml"
if [ -x "$PY" ]; then echo "exists: $ENV_DIR"
else
  case "$(basename "$CONDA")" in
    micromamba) run "$CONDA" create -y -p "$ENV_DIR" -f "$SRC_DIR/environments/default.yml" ;;
    *) run "$CONDA" env create -p "$ENV_DIR" -f "$SRC_DIR/environments/default.yml" ;;
  esac
fi

step "5/8 upstream's extras, in doc/setup.md's order"
cd_src() { echo "+ cd $SRC_DIR"; if [ "$DRY" -eq 0 ]; then cd "$SRC_DIR"; fi; }
cd_src
run "${BUILD[@]}" "PIP_EXTRA_INDEX_URL=$EXTRA_INDEX" "$PY" -m pip install -e "$SRC_DIR[dev]"
# pytorch3d's dependency on torch is broken: upstream installs it after the rest (two steps).
run "${BUILD[@]}" "PIP_EXTRA_INDEX_URL=$EXTRA_INDEX" "$PY" -m pip install -e "$SRC_DIR[p3d]"
run "${BUILD[@]}" "PIP_EXTRA_INDEX_URL=$EXTRA_INDEX" "PIP_FIND_LINKS=$KAOLIN_LINKS" \
  "$PY" -m pip install -e "$SRC_DIR[inference]"
# Upstream's patch for hydra 1.3.2 (facebookresearch/hydra#2863), run with the env's python.
run "${IN_ENV[@]}" "$PY" "$SRC_DIR/patching/hydra"

step "6/8 what a hub3d worker imports (hub3d's own code comes through PYTHONPATH)"
# No extras: the server-side packages stay out, and upstream's pins (numpy, opencv) are kept.
run "$PY" -m pip install -e "$REPO"

step "7/8 point the hub3d kernel and offline.env at it"
if [ "$DRY" -eq 1 ] || "$PY" -c "import jupyter_client" 2>/dev/null; then
  run "$PY" "$HERE/patch_kernelspec.py" "$KERNEL_NAME" --cull-idle-timeout 604800 \
    --env "HUB3D_SAM3D_PYTHON=$PY" --env "HUB3D_SAM3D_SRC=$SRC_DIR" || true
fi
run mkdir -p "$DATA_DIR"
run "$PY" -c "import sys; from pathlib import Path; from hub3d.weights import write_offline_env; \
print(write_offline_env(Path(sys.argv[1]), {'HUB3D_SAM3D_PYTHON': sys.argv[2], \
'HUB3D_SAM3D_SRC': sys.argv[3]}))" "$DATA_DIR" "$PY" "$SRC_DIR"

step "8/8 import everything notebook/inference.py needs (flash_attn too on A100/H100/H200)"
CARD_NAMES=()
while IFS=, read -r name _; do [ -n "$name" ] && CARD_NAMES+=("$name"); done <<< "$CARDS"
run "${IN_ENV[@]}" LIDRA_SKIP_INIT=true "$PY" "$REPO/hub3d/models/sam3d_probe.py" check \
  ${CARD_NAMES[@]+"${CARD_NAMES[@]}"}

echo
echo "Set in the serving kernel (done in kernelspec $KERNEL_NAME and $DATA_DIR/offline.env):"
echo "  export HUB3D_SAM3D_PYTHON=$PY"
echo "  export HUB3D_SAM3D_SRC=$SRC_DIR"
echo "Weights (gated, ~12 GB): hub3d fetch-weights sam3d. SAM-3D needs >= 32 GB of VRAM;"
echo "the first load takes minutes. Check it all with: hub3d doctor"
