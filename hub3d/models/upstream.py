"""Helpers shared by the adapters around upstream model code (SF3D, SAM-3D-Objects).

Nothing here imports torch at module level: the control plane imports the backends.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub3d.errors import ModelError, NoObjectDetected, OutOfMemory

__all__ = [
    "add_source_tree",
    "hub_error_message",
    "inference_context",
    "is_out_of_memory",
    "map_run_error",
    "vram_figures",
]


def add_source_tree(env_var: str, marker: str, what: str) -> Path | None:
    """Put the source tree named by `env_var` first on sys.path; None when the var is unset.

    `marker` is a path inside the tree (e.g. "sf3d/system.py") that proves it is the right one.
    """
    raw = os.environ.get(env_var, "").strip()
    if not raw:
        return None
    root = Path(raw).expanduser().resolve()
    if not root.is_dir():
        raise ModelError(f"{env_var}={raw} is not a directory; point it at a checkout of {what}")
    if not (root / marker).is_file():
        raise ModelError(
            f"{env_var}={raw} does not look like a checkout of {what}: {marker} is missing there"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # only the upstream stand-ins in hub3d's tests run without torch
        return None
    return torch


@contextlib.contextmanager
def inference_context(device: str, *, bf16: bool) -> Iterator[None]:
    """no_grad everywhere; bf16 autocast on CUDA only (upstream's own choice for SF3D)."""
    torch = _torch()
    if torch is None:
        yield
        return
    with torch.no_grad():
        if bf16 and device.startswith("cuda"):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield
        else:
            yield


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError (any torch version) or the older RuntimeError text."""
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def vram_figures(device: str) -> str:
    """"x.x GB free of y.y GB, peak z.z GB" for a CUDA device, as torch sees it."""
    torch = _torch()
    if torch is None or not device.startswith("cuda") or not torch.cuda.is_available():
        return ""
    try:
        free, total = torch.cuda.mem_get_info(device)
        peak = torch.cuda.max_memory_allocated(device)
        name = torch.cuda.get_device_name(device)
    except Exception:  # the card may be in a bad state after an OOM; figures are best effort
        return ""
    gb = 1024**3
    return f"{name}: {free / gb:.1f} GB free of {total / gb:.1f} GB, peak {peak / gb:.1f} GB"


def map_run_error(exc: BaseException, device: str, model: str) -> BaseException:
    """Translate an upstream exception into the job error the user should see."""
    if isinstance(exc, ModelError):
        return exc
    if is_out_of_memory(exc):
        figures = vram_figures(device)
        detail = f" ({figures})" if figures else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return OutOfMemory(
            f"{model} ran out of GPU memory on {device}{detail}: {first}. The worker restarts "
            "to free the memory; retry with a smaller texture_resolution, or free the card."
        )
    if isinstance(exc, AssertionError) and "empty mask" in str(exc).lower():
        return NoObjectDetected(
            "no object detected in the image: the foreground mask is empty. Send a photo with "
            "one clear object, or pass a mask."
        )
    return exc


def hub_error_message(exc: BaseException, repo_id: str, model: str) -> str | None:
    """A clear message for a Hugging Face download refusal; None when `exc` is not one."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    name = type(exc).__name__
    if status in (401, 403) or name == "GatedRepoError":
        return (
            f"Hugging Face refused the download of {repo_id} (HTTP {status or 'gated'}): the "
            f"model is gated. Accept the licence at https://huggingface.co/{repo_id} and set "
            f"HF_TOKEN, or run `hub3d fetch-weights {model} --token …` once."
        )
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return (
            f"{repo_id} is not in the local Hugging Face cache and downloads are off "
            f"(offline): run `hub3d fetch-weights {model}` on a machine with internet, or "
            f"point the checkpoint setting at a local folder."
        )
    return None
