"""The row every doctor check returns, and the I/O helpers the checks share."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    name: str
    status: str  # ok | warn | fail
    found: str
    fix: str = ""


def run_cmd(cmd: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> str | None:
    """stdout + stderr of a tool, None when it is not installed."""
    if shutil.which(cmd[0]) is None and not os.path.isabs(cmd[0]):
        return None
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return p.stdout + p.stderr


def probe_json(cmd: list[str], timeout: float = 180) -> dict[str, Any]:
    """The last JSON line a probe prints (run in the kernel env's Python), or its error."""
    out = run_cmd(cmd, timeout=timeout) or ""
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    try:
        return dict(json.loads(lines[-1])) if lines else {"error": out.strip()[-300:]}
    except ValueError:
        return {"error": out.strip()[-300:]}


def format_rows(rows: list[Row]) -> str:
    mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for r in rows:
        lines.append(f"{mark[r.status]}  {r.name:<22} {r.found}")
        if r.fix and r.status != "ok":
            lines.append(f"      {'':<22} fix: {r.fix}")
    return "\n".join(lines)
