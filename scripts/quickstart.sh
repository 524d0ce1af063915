#!/usr/bin/env bash
# Fresh machine → hub3d installed, a server started, and a GLB from the sample image with the
# inflate backend (the server stops when the script ends). The server takes a free port of its own
# (PORT=N asks for N) and the script talks only to it: whatever else listens on this machine
# cannot answer in its place.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DATA=${HUB3D_DATA_DIR:-$PWD/.hub3d-demo}
LOG=$DATA/server.log
WAIT_S=60
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[server]"
mkdir -p "$DATA" out
# The flags win over PORT, HUB3D_HOST and HUB3D_LOG_LEVEL in the environment: the port is read
# back from the server's own "hub3d serving … on http://127.0.0.1:PORT" line.
.venv/bin/hub3d serve --host 127.0.0.1 --port "${PORT:-0}" --models inflate --data-dir "$DATA" \
  --log-level info >"$LOG" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT

fail() {  # what went wrong, the end of the server's log, and where the whole log is
  echo "error: $1" >&2
  echo "--- last lines of the server log $LOG:" >&2
  tail -n 12 "$LOG" >&2
  exit 1
}

healthy() {  # this URL's /health answers 2xx within 2 s
  .venv/bin/python -c 'import sys, urllib.request as r; r.urlopen(sys.argv[1], timeout=2)' \
    "$1/health" >/dev/null 2>&1
}

URL=
deadline=$((SECONDS + WAIT_S))
while :; do
  if ! kill -0 "$SERVER" 2>/dev/null; then
    status=0
    wait "$SERVER" || status=$?
    hint=""
    [ -z "${PORT:-}" ] || hint=" (PORT=$PORT was asked for: unset PORT to take any free port)"
    fail "the hub3d server exited with status $status before it was ready$hint"
  fi
  if [ -z "$URL" ]; then
    port=$(sed -n 's|.*hub3d serving .* on http://127\.0\.0\.1:\([0-9][0-9]*\) .*|\1|p' "$LOG" |
      head -n 1)
    [ -z "$port" ] || URL="http://127.0.0.1:$port"
  fi
  if [ -n "$URL" ] && healthy "$URL"; then
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    fail "the hub3d server (pid $SERVER${URL:+, $URL}) was not ready after $WAIT_S s"
  fi
  sleep 0.2
done

status=0
.venv/bin/python client/sf3d_client.py samples/tshirt.png --server "$URL" --model inflate \
  --out out || status=$?
if [ "$status" -eq 0 ]; then
  echo "served by $URL (log $LOG): open out/tshirt.glb in any glTF viewer"
else
  echo "error: the client failed (status $status) against $URL; server log: $LOG" >&2
fi
exit "$status"
