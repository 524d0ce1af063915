"""Helpers for build_sf3d_extensions.sh: the host compiler nvcc accepts, a CUDA_HOME from PyPI.

    python cuda_toolchain.py max-gcc 11.8          # newest gcc major that nvcc 11.8 accepts
    python cuda_toolchain.py cuda-home ENV_DIR     # CUDA_HOME from the PyPI nvidia-* packages

torch's cpp_extension refuses an nvcc whose CUDA major differs from the torch's, and nvcc refuses a
gcc newer than its host_config.h allows. From CUDA 13 on, PyPI has the whole compiler
(nvidia-cuda-nvcc, nvidia-nvvm, nvidia-cuda-crt); build_sf3d_extensions.sh installs the torch's
release into the env and points CUDA_HOME at the tree laid out here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

# The gcc table doctor checks against too, read from its file: this runs before hub3d is
# installed in the env (and without it on sys.path).
TABLE = Path(__file__).resolve().parent.parent / "hub3d" / "doctor" / "nvcc_gcc.py"


def _table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hub3d_nvcc_gcc", TABLE)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{TABLE} is missing: run this from a hub3d checkout")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cuda_home(env_dir: Path) -> Path:
    """Lay out <env>/cuda like a toolkit from the PyPI nvidia-* packages in the env: bin and nvvm
    of the one holding nvcc, every package's headers in include/, the runtime's libraries (with
    the unversioned name the linker wants) in lib64/."""
    sites = sorted(env_dir.glob("lib/python3*/site-packages/nvidia"))
    nvccs = sorted(sites[0].glob("*/bin/nvcc")) if sites else []
    if not nvccs:
        raise SystemExit(f"no nvcc from PyPI in {env_dir}: pip install nvidia-cuda-nvcc first")
    nvidia, root, home = sites[0], nvccs[0].parent.parent, env_dir / "cuda"
    (home / "include").mkdir(parents=True, exist_ok=True)
    (home / "lib64").mkdir(exist_ok=True)
    for name in ("bin", "nvvm"):
        link = home / name
        if not link.exists() and (root / name).is_dir():
            link.symlink_to(root / name, target_is_directory=True)
    for include in sorted(nvidia.glob("*/include")):
        for item in include.iterdir():
            target = home / "include" / item.name
            if not target.exists() and not target.is_symlink():
                target.symlink_to(item)
    for lib in sorted(nvidia.glob("*/lib/libcudart*")):
        target = home / "lib64" / lib.name
        if not target.exists():
            target.symlink_to(lib)
        if lib.name.startswith("libcudart.so.") and not (home / "lib64" / "libcudart.so").exists():
            (home / "lib64" / "libcudart.so").symlink_to(lib)
    return home


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "max-gcc":
        print(_table().max_gcc(argv[1]))
    elif len(argv) == 2 and argv[0] == "cuda-home":
        print(cuda_home(Path(argv[1])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
