"""Shared fixtures of the upstream tier: the real SF3D source, and an env built by the recipe.

HUB3D_TEST_SF3D_ENV=/path/to/env reuses an env the recipe built before (for iterating on a
laptop: building takes minutes); .ci/run unsets it, so CI always builds one from a clean state.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.upstream.sf3d_data import FULL_RESOLUTION, REPO, SF3D_ARCHIVE, extract_sf3d, write_tets
from tests.upstream.sf3d_model import build_model

RECIPE = REPO / "kernel_setup" / "setup_sf3d_kernel.sh"
REUSE_ENV = os.environ.get("HUB3D_TEST_SF3D_ENV")  # read before any test's env cleaning
RECIPE_TIMEOUT_S = 2400  # a cold pip cache downloads torch and the nvidia libraries (~3 GB)
timings: dict[str, float] = {}  # what this tier's steps cost, printed after the run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if timings:
        terminalreporter.section("upstream tier: seconds")
        for what, seconds in timings.items():
            terminalreporter.write_line(f"{seconds:8.1f}  {what}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/upstream/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.upstream)
            # whichever test builds the env first pays for it inside its own timeout
            uses = set(getattr(item, "fixturenames", ()))
            if uses & {"sf3d_env", "sf3d_recipe"} and not item.get_closest_marker("timeout"):
                item.add_marker(pytest.mark.timeout(RECIPE_TIMEOUT_S + 300))


@pytest.fixture(scope="session")
def sf3d_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stable-fast-3d at ff21fc4, extracted, with the full config's tet grid generated (for
    other resolutions: tests.upstream.sf3d_data.write_tets(src, resolution))."""
    if not SF3D_ARCHIVE.is_file():
        pytest.fail(f"{SF3D_ARCHIVE} is missing: CI puts shared/ beside the clone")
    src = extract_sf3d(tmp_path_factory.mktemp("sf3d-src"))
    write_tets(src, FULL_RESOLUTION)
    return src


@dataclass
class RecipeRun:
    python: Path  # the env's Python
    env_dir: Path
    jupyter_data_dir: Path | None  # where the kernelspec went (None: a reused env)
    seconds: float | None
    log: str


@pytest.fixture(scope="session")
def sf3d_recipe(sf3d_src: Path, tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    """`setup_sf3d_kernel.sh --cpu --src <sf3d_src> --env <tmp>`, once per session."""
    if REUSE_ENV:
        env_dir = Path(REUSE_ENV)
        python = env_dir / "bin" / "python"
        if not python.is_file():
            pytest.fail(f"HUB3D_TEST_SF3D_ENV={REUSE_ENV} has no bin/python")
        return RecipeRun(python, env_dir, None, None, "")
    base = tmp_path_factory.mktemp("sf3d-env")
    env_dir, jupyter = base / "env", base / "jupyter"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB3D_", "VIRTUAL_ENV"))}
    env["JUPYTER_DATA_DIR"] = str(jupyter)
    started = time.monotonic()
    out = subprocess.run(["bash", str(RECIPE), "--cpu", "--src", str(sf3d_src),
                          "--env", str(env_dir)], env=env, capture_output=True, text=True,
                         timeout=RECIPE_TIMEOUT_S)
    seconds = time.monotonic() - started
    log = out.stdout + out.stderr
    (base / "recipe.log").write_text(log)
    if out.returncode != 0:
        pytest.fail(f"the recipe failed ({out.returncode}) after {seconds:.0f} s; its log "
                    f"ends:\n{log[-4000:]}")
    return RecipeRun(env_dir / "bin" / "python", env_dir, jupyter, seconds, log)


@pytest.fixture(scope="session")
def sf3d_env(sf3d_recipe: RecipeRun) -> Path:
    """The Python of an SF3D env the recipe built (--cpu): torch, SF3D's pins, both extensions
    built without CUDA, hub3d installed editable from this checkout."""
    return sf3d_recipe.python


@pytest.fixture(scope="session")
def model_dir(sf3d_env: Path, sf3d_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reduced SF3D checkpoint with random weights (sf3d_model.py), built once a session."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return build_model(sf3d_env, sf3d_src, tmp_path_factory.mktemp("sf3d-model"), env)
