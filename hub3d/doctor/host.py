"""Rows about the hub side: jupyter-server-proxy, free disk."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hub3d.doctor.core import Row


def gather(python: str = "", data_dir: Path | None = None) -> dict[str, Any]:
    from hub3d.notebook.urls import server_proxy_check

    return {"server_proxy": server_proxy_check(),
            "disk_free_gb": shutil.disk_usage(Path.home()).free / 2**30}


def rows(f: dict[str, Any]) -> list[Row]:
    out = []
    proxy = f.get("server_proxy")
    out.append(Row("jupyter-server-proxy", "ok", "installed") if proxy is None else
               Row("jupyter-server-proxy", "warn", "missing", proxy))
    free = f.get("disk_free_gb")
    if free is not None:
        status = "ok" if free >= 20 else ("warn" if free >= 5 else "fail")
        out.append(Row("free disk in home", status, f"{free:.1f} GB",
                       "" if status == "ok" else "SF3D needs ~15 GB (env + weights): clear "
                       "~/.cache/pip and old jobs in the data dir."))
    return out
