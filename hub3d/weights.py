"""`hub3d fetch-weights MODEL`: download every file a model needs, then run offline.

Run once on a machine with internet. What to fetch is the backend's own declaration
(`Backend.weights`, a hub3d.models.files.WeightsSpec): its checkpoint lands under
`<data dir>/weights/`, the models its load pulls (DINOv2, CLIP, MoGe …) in caches there. The
server, the notebook and doctor then find them from the data dir alone (hub3d.models.files);
`<data dir>/offline.env` also records the settings, for shells that want them explicit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from hub3d.errors import ModelError
from hub3d.models.files import (
    CACHE_DIRS,
    Fetched,
    HubFiles,
    StepDone,
    WeightsSpec,
    resolve_files,
    weights_dir,
)

__all__ = ["FetchError", "FetchIncomplete", "fetch_weights", "register", "u2net_step",
           "write_offline_env"]

U2NET_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx"


class FetchError(Exception):
    """A download that cannot go on; the message says what to do."""


class FetchIncomplete(FetchError):
    """Everything else was fetched (and kept); `done` says what, the message what is not."""

    def __init__(self, done: list[str], message: str) -> None:
        super().__init__(message)
        self.done = done


def _refusal(exc: BaseException, repo_id: str, model: str) -> str | None:
    # 0.23's hf_hub_download wraps a refused HEAD in LocalEntryNotFoundError: read the chain
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    response = next((r for e in chain if (r := getattr(e, "response", None)) is not None
                     and getattr(r, "status_code", None) is not None), None)
    status = response.status_code if response is not None else None
    said = response.headers.get("X-Error-Message", "") if response is not None else ""
    again = f"`hub3d fetch-weights {model} --token hf_…` (or set HF_TOKEN)."
    if status == 401 and said == "Invalid credentials in Authorization header":
        return (f"Hugging Face does not know the token (HTTP 401: {said}): copy a read token "
                f"from https://huggingface.co/settings/tokens, then {again}")
    if status in (401, 403) or any(type(e).__name__ == "GatedRepoError" for e in chain):
        return (f"Hugging Face refused {repo_id} (HTTP {status or 'gated'}): accept the licence "
                f"at https://huggingface.co/{repo_id} with your account, then pass a token: "
                f"{again}")
    return None


def _hub_download(item: HubFiles, model: str, weights: Path, cache: Path,
                  token: str | None) -> Path:
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:
        raise FetchError("fetch-weights needs huggingface_hub: pip install 'hub3d[sf3d]' "
                         "(or pip install huggingface_hub)") from None
    local = weights / item.into if item.into else None
    where: dict[str, Any] = {"local_dir": local} if local else {"cache_dir": cache}
    try:
        if item.files:
            for name in item.files:
                path = Path(hf_hub_download(item.repo_id, name, token=token, **where))
            return local or path.parent
        return Path(snapshot_download(item.repo_id, allow_patterns=list(item.patterns),
                                      token=token, **where))
    except Exception as exc:
        message = _refusal(exc, item.repo_id, model)
        if message:
            raise FetchError(message) from exc
        raise FetchError(f"downloading {item.repo_id} failed: {type(exc).__name__}: {exc}. "
                         "Check the connection (or HF_ENDPOINT) and run the command again; "
                         "finished files are kept.") from exc


def u2net_step(fetched: Fetched) -> StepDone:
    """A fetch step: rembg's u2net model (background removal) into weights/u2net."""
    import requests

    from hub3d.fsutil import temp_path_for

    folder = weights_dir(fetched.data_dir) / CACHE_DIRS["U2NET_HOME"]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "u2net.onnx"
    if target.is_file() and target.stat().st_size > 0:
        return StepDone(f"u2net → {target} (already there)")
    url = os.environ.get("HUB3D_U2NET_URL", U2NET_URL)
    tmp = temp_path_for(target)
    try:
        with requests.get(url, stream=True, timeout=60) as resp:
            resp.raise_for_status()
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
        os.replace(tmp, target)
    except requests.RequestException as exc:
        raise FetchError(f"downloading u2net (background removal) from {url} failed: {exc}") \
            from exc
    finally:
        tmp.unlink(missing_ok=True)
    return StepDone(f"u2net → {target}")


