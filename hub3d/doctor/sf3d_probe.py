"""What an SF3D kernel env can do, as JSON: run by that env's Python (stdlib only here).

    python sf3d_probe.py                 # JSON facts, for `hub3d doctor`
    python sf3d_probe.py --check         # the recipe's last step: exit 1 unless SF3D can load

`import sf3d.system` is not enough: upstream imports the classes its config names lazily inside
`SF3D(cfg)`, so this imports each of them by its config path (no weights, no model built).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

# The `*_cls` entries of the published config.yaml (stabilityai/stable-fast-3d, for the code at
# ff21fc4); a checkpoint's own config.yaml is read instead when one is found.
PUBLISHED_CLASSES = (
    "sf3d.models.camera.LinearCameraEmbedder",
    "sf3d.models.tokenizers.image.DINOV2SingleImageTokenizer",
    "sf3d.models.tokenizers.triplane.TriplaneLearnablePositionalEmbedding",
    "sf3d.models.transformers.backbone.TwoStreamInterleaveTransformer",
    "sf3d.models.network.PixelShuffleUpsampleNetwork",
    "sf3d.models.network.MaterialMLP",
    "sf3d.models.image_estimator.clip_based_estimator.ClipBasedHeadEstimator",
    "sf3d.models.global_estimator.multi_head_estimator.MultiHeadEstimator",
)
_CLS_LINE = re.compile(r"^\s*\w+_cls\s*:\s*['\"]?([\w.]+)['\"]?\s*(#.*)?$")


def config_classes(config: Path | None) -> tuple[list[str], str]:
    """Class paths a config names (its `*_cls` keys), and where they came from."""
    if config and config.is_file():
        found = [m.group(1) for ln in config.read_text().splitlines() if (m := _CLS_LINE.match(ln))]
        if found:
            return found, str(config)
    return list(PUBLISHED_CLASSES), "the published config"


def _find_config() -> Path | None:
    ckpt = os.environ.get("HUB3D_SF3D_CHECKPOINT")
    data = Path(os.environ.get("HUB3D_DATA_DIR", "~/hub3d-data")).expanduser()
    for folder in ([Path(ckpt)] if ckpt else []) + [data / "weights" / "sf3d"]:
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def probe(config: Path | None) -> dict:
    out: dict = {"python": sys.version.split()[0], "setuptools": _version("setuptools"),
                 "prefix": sys.prefix}
    try:
        import torch
    except Exception as exc:
        out["torch_error"] = _error(exc)
        return out
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
    try:  # the list torch was compiled for; readable without a GPU
        out["arch_list"] = torch._C._cuda_getArchFlags().split() if torch.version.cuda else []
    except Exception:
        out["arch_list"] = None
    try:
        import torch.utils.cpp_extension  # noqa: F401  (what building the extensions imports)
        out["cpp_extension"] = "ok"
    except Exception as exc:
        out["cpp_extension"] = _error(exc)
    try:
        import sf3d.system  # noqa: F401

        out["sf3d"] = True
    except Exception as exc:
        out["sf3d"] = False
        out["sf3d_error"] = _error(exc)
    classes, source = config_classes(config or _find_config())
    out["classes_from"] = source
    out["classes"] = {}
    for path in classes:
        module, _, name = path.rpartition(".")
        try:
            getattr(importlib.import_module(module), name)
            out["classes"][path] = "ok"
        except Exception as exc:
            out["classes"][path] = _error(exc)
    for ext in ("texture_baker", "uv_unwrapper"):
        try:
            importlib.import_module(ext)
            out[ext] = "ok"
        except Exception as exc:
            out[ext] = _error(exc)
    has = getattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", None)
    if out["texture_baker"] == "ok" and has:
        out["baker_cpu"] = bool(has("texture_baker_cpp::rasterize", "CPU"))
        out["baker_cuda"] = bool(has("texture_baker_cpp::rasterize", "CUDA"))
    return out


def problems(facts: dict) -> list[str]:
    """What stops SF3D from loading in this env, one line each (empty: it can load)."""
    if "torch_error" in facts:
        return [f"torch: {facts['torch_error']}"]
    bad = [] if facts.get("sf3d") else [f"sf3d.system: {facts.get('sf3d_error')}"]
    bad += [f"{path}: {err}" for path, err in facts.get("classes", {}).items() if err != "ok"]
    bad += [f"{ext}: {facts[ext]}" for ext in ("texture_baker", "uv_unwrapper")
            if facts.get(ext) != "ok"]
    return bad


def main(argv: list[str]) -> int:
    # run as a script, this folder comes first on sys.path: its sf3d.py (doctor's rows) would
    # shadow upstream's sf3d package
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    src = os.environ.get("HUB3D_SF3D_SRC")
    if src:
        sys.path.insert(0, src)
    config = Path(argv[argv.index("--config") + 1]) if "--config" in argv else None
    facts = probe(config)
    if "--check" not in argv:
        print(json.dumps(facts))
        return 0
    bad = problems(facts)
    for line in bad:
        print(f"FAIL {line}", file=sys.stderr)
    if not bad:
        print(f"ok: torch {facts['torch']}, sf3d.system and the {len(facts['classes'])} classes of "
              f"{facts['classes_from']} import, texture_baker and uv_unwrapper load")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
