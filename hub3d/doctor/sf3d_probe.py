"""What an SF3D kernel env can do, as JSON: run by that env's Python (stdlib only here).

    python sf3d_probe.py                 # JSON facts, for `hub3d doctor`
    python sf3d_probe.py --check         # the recipe's last step: exit 1 unless SF3D can load

`import sf3d.system` is not enough: upstream imports the classes its config names lazily inside
`SF3D(cfg)`, so this imports each of them by its config path (no weights, no model built).
It also reads, as `SF3D.from_pretrained` does (OmegaConf, then each class's Config), what building
the model fetches: the DINOv2 the image tokenizer loads and the CLIP weights the image estimator
asks open_clip for, resolved by this env's open_clip to a Hugging Face file or a URL. doctor
looks those up on disk; this file only reads the config and the env's own tables.
"""

from __future__ import annotations

import contextlib
import importlib
import io
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
TOKENIZER, ESTIMATOR = PUBLISHED_CLASSES[1], PUBLISHED_CLASSES[6]
OPEN_CLIP_FILE = "open_clip_pytorch_model.bin"  # open_clip's file when an hf_hub entry names none
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


def weights_config(config: Path | None) -> dict:
    """{"from", "dinov2", "clip_model", "clip_pretrain", "clip"}: the values building the model
    uses (the config's, else its classes' defaults) and where open_clip takes the CLIP weights."""
    try:
        from omegaconf import OmegaConf
        from sf3d.models.utils import find_class, parse_structured

        cfg = OmegaConf.load(config) if config else OmegaConf.create({})
        OmegaConf.resolve(cfg)
        parsed = {}
        for key, published in (("image_tokenizer", TOKENIZER), ("image_estimator", ESTIMATOR)):
            cls = find_class(cfg.get(f"{key}_cls") or published)
            with contextlib.redirect_stdout(io.StringIO()):  # it prints each key it ignores
                parsed[key] = parse_structured(cls.Config, cfg.get(key) or {})
    except Exception as exc:
        return {"error": _error(exc)}
    tokenizer, estimator = parsed["image_tokenizer"], parsed["image_estimator"]
    model, tag = estimator.get("model"), estimator.get("pretrain")
    return {"from": str(config) if config else "the published config",
            "dinov2": tokenizer.get("pretrained_model_name_or_path"),
            "clip_model": model, "clip_pretrain": tag,
            "clip": clip_source(str(model), tag) if model is not None else {"kind": "none"}}


def clip_source(model: str, tag: str | None) -> dict:
    """What `open_clip.create_model_and_transforms(model, pretrained=tag)` fetches, from this
    env's open_clip tables (factory.create_model, pretrained.download_pretrained)."""
    try:
        import open_clip
        from open_clip import pretrained as tables
    except Exception as exc:
        return {"kind": "error", "error": _error(exc)}
    if model.startswith("hf-hub:"):  # the model and its weights both come from that repo
        return {"kind": "hf", "repo": model[len("hf-hub:"):],
                "files": ["open_clip_config.json", OPEN_CLIP_FILE]}
    name = model.replace("/", "-")
    release = f"open_clip {_version('open_clip_torch')}"
    if name not in open_clip.list_models():
        return {"kind": "error", "error": f"{release} has no model '{name}'"}
    if not tag:
        return {"kind": "none"}
    if tag.lower() == "openai":
        url = tables.get_pretrained_url(name, "openai")
        return {"kind": "url", "url": url} if url else {
            "kind": "error", "error": f"open_clip has no OpenAI weights for {name}"}
    entry = tables.get_pretrained_cfg(name, tag)
    if entry.get("url"):
        return {"kind": "url", "url": entry["url"]}
    if entry.get("hf_hub"):
        repo, filename = os.path.split(entry["hf_hub"])
        return {"kind": "hf", "repo": repo, "files": [filename or OPEN_CLIP_FILE]}
    if os.path.exists(tag):
        return {"kind": "file", "path": os.path.abspath(tag)}
    tags = tables.list_pretrained_tags_by_model(name)
    return {"kind": "error", "error": f"{release} has no pretrained tag '{tag}' for {name}, and "
            f"no file of that name (its tags: {', '.join(tags) or 'none'})"}


def probe(config: Path | None, find: bool = True) -> dict:
    """The env's facts; `config` is the checkpoint's config.yaml (None: the published one, or with
    `find`, the one HUB3D_SF3D_CHECKPOINT or the data dir holds)."""
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
    config = config or (_find_config() if find else None)
    classes, source = config_classes(config)
    out["classes_from"] = source
    out["classes"] = {}
    for path in classes:
        module, _, name = path.rpartition(".")
        try:
            getattr(importlib.import_module(module), name)
            out["classes"][path] = "ok"
        except Exception as exc:
            out["classes"][path] = _error(exc)
    out["weights"] = weights_config(config)
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
    # doctor passes the config that will be loaded, or "" when none is on disk yet
    given = argv[argv.index("--config") + 1] if "--config" in argv else None
    facts = probe(Path(given) if given else None, find=given is None)
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
