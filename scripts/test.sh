#!/usr/bin/env bash
# Fresh machine → tests pass: a venv with hub3d[test], the Khronos glTF validator, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing Node.js (for the glTF validator)"
  if [ "$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q nodejs npm; fi
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "installing Chromium + chromedriver (for the browser tier)"
  if [ "$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium chromium-driver; fi
fi
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
# the hub tier: JupyterHub's proxy (its Python side comes with hub3d[test])
npm ci --prefix tests/hub/js --no-audit --no-fund --loglevel=error
exec .venv/bin/python -m pytest "$@"
