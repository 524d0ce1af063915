"""Values two parts of hub3d must agree on, defined once: each side reads the same definition."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub3d.config import Settings, data_dir_from_env
from hub3d.notebook.server import RUNNING_MARK, heartbeat_line


def test_the_heartbeat_block_prints_holds_what_watch_waits_for() -> None:
    line = heartbeat_line("running", "http://127.0.0.1:9299", 12.4)
    assert RUNNING_MARK in line and line.endswith(", up 12 s")
    assert RUNNING_MARK not in heartbeat_line("starting", "http://127.0.0.1:9299", 0)


def test_tools_without_settings_find_the_data_dir_the_server_uses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB3D_DATA_DIR", str(tmp_path / "d"))
    assert data_dir_from_env() == Settings().data_dir == (tmp_path / "d").resolve()
    assert data_dir_from_env(tmp_path / "x") == (tmp_path / "x").resolve()
    monkeypatch.delenv("HUB3D_DATA_DIR")
    assert data_dir_from_env() == Settings().data_dir == (Path.home() / "hub3d-data").resolve()
