"""`convert_beside`: a result in another format, written once beside it and kept.

`jobs/<id>/result.glb` → `jobs/<id>/result.usdz`: converted under a lock per target, to a
temporary name then `os.replace`, so a reader never sees half a file and concurrent requests
for the same target share one conversion. The source is only read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub3d.errors import ConversionFailed, FormatNotOffered, FormatUnavailable, Hub3DError
from hub3d.formats._format import Format
from hub3d.formats._registry import format_of, get
from hub3d.fsutil import disk_full, temp_path_for

__all__ = ["convert_beside", "target_path"]

_guard = threading.Lock()
_locks: dict[Path, tuple[threading.Lock, int]] = {}  # target → (its lock, threads holding it)


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """One thread at a time per target; the entry goes once no thread wants it."""
    with _guard:
        lock, users = _locks.get(target, (threading.Lock(), 0))
        _locks[target] = (lock, users + 1)
    try:
        with lock:
            yield
    finally:
        with _guard:
            lock, users = _locks[target]
            if users == 1:
                del _locks[target]
            else:
                _locks[target] = (lock, users - 1)


def target_path(source: Path, target_format: str, source_format: str | None = None) -> Path:
    """Where `convert_beside` puts (or finds) `source` in `target_format`."""
    src = get(source_format) if source_format else format_of(source)
    stem = source.name[:len(source.name) - len(src.suffix)]
    return source.with_name(get(target_format).filename(stem))


def convert_beside(source: Path, target_format: str, *, source_format: str | None = None
                   ) -> Path:
    """`source` in `target_format`: `source` itself, the file made earlier, or made now.

    `source_format` defaults to the one `source`'s suffix names. Raises UnknownFormat,
    FormatNotOffered (cannot be made from this source), FormatUnavailable (its library is not
    installed) or ConversionFailed (no file is left behind; the source is untouched).
    """
    source = Path(source)
    src = get(source_format) if source_format else format_of(source)
    fmt = get(target_format)
    if fmt.name == src.name:
        return source
    if src.name not in fmt.sources:
        made_from = (f"it is made from {' or '.join(fmt.sources)}" if fmt.sources
                     else "only models that write it natively serve it")
        raise FormatNotOffered(f"{fmt.name} cannot be made from a {src.name} result: {made_from}.")
    reason = fmt.missing()
    if reason:
        raise FormatUnavailable(reason)
    target = target_path(source, fmt.name, src.name)
    with _locked(target.absolute()):  # one key per file, however the caller spelt its path
        if target.is_file():
            return target
        _make(source, src, target, fmt)
    return target


def _make(source: Path, src: Format, target: Path, fmt: Format) -> None:
    if not source.is_file():
        raise ConversionFailed(f"cannot make {target.name}: {source.name} is gone (the result"
                               " expired or was deleted). Generate the model again.")
    try:
        src.check(source)
    except Exception as exc:
        raise ConversionFailed(
            f"cannot make {target.name}: {source.name} is not a valid {src.name} file ({exc})."
            " Generate the model again; if this repeats, report it with the job id.") from exc
    assert fmt.convert is not None  # a format with sources has one (Format checks)
    tmp = temp_path_for(target, suffix=".tmp" + fmt.suffix)
    try:
        fmt.convert(source, tmp)
        fmt.check(tmp)
        os.replace(tmp, target)
    except Hub3DError:
        raise
    except Exception as exc:
        if disk_full(exc):
            raise ConversionFailed(
                f"converting {source.name} to {fmt.name} failed: no space left on the server's"
                " disk. Free space in the data dir (or lower HUB3D_RESULT_TTL_HOURS), then ask"
                " again.") from exc
        raise ConversionFailed(
            f"converting {source.name} to {fmt.name} failed ({type(exc).__name__}: {exc})."
            f" The {src.name} file is unchanged: download it as {src.name} instead, and report"
            " this with the job id.") from exc
    finally:
        tmp.unlink(missing_ok=True)
