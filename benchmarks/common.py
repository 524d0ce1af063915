"""Shared pieces of the benchmarks: sample payload, servers on loopback, percentiles, tables."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def sample_png(size: int = 512) -> bytes:
    img = Image.open(REPO / "samples" / "tshirt.png").convert("RGB").resize((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: Sequence[str], url: str, env: dict[str, str] | None = None,
          health: str = "/health", deadline: float = 60,
          log: Path | None = None) -> subprocess.Popen[bytes]:
    """A server in its own session, up once `health` answers. The repo goes first on the
    caller's PYTHONPATH (a wrapper python may have put packages there); its output goes to
    `log` (quoted when it fails to start) or nowhere."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    with open(log or os.devnull, "wb") as out:
        proc = subprocess.Popen(list(cmd), cwd=REPO, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": path, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if requests.get(url + health, timeout=1).status_code < 500:
                return proc
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            tail = f"; {log} ends:\n{log.read_text(errors='replace')[-2000:]}" if log else ""
            raise RuntimeError(f"{cmd} exited with {proc.returncode}{tail}")
        time.sleep(0.1)
    stop(proc)
    raise TimeoutError(f"{cmd} did not come up in {deadline:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50": round(pct(ms, 50), 2), "p95": round(pct(ms, 95), 2),
            "p99": round(pct(ms, 99), 2), "mean": round(statistics.fmean(ms), 2)}


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        cells = (str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
        out.append("  ".join(cells))
    return "\n".join(out)


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"python": sys.version.split()[0], "cpus": os.cpu_count(), **payload}
    path.write_text(json.dumps(payload, indent=2))
    return path
