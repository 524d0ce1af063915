"""SF3D's textures, the same for the same seed, whatever ran before and whatever runs beside.

Upstream dithers the baked textures as it quantises them to 8 bits (`float32_to_uint8_np`,
called from `sf3d.system`), with numpy's global random state: a job's textures then depend on
every job the process ran before it, and, with several jobs at once in one worker, on how their
threads interleave. Here each call of a job draws from the global state seeded from the job's
seed and the call's number, under a lock held only for that one quantisation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["install", "seeded"]

_LOCK = threading.Lock()
_JOB = threading.local()  # this thread's job: its seed and how many textures it has made


def install(system_module: Any) -> bool:
    """Wrap the module's `float32_to_uint8_np` (once); False when it has none (other code)."""
    original = getattr(system_module, "float32_to_uint8_np", None)
    if original is None or getattr(original, "_hub3d_seeded", False):
        return original is not None

    def quantise(*args: Any, **kwargs: Any) -> Any:
        seed = getattr(_JOB, "seed", None)
        if seed is None:  # outside a job (the warm-up): upstream as it is
            return original(*args, **kwargs)
        import numpy as np

        _JOB.calls += 1
        with _LOCK:
            np.random.seed((seed * 1_000_003 + _JOB.calls) % 2**32)
            return original(*args, **kwargs)

    quantise._hub3d_seeded = True  # type: ignore[attr-defined]
    system_module.float32_to_uint8_np = quantise
    return True


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The textures this thread makes meanwhile follow from `seed`."""
    _JOB.seed, _JOB.calls = seed, 0
    try:
        yield
    finally:
        _JOB.seed = None

