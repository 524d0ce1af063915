#!/usr/bin/env bash
# Fill the folder that travels with the checkout to a GPU machine without network, for
# benchmarks/sf3d_gpu_device.sh: the wheels of benchmarks/sf3d_gpu_wheels.txt for that
# machine's Python (CPython 3.12, x86-64 Linux; no torch: it has its own) and the SF3D archive
# with its config. Run it where pip reaches the package index (docs/performance.md).
#
#   bash benchmarks/sf3d_gpu_pack.sh [--dest .sf3d-carry] [--python-version 3.12] [--upstream DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=.sf3d-carry; PYVER=3.12; UPSTREAM="${HUB3D_UPSTREAM_DIR:-}"; PY="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) DEST="$2"; shift ;;
    --python-version) PYVER="$2"; shift ;;
    --upstream) UPSTREAM="$2"; shift ;;
    *) echo "unknown option: $1 (see the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
LIST=benchmarks/sf3d_gpu_wheels.txt
pins=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$LIST")
binary=$(echo "$pins" | grep -v '^antlr4-python3-runtime')
antlr=$(echo "$pins" | grep '^antlr4-python3-runtime')

rm -rf "$DEST/wheels"
mkdir -p "$DEST/wheels" "$DEST/upstream"
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# shellcheck disable=SC2086  # one argument per pin
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
  --implementation cp "${platforms[@]}" -d "$DEST/wheels" $binary
# omegaconf's parser runtime is published as a source archive only: its (pure) wheel is built
"$PY" -m pip wheel -q --no-deps -w "$DEST/wheels" "$antlr"

wanted=$(echo "$pins" | wc -l)
got=$(find "$DEST/wheels" -name '*.whl' | wc -l)
if [ "$got" -ne "$wanted" ]; then
  echo "expected $wanted wheels, got $got in $DEST/wheels" >&2; exit 1
fi

# the SF3D source (test data: never committed) and its config
if [ -z "$UPSTREAM" ]; then
  for dir in ../shared/upstream shared/upstream; do
    if [ -f "$dir/stable-fast-3d-ff21fc4.tar.gz" ]; then UPSTREAM="$dir"; break; fi
  done
fi
if [ -z "$UPSTREAM" ] || [ ! -f "$UPSTREAM/stable-fast-3d-ff21fc4.tar.gz" ]; then
  echo "no stable-fast-3d-ff21fc4.tar.gz in ${UPSTREAM:-../shared/upstream or shared/upstream}: pass --upstream DIR" >&2
  exit 1
fi
cp "$UPSTREAM/stable-fast-3d-ff21fc4.tar.gz" "$UPSTREAM/stable-fast-3d-config.yaml" \
  "$DEST/upstream/"
echo "$got wheels for CPython $PYVER and the SF3D archive in $DEST ($(du -sh "$DEST" | cut -f1))"
