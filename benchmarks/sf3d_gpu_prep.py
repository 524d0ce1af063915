"""What an SF3D speed run needs before it times anything: upstream's source extracted (with the
tet grid the archive lacks), a Python whose env has SF3D's two extensions, and a random
checkpoint of the full-size architecture (or the tests' reduced one).

The extensions are built by the recipe's own script (kernel_setup/build_sf3d_extensions.sh,
`--arch` from the card, or `--cpu`), both at once, as wheels installed with `pip --target` into
a folder that a small wrapper `bin/python` puts first on PYTHONPATH: nothing is installed into
the Python given. `--env DIR` skips all that and uses an env prepared before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import REPO
from benchmarks.sf3d_direct import gpu_query
from benchmarks.sf3d_upstream import checkpoint
from tests.upstream.sf3d_data import FULL_RESOLUTION, REAL_GRID_CUBES, extract_sf3d, write_tets

__all__ = ["Prepared", "card_arch", "prepare"]

BUILD = REPO / "kernel_setup" / "build_sf3d_extensions.sh"
PROBE = REPO / "hub3d" / "doctor" / "sf3d_probe.py"
EXTENSIONS = ("texture_baker", "uv_unwrapper")


@dataclass
class Prepared:
    python: Path  # the SF3D env's Python (workers and the direct process)
    src: Path
    checkpoint: Path
    extensions: str  # what was done about them, for the report
    phases: dict[str, float] = field(default_factory=dict)


def card_arch() -> str | None:
    """The first GPU's compute capability ("9.0"), as setup_sf3d_kernel.sh reads it."""
    return gpu_query("compute_cap")


def _wrapper_env(base: Path, env_dir: Path) -> Path:
    """env_dir/bin/python: `base` with env_dir/site first on PYTHONPATH (what pip --target
    filled), so the recipe's script and hub3d's workers see one interpreter."""
    site, bin_dir = env_dir / "site", env_dir / "bin"
    site.mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    python.write_text('#!/bin/sh\nexport PYTHONPATH="' + str(site) +
                      '${PYTHONPATH:+:$PYTHONPATH}"\nexec "' + str(base) + '" "$@"\n')
    python.chmod(0o755)
    return python


def _build_env(python: Path, work: Path) -> Path:
    """A folder whose bin/python is the interpreter behind `python` (wrappers resolved) with no
    PYTHONPATH: setuptools runs that env's own plugins while building, and the carried older
    packages (huggingface_hub 0.23 under a newer transformers' plugins) break them."""
    real = subprocess.run([str(python), "-c", "import sys; print(sys.executable)"], check=True,
                          capture_output=True, text=True, timeout=120).stdout.strip()
    env_dir = work / "build-env"
    (env_dir / "bin").mkdir(parents=True, exist_ok=True)
    wrapper = env_dir / "bin" / "python"
    wrapper.write_text(f'#!/bin/sh\nunset PYTHONPATH\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return env_dir


def _build(python: Path, env_dir: Path, src: Path, arch: str | None, log_dir: Path) -> None:
    """Both extensions at once with the recipe's script, as wheels, then into env_dir/site."""
    wheels = env_dir / "wheels"
    target = ["--cpu"] if arch is None else ["--arch", arch]
    build_env = _build_env(python, log_dir)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    running = []
    for ext in EXTENSIONS:
        log = (log_dir / f"build-{ext}.log").open("w")
        cmd = ["bash", str(BUILD), "--env", str(build_env), "--src", str(src), *target,
               "--only", ext, "--wheel-dir", str(wheels)]
        running.append((ext, log, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                   env=clean)))
    for ext, log, proc in running:
        code = proc.wait(timeout=1800)
        log.close()
        if code != 0:
            tail = Path(log.name).read_text()[-3000:]
            raise RuntimeError(f"building {ext} failed ({code}); {log.name} ends:\n{tail}")
    found = sorted(str(w) for w in wheels.glob("*.whl"))
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--upgrade", "--target", str(env_dir / "site"), *found], check=True,
                   timeout=600)


def probe(python: Path, src: Path, cuda: bool) -> dict[str, object]:
    """doctor's probe in the env: both extensions import; on a GPU the baker has CUDA kernels."""
    out = subprocess.run([str(python), str(PROBE)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(src)})
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{PROBE.name} printed nothing in {python}: {out.stderr[-2000:]}")
    facts: dict[str, object] = json.loads(lines[-1])
    broken = [e for e in EXTENSIONS if facts.get(e) != "ok"]
    if broken:
        raise RuntimeError(f"{', '.join(broken)} do not import in {python}: "
                           f"{[facts.get(e) for e in broken]}")
    if cuda and facts.get("baker_cuda") is not True:
        raise RuntimeError(f"texture_baker in {python} has no CUDA kernels: rebuild it on this "
                           "machine (without --env), or with build_sf3d_extensions.sh --arch")
    return facts


def prepare(args: argparse.Namespace, work: Path) -> Prepared:
    """The source, the env and the checkpoint under `work` (each reused if already there)."""
    phases: dict[str, float] = {}
    started = time.perf_counter()
    src_root = work / "src"
    src = (next(p for p in src_root.iterdir() if (p / "sf3d" / "system.py").is_file())
           if src_root.is_dir() else extract_sf3d(src_root))
    if not args.reduced:  # the reduced config's own 32³ grid is written by its builder
        write_tets(src, FULL_RESOLUTION, REAL_GRID_CUBES)
    phases["extract source + tet grid"] = time.perf_counter() - started

    started = time.perf_counter()
    if args.env:
        python = Path(args.env) / "bin" / "python"
        if not python.is_file():
            raise SystemExit(f"--env {args.env} has no bin/python")
        how = f"reused from --env {args.env}"
    else:
        env_dir = work / "env"
        python = _wrapper_env(Path(args.python or sys.executable), env_dir)
        arch = None if args.cpu else (args.arch or card_arch())
        if not args.cpu and arch is None:
            raise SystemExit("no GPU visible (nvidia-smi) and no --arch: run on the GPU machine, "
                             "or add --cpu for the CPU rehearsal")
        if not all((env_dir / "site" / e).is_dir() for e in EXTENSIONS):
            _build(python, env_dir, src, arch, work)
            how = f"built for sm_{arch.replace('.', '')}" if arch else "built without CUDA"
        else:
            how = "reused from an earlier run's --work"
    if not args.env or not args.cpu:  # a prepared CPU env proves itself in the first load
        probe(python, src, cuda=not args.cpu)
    phases["extensions (" + how + ")"] = time.perf_counter() - started

    started = time.perf_counter()
    ckpt = work / "model"
    if not (ckpt / "model.safetensors").is_file():
        shutil.rmtree(ckpt, ignore_errors=True)
        # sf3d_upstream's builder: its --env is the folder holding bin/python
        checkpoint(argparse.Namespace(env=str(python.parent.parent), reduced=args.reduced),
                   src, work)
    phases[f"random checkpoint ({'reduced' if args.reduced else 'full size'})"] = (
        time.perf_counter() - started)
    return Prepared(python, src, ckpt, how, phases)
