"""Set metadata.cull_idle_timeout and env entries in an installed kernelspec's kernel.json.

    python patch_kernelspec.py hub3d-sf3d --cull-idle-timeout 604800 --env HUB3D_SF3D_SRC=/path
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def patch(kernel_json: Path, cull_idle_timeout: int, env: dict[str, str]) -> dict:
    spec = json.loads(kernel_json.read_text())
    spec.setdefault("metadata", {})["cull_idle_timeout"] = cull_idle_timeout
    spec.setdefault("env", {}).update(env)  # values may use ${VAR}: the kernel launcher expands it
    kernel_json.write_text(json.dumps(spec, indent=1) + "\n")
    return spec


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="kernelspec name, or a path to kernel.json")
    p.add_argument("--cull-idle-timeout", type=int, required=True)
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    path = Path(args.name)
    if not path.is_file():
        from jupyter_client.kernelspec import KernelSpecManager

        path = Path(KernelSpecManager().get_kernel_spec(args.name).resource_dir) / "kernel.json"
    env = dict(item.split("=", 1) for item in args.env)
    patch(path, args.cull_idle_timeout, env)
    print(f"patched {path}: cull_idle_timeout={args.cull_idle_timeout}, env {sorted(env)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
