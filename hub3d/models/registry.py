"""Find backend classes: `hub3d.models` entry points, built-ins, or `name=module:Class`."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from hub3d.errors import UnknownModel
from hub3d.models.base import Backend

__all__ = ["BUILTIN", "available_models", "load_backend_class"]

# Used when hub3d runs from a source tree that was never pip-installed (no entry points then).
BUILTIN = {
    "inflate": "hub3d.models.inflate:InflateBackend",
    "sf3d": "hub3d.models.sf3d:SF3DBackend",
    "sam3d": "hub3d.models.sam3d:SAM3DBackend",
}


def available_models() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group="hub3d.models"):
        found[ep.name] = ep.value
    return found


def _import_target(target: str) -> type[Backend]:
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{target} is not a hub3d Backend subclass")
    return cls


def load_backend_class(spec: str) -> type[Backend]:
    """`spec` is a model name ("inflate") or "name=package.module:Class"."""
    name, sep, target = spec.partition("=")
    if not sep:
        target = available_models().get(name, "")
        if not target:
            known = ", ".join(sorted(available_models()))
            raise UnknownModel(f"unknown model '{name}'; available: {known}")
    return _import_target(target)
