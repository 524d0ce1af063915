"""Files written whole or not at all (a temporary name, then a rename), and telling a full disk.

Ground floor: backends, imaging and the job store all use it; it imports nothing of hub3d.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json", "disk_full", "temp_path_for"]


def temp_path_for(path: Path, suffix: str = ".tmp") -> Path:
    """A unique sibling name to write into before `os.replace(tmp, path)`.

    `suffix`: for writers that choose the file format by the name's ending (USD, trimesh).
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, json.dumps(payload, indent=2, default=str).encode())


def disk_full(exc: BaseException) -> bool:
    """True for 'no space left' from the filesystem or from SQLite."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)
