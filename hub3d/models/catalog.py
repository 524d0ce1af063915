"""The model catalog: built once at start from the settings, it answers everything about a
served model — its backend class (or why it cannot load), the Python its workers run, where
its files are, the formats it writes, its doctor section. The pool, OpenAPI, /models,
readiness, fetch-weights and doctor read it; nothing else decides these.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub3d.errors import ModelUnavailable, UnknownModel
from hub3d.models.base import Backend
from hub3d.models.files import ModelFiles, WeightsSpec, resolve_files
from hub3d.models.registry import load_backend_class

__all__ = ["Catalog", "CatalogEntry", "python_setting"]


def python_setting(name: str) -> str:
    """HUB3D_PYTHON_<NAME>: the Python for any served model, by the name clients use."""
    return "HUB3D_PYTHON_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # as clients use it
    spec: str  # as given: a name, or name=module:Class
    cls: type[Backend] | None
    error: str | None = None  # why the backend cannot be imported
    python: str = sys.executable  # what its workers run
    python_from: str = "this server's Python"
    files: ModelFiles | None = None
    formats: tuple[str, ...] = ()
    worker_env: dict[str, str] = field(default_factory=dict)  # beyond the server's own

    @property
    def weights(self) -> WeightsSpec | None:
        return self.cls.weights if self.cls else None

    def backend(self) -> type[Backend]:
        if self.cls is None:
            raise ModelUnavailable(f"model '{self.name}' is unavailable: {self.error}")
        return self.cls

    def native_for(self, output_format: str) -> str:
        """The format its backend writes for this one (itself, or what it is made from)."""
        from hub3d import formats

        native = formats.source_for(output_format, self.backend().native_formats)
        return native or output_format

    def parameters_schema(self) -> dict[str, Any]:
        """Its parameters' JSON schema, with the output formats it offers as a choice."""
        schema = self.backend().params_model.model_json_schema()
        fmt = schema.get("properties", {}).get("output_format")
        if fmt is not None:
            fmt["enum"] = list(self.formats)
        return schema

    def files_line(self) -> str | None:
        """Where its checkpoint comes from, in one line; None for a model without weights."""
        spec = self.weights
        return self.files.describe(spec) if spec and self.files else None


def _python(name: str, cls: type[Backend], environ: Mapping[str, str]) -> tuple[str, str]:
    for var in (python_setting(name), cls.python_env_var):
        if var and environ.get(var, "").strip():
            return environ[var].strip(), var
    return sys.executable, "this server's Python"


def _entry(spec: str, data_dir: Path, environ: Mapping[str, str]) -> CatalogEntry:
    name = spec.partition("=")[0]
    try:
        cls = load_backend_class(spec)
    except Exception as exc:  # a broken backend degrades health, never crashes the server
        return CatalogEntry(name, spec, None, error=f"cannot import backend: {exc}")
    from hub3d import formats

    python, python_from = _python(name, cls, environ)
    files = resolve_files(cls.weights, data_dir, environ) if cls.weights else None
    return CatalogEntry(name, spec, cls, python=python, python_from=python_from, files=files,
                        formats=tuple(formats.offered(cls.native_formats)),
                        worker_env=dict(files.env) if files else {})


class Catalog:
    """The served models, in the order given; the first is the default."""

    def __init__(self, entries: list[CatalogEntry]) -> None:
        if not entries:
            raise ValueError("a catalog needs at least one model")
        self._entries = {e.name: e for e in entries}
        self.default = entries[0].name

    @classmethod
    def build(cls, models: list[str], data_dir: Path,
              environ: Mapping[str, str] | None = None) -> Catalog:
        env = os.environ if environ is None else environ
        return cls([_entry(spec, data_dir, env) for spec in models])

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> CatalogEntry:
        if name not in self._entries:
            raise UnknownModel(f"model '{name}' is not served here; this server serves: "
                               f"{', '.join(self._entries)}")
        return self._entries[name]

    def backend(self, name: str) -> type[Backend]:
        return self.entry(name).backend()
