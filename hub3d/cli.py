"""`hub3d` command line: serve | doctor | restart | stop | status | watch | fetch-weights."""

from __future__ import annotations

import argparse
import importlib

__all__ = ["build_parser", "main"]

# Each module exposes `register(subparsers)`, adding its commands with set_defaults(func=...).
# Imported lazily per module so `hub3d doctor` never pays for FastAPI.
COMMAND_MODULES = [
    "hub3d.serve",
    "hub3d.weights",
    "hub3d.doctor",
    "hub3d.notebook.headless",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub3d", description="Serve image-to-3D models from a JupyterHub GPU."
    )
    from hub3d import __version__

    parser.add_argument("--version", action="version", version=f"hub3d {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
