"""The newest gcc major each nvcc release accepts as its host compiler (its crt/host_config.h).

Standard library only, and nothing from hub3d: kernel_setup/cuda_toolchain.py loads this file by
its path, so the extension build can pick a compiler before hub3d is installed in the env.
"""

from __future__ import annotations

__all__ = ["MAX_GCC", "max_gcc"]

# (first nvcc release, newest gcc major it accepts)
MAX_GCC = ((11.0, 9), (11.1, 10), (11.4, 11), (12.0, 12), (12.4, 13), (12.8, 14), (13.0, 15))


def max_gcc(cuda: str) -> int:
    """11 for '11.8': the newest gcc major that nvcc of that CUDA release accepts (0: too old)."""
    major, minor = (int(x) for x in cuda.split(".")[:2])
    return max([gcc for version, gcc in MAX_GCC if major + minor / 10 >= version] or [0])
