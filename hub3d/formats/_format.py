"""`Format`: what one output format is, how a file of it is checked, and how it is made."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Format"]


@dataclass(frozen=True)
class Format:
    """One output format. A module of `hub3d.formats` declares exactly one, as `FORMAT`.

    `check(path)` raises ValueError saying what is wrong when `path` is not a valid file of this
    format. `convert(source, target)` writes `target` from a file of one of `sources`; it may
    leave a partial `target` behind on failure (`convert_beside` writes to a temporary name).
    Both import their heavy libraries inside, so listing formats stays cheap.
    """

    name: str
    suffix: str  # with its dot: ".glb", ".obj.zip"
    media_type: str
    description: str  # one line, for /models, the OpenAPI text and the docs
    check: Callable[[Path], None]
    sources: tuple[str, ...] = ()  # formats it can be made from; () = only written natively
    convert: Callable[[Path, Path], None] | None = None
    # Importable modules `convert` and `check` need; missing ones make the format unavailable.
    requires: tuple[str, ...] = ()
    install_hint: str = ""  # what to install when a required module is missing

    def __post_init__(self) -> None:
        if not self.suffix.startswith("."):
            raise ValueError(f"format {self.name}: suffix {self.suffix!r} must start with '.'")
        if self.sources and self.convert is None:
            raise ValueError(f"format {self.name} names sources but has no convert function")

    def filename(self, stem: str) -> str:
        return f"{stem}{self.suffix}"

    def missing(self) -> str | None:
        """Why this Python cannot make or check the format; None when it can."""
        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not absent:
            return None
        return (f"the {self.name} format needs the Python module {', '.join(absent)}, which is"
                f" not installed in this server's Python ({sys.executable})."
                f" {self.install_hint or 'Install it'}, then restart the server.")