def write_offline_env(data_dir: Path, settings: dict[str, str]) -> Path:
    """Merge `settings` into <data_dir>/offline.env (KEY=value lines, shell-sourceable)."""
    path = data_dir / "offline.env"
    current: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                current[key.strip()] = value.strip()
    current.update(settings)
    lines = ["# written by `hub3d fetch-weights`; load with: set -a; . ./offline.env; set +a"]
    lines += [f"{k}={v}" for k, v in current.items()]
    from hub3d.fsutil import atomic_write_bytes

    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def _fetchable() -> dict[str, WeightsSpec]:
    """Every installed backend that declares files to fetch, by name."""
    from hub3d.models.registry import available_models, load_backend_class

    found = {}
    for name in available_models():
        try:
            spec = load_backend_class(name).weights
        except Exception:  # noqa: BLE001 — a broken backend has nothing to fetch here
            continue
        if spec is not None:
            found[name] = spec
    return found


def fetch_weights(model: str, data_dir: Path, token: str | None) -> list[str]:
    """Download everything for `model`; returns what was done, line by line."""
    from hub3d.models.catalog import Catalog

    entry = Catalog.build([model], data_dir).entry(model)
    spec = entry.weights
    if spec is None:
        raise FetchError(f"model '{model}' has no weights to fetch")
    os.environ.pop("HF_HUB_OFFLINE", None)  # this command is the one that must go online
    weights = weights_dir(data_dir)
    done: list[str] = []
    for item in spec.plan:
        where = _hub_download(item, model, weights, weights / CACHE_DIRS["HF_HOME"] / "hub",
                              token)
        done.append(f"{item.repo_id} → {where}")
    # what a worker will see from now on, by the same rule the server applies
    files = resolve_files(spec, data_dir, {})
    if files.checkpoint is None:
        raise FetchError(f"nothing usable was fetched into {weights / spec.checkpoint}")
    fetched = Fetched(data_dir, Path(files.checkpoint), entry.python, entry.python_from,
                      {**os.environ, **files.env})
    steps = [step(fetched) for step in spec.steps]
    done += [s.line for s in steps]
    files = resolve_files(spec, data_dir, {})  # the steps may have added a cache
    done.append(f"settings → {write_offline_env(data_dir, files.env)}")
    missing = [s.missing for s in steps if s.missing]
    if missing:
        raise FetchIncomplete(done, f"NOT complete: {', '.join(missing)} is missing; {model} "
                                    "cannot load offline until it is cached (see above).")
    return done


def _command(args: argparse.Namespace) -> int:
    from hub3d.config import data_dir_from_env

    data_dir = data_dir_from_env(args.dir)
    token = args.token or os.environ.get("HF_TOKEN") or None
    try:
        lines = fetch_weights(args.model, data_dir, token)
    except FetchIncomplete as exc:
        print("\n".join(exc.done))
        print(f"hub3d fetch-weights: error: {exc}", file=sys.stderr)
        return 1
    except (FetchError, ModelError) as exc:
        print(f"hub3d fetch-weights: error: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    print(json.dumps({"offline_env": str(data_dir / "offline.env")}))
    print(f"The server, the notebook and doctor find these files from the data dir alone: "
          f"hub3d serve --data-dir {data_dir} --models {args.model} (or DATA_DIR in the "
          "notebook) runs offline. A shell that wants the settings explicit: "
          f"set -a; . {data_dir / 'offline.env'}; set +a")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fetch-weights", help="download a model's weights for offline serving",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("model", choices=sorted(_fetchable()),
                        help="which model's files to fetch")
    parser.add_argument("--token", help="Hugging Face token (default: HF_TOKEN); the models "
                                        "are gated: accept their licences first")
    parser.add_argument("--dir", help="data dir to fill (default: HUB3D_DATA_DIR or "
                                      "~/hub3d-data)")
    parser.set_defaults(func=_command)
