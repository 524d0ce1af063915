"""Pick the nvcc and host compiler that build SF3D's extensions for the env's torch.

    python cuda_toolchain.py max-gcc 11.8          # newest gcc major that nvcc 11.8 accepts
    python cuda_toolchain.py cuda-home ENV_DIR     # CUDA_HOME from the PyPI nvidia-* packages

torch's cpp_extension refuses an nvcc whose CUDA major differs from the torch's, and nvcc refuses a
gcc newer than its host_config.h allows; so a system toolkit that is missing or off by a version
is replaced by the PyPI toolchain of exactly the torch's CUDA, installed into the env.
"""

from __future__ import annotations

import sys
from pathlib import Path

# newest gcc major each nvcc accepts (crt/host_config.h of each CUDA release)
MAX_GCC = ((11.0, 9), (11.1, 10), (11.4, 11), (12.0, 12), (12.4, 13), (12.8, 14), (13.0, 15))


def max_gcc(cuda: str) -> int:
    major, minor = (int(x) for x in cuda.split(".")[:2])
    best = 0
    for version, gcc in MAX_GCC:
        if major + minor / 10 >= version:
            best = gcc
    return best


def cuda_home(env_dir: Path) -> Path:
    """Lay out <env>/cuda like a toolkit: bin and nvvm of nvidia-cuda-nvcc, every nvidia-*
    package's headers in include/, the runtime's libraries (with the unversioned name the
    linker wants) in lib64/."""
    sites = sorted(env_dir.glob("lib/python3*/site-packages/nvidia"))
    if not sites or not (sites[0] / "cuda_nvcc" / "bin" / "nvcc").is_file():
        raise SystemExit(f"no nvidia-cuda-nvcc package in {env_dir}: pip install it first")
    nvidia, home = sites[0], env_dir / "cuda"
    (home / "include").mkdir(parents=True, exist_ok=True)
    (home / "lib64").mkdir(exist_ok=True)
    for name in ("bin", "nvvm"):
        link = home / name
        if not link.exists():
            link.symlink_to(nvidia / "cuda_nvcc" / name, target_is_directory=True)
    for include in sorted(nvidia.glob("*/include")):
        for item in include.iterdir():
            target = home / "include" / item.name
            if not target.exists() and not target.is_symlink():
                target.symlink_to(item)
    for lib in sorted((nvidia / "cuda_runtime" / "lib").glob("libcudart*")):
        target = home / "lib64" / lib.name
        if not target.exists():
            target.symlink_to(lib)
        if lib.name.startswith("libcudart.so.") and not (home / "lib64" / "libcudart.so").exists():
            (home / "lib64" / "libcudart.so").symlink_to(lib)
    return home


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "max-gcc":
        print(max_gcc(argv[1]))
    elif len(argv) == 2 and argv[0] == "cuda-home":
        print(cuda_home(Path(argv[1])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
