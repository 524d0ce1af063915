#!/usr/bin/env bash
# Fresh machine → a running hub3d server and a GLB from the sample image, with the inflate backend.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PORT=${PORT:-9299}
DATA=${HUB3D_DATA_DIR:-$PWD/.hub3d-demo}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[server]"
mkdir -p "$DATA" out
.venv/bin/hub3d serve --port "$PORT" --models inflate --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.2
done
.venv/bin/python client/sf3d_client.py samples/tshirt.png --server "http://127.0.0.1:$PORT" \
  --model inflate --out out
echo "server log: $DATA/server.log — open out/tshirt.glb in any glTF viewer"
