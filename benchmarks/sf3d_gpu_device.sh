#!/usr/bin/env bash
# The whole SF3D GPU run in one command, from a copy of the checkout on a GPU machine without
# network whose python3 has torch (docs/performance.md, "SF3D on a GPU machine without
# network"): the carried wheels (benchmarks/sf3d_gpu_pack.sh) into a folder of their own, a
# wrapper python, then benchmarks/sf3d_gpu.py within a time budget, which builds the
# extensions for the card and the full-size random checkpoint. The JSON, the tables and the
# logs land in $OUT (else ./sf3d-gpu-out), also when a step fails.
#
#   bash benchmarks/sf3d_gpu_device.sh [--carry .sf3d-carry] [--upstream DIR] [--limit-s 570]
#        [-- more benchmarks.sf3d_gpu arguments, e.g. --batch 16 --reps 5]
# PYTHON (default python3): the interpreter holding torch. SF3D_DEVICE_ENV: where the wheels go.
set -uo pipefail  # not -e: whatever fails, what was measured still reaches $OUT
cd "$(dirname "$0")/.." || exit 1
REPO="$PWD"
START=$(date +%s)
CARRY=.sf3d-carry; UPSTREAM="${HUB3D_UPSTREAM_DIR:-}"; LIMIT=570; BASE="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --carry) CARRY="$2"; shift ;;
    --upstream) UPSTREAM="$2"; shift ;;
    --limit-s) LIMIT="$2"; shift ;;
    --) shift; break ;;
    *) echo "unknown option: $1 (see the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
OUT="${OUT:-$REPO/sf3d-gpu-out}"
mkdir -p "$OUT"
ENV_DIR="${SF3D_DEVICE_ENV:-/tmp/sf3d-device-env}"
WORK="$ENV_DIR/work"
# One log for the steps; no `tee` through a process substitution, no bare `wait`: together
# they hang a script whose output is piped.
say() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$OUT/device.log"; }
collect() {
  for log in "$WORK"/build-*.log; do [ -f "$log" ] && tail -c 20000 "$log" >"$OUT/$(basename "$log")"; done
  : >"$OUT/worker-logs.txt"
  for log in "$WORK"/serve-*/serve.log "$WORK"/serve-*/data/logs/worker-*.log; do
    [ -f "$log" ] && { echo "== $log"; tail -n 40 "$log"; } >>"$OUT/worker-logs.txt"
  done
  [ -s "$OUT/worker-logs.txt" ] || rm -f "$OUT/worker-logs.txt"
}
fail() { say "FAILED: $*"; collect; exit 1; }

BASE_PY="$(command -v "$BASE")" || fail "no $BASE here: set PYTHON to the interpreter holding torch"
say "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1); $(nproc) cores; $("$BASE_PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1)"

# the SF3D archive: --upstream, HUB3D_UPSTREAM_DIR, the carried folder, shared/ in or beside the tree
if [ -z "$UPSTREAM" ]; then
  for dir in "$CARRY/upstream" shared/upstream ../shared/upstream; do
    if [ -f "$dir/stable-fast-3d-ff21fc4.tar.gz" ]; then UPSTREAM="$dir"; break; fi
  done
fi
[ -f "$UPSTREAM/stable-fast-3d-ff21fc4.tar.gz" ] || fail "no stable-fast-3d-ff21fc4.tar.gz in ${UPSTREAM:-$CARRY/upstream, shared/upstream or ../shared/upstream}: pass --upstream DIR"
export HUB3D_UPSTREAM_DIR; HUB3D_UPSTREAM_DIR="$(cd "$UPSTREAM" && pwd)"
say "SF3D archive: $HUB3D_UPSTREAM_DIR"

# the wheels, into a folder of their own: nothing of the machine's Python is changed
SITE="$ENV_DIR/site"
mkdir -p "$SITE" "$ENV_DIR/bin" "$WORK"
ls "$CARRY"/wheels/*.whl >/dev/null 2>&1 || fail "no wheels in $CARRY/wheels: run benchmarks/sf3d_gpu_pack.sh where pip reaches the index, and carry $CARRY"
"$BASE_PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$CARRY"/wheels/*.whl 2>&1 | tee -a "$OUT/device.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "pip could not install the carried wheels"
say "$(ls "$CARRY"/wheels/*.whl | wc -l) wheels installed into $SITE"
# transformers 4.42.3 refuses numpy 2 at import; SF3D's code runs fine on it
sed -i 's/"numpy": "numpy>=1.17,<2.0"/"numpy": "numpy>=1.17"/' \
  "$SITE/transformers/dependency_versions_table.py"
# gpytoolbox imports scs (a 43 MB wheel) for solvers SF3D never calls
if ! "$BASE_PY" -c 'import scs' 2>/dev/null && [ ! -d "$SITE/scs" ]; then
  mkdir "$SITE/scs"
  echo '"""Empty: gpytoolbox imports scs at import time; SF3D calls none of its solvers."""' >"$SITE/scs/__init__.py"
fi
PY="$ENV_DIR/bin/python"
printf '#!/bin/sh\nexport PYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}"\nexec "%s" "$@"\n' "$SITE" "$BASE_PY" >"$PY"
chmod +x "$PY"
"$PY" -c 'import transformers, open_clip, trimesh, rembg, gpytoolbox, pynanoinstantmeshes, omegaconf, fastapi, uvicorn, pydantic_settings, multipart' \
  2>&1 | tail -5 | tee -a "$OUT/device.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the carried packages do not import with $BASE_PY"
say "they import; $PY ready"

# the benchmark, inside what is left of the limit (its skipped configurations are listed)
LEFT=$(( LIMIT - ($(date +%s) - START) ))
BUDGET=$(( LEFT - 40 ))
[ "$BUDGET" -gt 120 ] || fail "only $LEFT s of the $LIMIT s limit left for the benchmark"
say "benchmark: budget $BUDGET s, hard stop at $LEFT s"
PYTHONUNBUFFERED=1 timeout -k 10 "$LEFT" "$PY" -m benchmarks.sf3d_gpu --python "$PY" \
  --work "$WORK" --budget-s "$BUDGET" --out "$OUT/sf3d_gpu.json" "$@" 2>&1 \
  | tee "$OUT/benchmark.log"
code=${PIPESTATUS[0]}
collect
say "benchmark exit $code; results in $OUT"
exit "$code"
