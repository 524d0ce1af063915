"""Rows about the hub side: jupyter-server-proxy, free disk, the data dir's offline.env."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hub3d.doctor.core import Row

INSTALL_GB = 20  # the SF3D env (~15 GB with torch) and its weights, with room to spare
MIN_GB = 1  # jobs write input, result and preview to the data dir: tens of MB each


def gather(python: str = "", data_dir: Path | None = None) -> dict[str, Any]:
    from hub3d.config import data_dir_from_env
    from hub3d.notebook.urls import server_proxy_check

    return {"server_proxy": server_proxy_check(),
            "disk_free_gb": shutil.disk_usage(Path.home()).free / 2**30,
            "offline_env": offline_env(data_dir_from_env(data_dir),
                                       _as_served(data_dir_from_env(data_dir)))}


def _as_served(data_dir: Path) -> dict[str, str]:
    """This environment as the server's workers get it: with what the model catalog finds in
    the data dir itself (fetched checkpoints, caches, offline mode) for every installed model."""
    from hub3d.models.catalog import Catalog
    from hub3d.models.registry import available_models

    env = dict(os.environ)
    for entry in Catalog.build(list(available_models()), data_dir):
        env.update(entry.worker_env)
    return env


def offline_env(data_dir: Path, env: dict[str, str]) -> dict[str, Any] | None:
    """The settings `hub3d fetch-weights` (or a recipe) wrote to <data dir>/offline.env that a
    server started from this environment would not have: the server reads its environment and
    what the data dir holds (hub3d.models.files), never that file."""
    path = data_dir / "offline.env"
    try:
        text = path.read_text()
    except OSError:
        return None
    settings = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            settings[key.strip()] = value.strip()
    return {"path": str(path), "unset": sorted(k for k, v in settings.items() if env.get(k) != v)}


def rows(f: dict[str, Any]) -> list[Row]:
    out = []
    proxy = f.get("server_proxy")
    out.append(Row("jupyter-server-proxy", "ok", "installed") if proxy is None else
               Row("jupyter-server-proxy", "warn", "missing", proxy))
    free = f.get("disk_free_gb")
    if free is not None:
        status = "ok" if free >= INSTALL_GB else ("warn" if free >= MIN_GB else "fail")
        fix = {"ok": "", "warn": "Enough to serve; installing the SF3D env and weights needs "
               "~15 GB: clear ~/.cache/pip and old jobs in the data dir first.",
               "fail": "Jobs write their input, result and preview to the data dir (tens of "
               "MB each): clear ~/.cache/pip and old jobs in the data dir."}[status]
        out.append(Row("free disk in home", status, f"{free:.1f} GB", fix))
    env = f.get("offline_env")
    if env and env["unset"]:
        out.append(Row("offline.env", "warn", f"{env['path']}: {', '.join(env['unset'])} not "
                       "set here, so a server started from this environment does not use them",
                       f"Load it before serving: set -a; . {env['path']}; set +a (for the "
                       "notebook, put them in its kernel's environment)."))
    elif env:
        out.append(Row("offline.env", "ok", f"{env['path']}: loaded"))
    return out
