"""The formats of the package, found by looking at its modules: no hand-kept list.

Every public module of `hub3d.formats` (a name without a leading underscore) declares one
`FORMAT = Format(...)` named like the module; adding a format is adding such a file.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Sequence
from pathlib import Path

from hub3d.errors import UnknownFormat
from hub3d.formats._format import Format

__all__ = ["all_formats", "format_of", "get", "names", "offered", "reload", "source_for"]

_PACKAGE = "hub3d.formats"


@functools.cache
def _formats() -> dict[str, Format]:
    package = importlib.import_module(_PACKAGE)
    found: dict[str, Format] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_PACKAGE}.{info.name}")
        fmt = getattr(module, "FORMAT", None)
        if not isinstance(fmt, Format):
            raise TypeError(f"{module.__name__} declares no FORMAT = Format(...): every public"
                            f" module of {_PACKAGE} is one output format")
        if fmt.name != info.name:
            raise ValueError(f"{module.__name__} declares the format {fmt.name!r}: a format's"
                             " module is named like the format")
        found[fmt.name] = fmt
    for fmt in found.values():
        unknown = [s for s in fmt.sources if s not in found]
        if unknown:
            raise ValueError(f"format {fmt.name} is made from unknown formats {unknown}")
    return found


def reload() -> None:
    """Look at the package's modules again (after a module was added while running)."""
    _formats.cache_clear()


def all_formats() -> list[Format]:
    return list(_formats().values())


def names() -> list[str]:
    return sorted(_formats())


def get(name: str) -> Format:
    """The format called `name` (any case, a leading dot allowed); UnknownFormat otherwise."""
    key = name.strip().lower().lstrip(".")
    fmt = _formats().get(key)
    if fmt is None:
        raise UnknownFormat(f"unknown output format {name!r}: hub3d writes "
                            f"{', '.join(names())}")
    return fmt


def format_of(path: Path) -> Format:
    """The format of a file, told by its name's ending (the longest suffix that matches)."""
    for fmt in sorted(_formats().values(), key=lambda f: -len(f.suffix)):
        if path.name.lower().endswith(fmt.suffix):
            return fmt
    raise UnknownFormat(f"{path.name}: no output format has this file's suffix (known: "
                        f"{', '.join(f.suffix for f in _formats().values())})")


def offered(native: Sequence[str]) -> list[str]:
    """What a backend writing `native` can serve: the natives, then what this server can make
    from one of them (formats whose library is missing here are left out)."""
    natives = [get(n).name for n in native]
    out = list(dict.fromkeys(natives))
    for fmt in _formats().values():
        if fmt.name not in out and any(s in natives for s in fmt.sources) \
                and fmt.missing() is None:
            out.append(fmt.name)
    return out


def source_for(target: str, natives: Sequence[str]) -> str | None:
    """The native format `target` is served from: itself, or the first native it is made from;
    None when it cannot be made from any of them."""
    fmt = get(target)
    natives = [get(n).name for n in natives]
    if fmt.name in natives:
        return fmt.name
    return next((n for n in natives if n in fmt.sources), None)
