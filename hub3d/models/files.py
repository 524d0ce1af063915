"""Where a model's files are: one rule, read by the server, the notebook, doctor and
`hub3d fetch-weights` alike.

An explicit setting wins (the checkpoint variable a backend names; HF_HOME, TORCH_HOME,
U2NET_HOME, HF_HUB_OFFLINE as set); else what `hub3d fetch-weights` left under the data dir
(its checkpoint folder, its caches, and offline mode when every file of its plan is there);
else the backend's default (a hub id, or a folder inside its source tree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

__all__ = ["CACHE_DIRS", "FetchStep", "Fetched", "FileSource", "HubFiles", "ModelFiles",
           "StepDone", "WeightsSpec", "missing_files", "resolve_files", "weights_dir"]

# The caches a model's load may read, and their folder under <data dir>/weights/.
CACHE_DIRS = {"HF_HOME": "hf", "TORCH_HOME": "torch", "U2NET_HOME": "u2net"}
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class HubFiles:
    """Files of one Hugging Face repo that a model needs."""

    repo_id: str
    files: tuple[str, ...] = ()  # explicit files; empty → the patterns below, via a snapshot
    patterns: tuple[str, ...] = ()
    into: str | None = None  # folder under weights/; None → the Hugging Face cache (HF_HOME)


@dataclass(frozen=True)
class Fetched:
    """What a fetch step is given: where the files went, and how a worker will see them."""

    data_dir: Path
    checkpoint: Path  # the fetched checkpoint folder
    python: str  # the Python the model's workers run
    python_from: str  # the setting that chose it
    env: Mapping[str, str]  # their environment


@dataclass(frozen=True)
class StepDone:
    """What a fetch step did; `missing`: what it could not fetch (the command then fails)."""

    line: str
    missing: str | None = None


# One more step after the hub files (check the checkpoint, u2net, torch.hub).
FetchStep = Callable[[Fetched], StepDone]


@dataclass(frozen=True)
class WeightsSpec:
    """What a backend declares about its files; everything else here follows from it."""

    setting: str  # the variable naming the checkpoint explicitly: HUB3D_SF3D_CHECKPOINT
    checkpoint: str  # the checkpoint folder under <data dir>/weights/ once fetched
    plan: tuple[HubFiles, ...]  # what `hub3d fetch-weights` downloads
    caches: tuple[str, ...] = ("HF_HOME",)  # the cache variables the model's load reads
    default: str | None = None  # a hub id to load from when nothing local is found
    # (variable naming the source tree, folder in it) that holds checkpoints, e.g. SAM-3D's
    default_in_source: tuple[str, str] | None = None
    steps: tuple[FetchStep, ...] = ()  # extra fetch steps, run after the hub files
    gated: tuple[str, ...] = ()  # repos whose download needs an accepted licence and a token


class FileSource(str, Enum):
    """Where the checkpoint a worker loads comes from."""

    SETTING = "setting"  # the backend's checkpoint variable, set by the user
    FETCHED = "fetched"  # <data dir>/weights/…, left by `hub3d fetch-weights`
    SOURCE_TREE = "source_tree"  # inside the model's source checkout
    HUB = "hub"  # downloaded from the Hugging Face hub at load
    NONE = "none"  # nothing found: the load will say what to do


@dataclass(frozen=True)
class ModelFiles:
    checkpoint: str | None
    source: FileSource
    offline: bool
    # what the worker's environment gets beyond the server's own (explicit settings stay)
    env: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()  # files of the plan not on disk (why it is not offline)

    def describe(self, spec: WeightsSpec) -> str:
        """One line for /models, doctor and the notebook."""
        where = {
            FileSource.SETTING: f"set by {spec.setting}",
            FileSource.FETCHED: "fetched by `hub3d fetch-weights` into the data dir",
            FileSource.SOURCE_TREE: f"inside the source tree ({spec.default_in_source[0]})"
            if spec.default_in_source else "inside the source tree",
            FileSource.HUB: "downloaded from the Hugging Face hub at the first load",
            FileSource.NONE: "not found",
        }[self.source]
        mode = "offline" if self.offline else "online"
        return f"{self.checkpoint or '(none)'}: {where}, {mode}"


def weights_dir(data_dir: Path) -> Path:
    return data_dir / "weights"


def _cached(hub_cache: Path, repo_id: str, name: str) -> bool:
    snapshots = hub_cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return any(snapshots.glob(f"*/{name}"))


def missing_files(spec: WeightsSpec, data_dir: Path, hf_home: Path) -> list[str]:
    """Files of the plan that are not on disk where the load will look."""
    weights, missing = weights_dir(data_dir), []
    for item in spec.plan:
        if item.into is not None:
            folder = weights / item.into
            if item.files:
                missing += [f"{item.repo_id}/{n}" for n in item.files
                            if not (folder / n).is_file()]
            elif not any(p.is_file() for pat in item.patterns for p in folder.glob(pat)):
                missing.append(f"{item.repo_id}/{'|'.join(item.patterns)}")
        else:
            missing += [f"{item.repo_id}/{n}" for n in item.files
                        if not _cached(hf_home / "hub", item.repo_id, n)]
    return missing


def _checkpoint(spec: WeightsSpec, data_dir: Path,
                environ: Mapping[str, str]) -> tuple[str | None, FileSource]:
    explicit = environ.get(spec.setting, "").strip()
    if explicit:
        return explicit, FileSource.SETTING
    fetched = weights_dir(data_dir) / spec.checkpoint
    if fetched.is_dir() and any(fetched.iterdir()):
        return str(fetched), FileSource.FETCHED
    if spec.default_in_source:
        var, inside = spec.default_in_source
        root = environ.get(var, "").strip()
        if root:
            return str(Path(root).expanduser() / inside), FileSource.SOURCE_TREE
    if spec.default:
        return spec.default, FileSource.HUB
    return None, FileSource.NONE


def resolve_files(spec: WeightsSpec, data_dir: Path,
                  environ: Mapping[str, str]) -> ModelFiles:
    """The checkpoint and caches a worker of this model will load, and the env that says so."""
    checkpoint, source = _checkpoint(spec, data_dir, environ)
    env: dict[str, str] = {}
    if source is FileSource.FETCHED and checkpoint:
        env[spec.setting] = checkpoint
    for var in spec.caches:
        fetched = weights_dir(data_dir) / CACHE_DIRS[var]
        if not environ.get(var, "").strip() and fetched.is_dir():
            env[var] = str(fetched)
    hf_home = Path(environ.get("HF_HOME") or env.get("HF_HOME")
                   or "~/.cache/huggingface").expanduser()
    missing = tuple(missing_files(spec, data_dir, hf_home))
    explicit = environ.get("HF_HUB_OFFLINE", "").strip().lower()
    if explicit:
        offline = explicit in _TRUE
    else:
        # everything fetched is on disk, and the checkpoint is not a hub id: no download left
        offline = source is FileSource.FETCHED and not missing
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
    return ModelFiles(checkpoint, source, offline, env, missing)
