"""`hub3d doctor`: what this machine has for serving, each failing row with its fix.

Each section is a module with `gather(python, data_dir) -> dict` (the I/O: tool outputs, probes
run in the kernel env's Python, paths) and `rows(facts) -> list[Row]` (pure; tested on recorded
outputs). All sections' facts share one flat dict, so a section may read another's keys (the
GPU list, say). The machine's rows come first, the host's last; between them, each checked
model's own section, named by its backend (`Backend.doctor_section`, read through the model
catalog): a new backend brings its rows with it.

A row FAILs only for what will not work as things stand (the exit status says so); what the
recipes would set up differently, or what matters only to a later rebuild, is a WARN.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

from hub3d.doctor import host, machine
from hub3d.doctor.core import Row, format_rows
from hub3d.doctor.machine import explain, parse_gcc, parse_nvcc, parse_smi_header, parse_smi_query

__all__ = ["Row", "explain", "format_rows", "gather", "parse_gcc", "parse_nvcc",
           "parse_smi_header", "parse_smi_query", "register", "rows_from_facts", "run_checks",
           "sections"]


def sections(models: str | list[str] | None = None) -> list[ModuleType]:
    """machine, each model's section (the models given, else HUB3D_MODELS, else every installed
    backend that has one), host."""
    from hub3d.config import data_dir_from_env
    from hub3d.models.catalog import Catalog
    from hub3d.models.registry import available_models

    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    named = models or [m for m in os.environ.get("HUB3D_MODELS", "").split(",") if m.strip()]
    catalog = Catalog.build(named or list(available_models()), data_dir_from_env())
    found = [e.cls.doctor_section for e in catalog if e.cls and e.cls.doctor_section]
    return [machine, *(importlib.import_module(m) for m in dict.fromkeys(found)), host]


def gather(python: str = sys.executable, data_dir: Path | None = None,
           models: str | list[str] | None = None) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for section in sections(models):
        facts.update(section.gather(python, data_dir))
    return facts


def rows_from_facts(f: dict[str, Any], models: str | list[str] | None = None) -> list[Row]:
    """Turn gathered facts (tool outputs, probe JSON, paths) into rows; no I/O here."""
    return [row for section in sections(models) for row in section.rows(f)]


def run_checks(python: str = sys.executable, data_dir: Path | str | None = None,
               models: str | list[str] | None = None) -> list[Row]:
    """Every row for these models (default: see `sections`), with the server's data dir."""
    data = Path(data_dir).expanduser() if data_dir else None
    return rows_from_facts(gather(python, data, models), models)


def _doctor(args: argparse.Namespace) -> int:
    rows = run_checks(args.python, Path(args.data_dir) if args.data_dir else None, args.models)
    for log in args.log or []:
        rows += explain(Path(log).read_text(errors="replace"))
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else format_rows(rows))
    bad = {"fail", "warn"} if args.strict else {"fail"}
    return 1 if any(r.status in bad for r in rows) else 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("doctor", help="check driver, CUDA, torch, SF3D build, weights")
    p.add_argument("--json", action="store_true", help="rows as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument("--python", default=sys.executable,
                   help="the kernel env's Python to probe (default: this one)")
    p.add_argument("--data-dir", dest="data_dir", help="where weights live (env HUB3D_DATA_DIR)")
    p.add_argument("--models", help="the models to check, e.g. sf3d (env HUB3D_MODELS; "
                                    "default: every installed one)")
    p.add_argument("--log", action="append", metavar="FILE",
                   help="also explain known errors in a build or server log")
    p.set_defaults(func=_doctor)
