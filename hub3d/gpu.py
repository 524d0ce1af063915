"""GPU facts from nvidia-smi: cheap, no torch import, cached for a moment."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

__all__ = ["GPU", "free_vram_gb", "parse_nvidia_smi", "query_gpus"]

_QUERY = "index,name,memory.total,memory.free,uuid"
_CACHE_S = 2.0
_cache: tuple[float, list[GPU]] = (0.0, [])
_lock = threading.Lock()


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    vram_gb: float
    vram_free_gb: float


def parse_nvidia_smi(text: str) -> list[GPU]:
    """Parse `nvidia-smi --query-gpu=index,name,memory.total,memory.free,…
    --format=csv,noheader,nounits` output (MiB figures)."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        try:
            total, free = float(parts[2]) / 1024, float(parts[3]) / 1024
        except ValueError:
            continue
        gpus.append(GPU(int(parts[0]), parts[1], round(total, 2), round(free, 2)))
    return gpus


def query_gpus(*, fresh: bool = False) -> list[GPU]:
    """Every visible NVIDIA GPU; [] where there is none or no nvidia-smi."""
    global _cache
    with _lock:
        stamp, gpus = _cache
        if not fresh and time.monotonic() - stamp < _CACHE_S:
            return gpus
        gpus = []
        exe = shutil.which("nvidia-smi")
        if exe:
            try:
                out = subprocess.run(
                    [exe, f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=5, check=True,
                ).stdout
                gpus = parse_nvidia_smi(out)
            except (OSError, subprocess.SubprocessError):
                gpus = []
        _cache = (time.monotonic(), gpus)
        return gpus


def free_vram_gb(device: str) -> float | None:
    """Free memory on `cuda:N` right now; None for cpu or when unknown."""
    if not device.startswith("cuda"):
        return None
    index = int(device.partition(":")[2] or 0)
    for gpu in query_gpus(fresh=True):
        if gpu.index == index:
            return gpu.vram_free_gb
    return None
