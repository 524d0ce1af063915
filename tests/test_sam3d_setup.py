"""kernel_setup/setup_sam3d_env.sh on recorded tool outputs (no GPU, no conda channels here), and
the probe it ends with, run for real under this machine's python."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from hub3d.models import sam3d_probe
from tests.sam3d_recipe import REPO, fake_tools, run_recipe, steps


def test_dry_run_prints_every_step_with_micromamba_on_an_h100(tmp_path: Path) -> None:
    tools = fake_tools(tmp_path / "bin", micromamba="sam3d/micromamba-version.txt",
                       nvidia_smi="sam3d/nvidia-smi-query-h100.csv")
    src = tmp_path / "src"
    out = run_recipe(tmp_path, "--src", str(src), tools=tools)
    assert out.returncode == 0, out.stderr
    assert f"using {tools / 'micromamba'} (2.0.5)" in out.stdout
    assert "TORCH_CUDA_ARCH_LIST=9.0\n" in out.stdout
    cmds = steps(out.stdout)
    env, py = tmp_path / "env", f"{tmp_path / 'env'}/bin/python"
    assert cmds[:2] == [f"git clone https://github.com/facebookresearch/sam-3d-objects.git {src}",
                        f"git -C {src} checkout cf06676"]
    assert f"{tools / 'micromamba'} create -y -p {env} -f {src}/environments/default.yml" in cmds
    installs = [c for c in cmds if " -m pip install -e " in c]
    assert [c.rsplit(" ", 1)[1] for c in installs] == [
        f"{src}[dev]", f"{src}[p3d]", f"{src}[inference]", str(REPO)]
    for cmd in installs[:3]:  # the builds see the env's toolkit and compilers first
        assert f"PATH={env}/bin:" in cmd and f"CUDA_HOME={env}" in cmd
        assert "TORCH_CUDA_ARCH_LIST=9.0 FORCE_CUDA=1" in cmd and f" {py} -m pip" in cmd
    assert "PIP_FIND_LINKS" not in installs[1] and "PIP_FIND_LINKS=https://" in installs[2]
    assert any(c.endswith(f"{py} {src}/patching/hydra") for c in cmds)
    assert any("patch_kernelspec.py hub3d-sf3d" in c and f"HUB3D_SAM3D_PYTHON={py}" in c
               for c in cmds)
    assert any("write_offline_env" in c and c.endswith(f"{tmp_path / 'data'} {py} {src}")
               for c in cmds)
    # the last step imports what notebook/inference.py needs; flash_attn too on this card
    assert cmds[-1].endswith(f"{REPO}/hub3d/models/sam3d_probe.py check NVIDIA H100 80GB HBM3")
    assert not env.exists() and not src.exists()  # nothing ran


def test_dry_run_with_conda_and_no_gpu_warns_and_builds_for_every_arch(tmp_path: Path) -> None:
    tools = fake_tools(tmp_path / "bin", conda="sam3d/conda-version.txt")
    out = run_recipe(tmp_path, "--src", str(tmp_path / "src"), tools=tools)
    assert out.returncode == 0, out.stderr
    assert "no GPU visible" in out.stderr and "GPU node" in out.stderr
    assert "TORCH_CUDA_ARCH_LIST=8.0;8.6;8.9;9.0" in out.stdout
    cmds = steps(out.stdout)
    assert f"{tools / 'conda'} env create -p {tmp_path / 'env'} -f " \
           f"{tmp_path / 'src'}/environments/default.yml" in cmds
    assert cmds[-1].endswith("sam3d_probe.py check")  # no card: flash_attn not required


def test_two_a100s_give_one_arch_and_both_names(tmp_path: Path) -> None:
    tools = fake_tools(tmp_path / "bin", mamba="sam3d/conda-version.txt",
                       nvidia_smi="doctor/nvidia-smi-query-2xa100.csv")
    out = run_recipe(tmp_path, tools=tools)
    assert out.returncode == 0, out.stderr
    assert "TORCH_CUDA_ARCH_LIST=8.0\n" in out.stdout
    assert steps(out.stdout)[-1].endswith(
        "check NVIDIA A100-SXM4-80GB NVIDIA A100-SXM4-80GB")


def test_without_any_conda_bootstraps_miniforge_in_home(tmp_path: Path) -> None:
    out = run_recipe(tmp_path, "--src", str(tmp_path / "src"), tools=fake_tools(tmp_path / "b"))
    assert out.returncode == 0, out.stderr
    home = tmp_path / "home"
    cmds = steps(out.stdout)
    assert cmds[0].startswith(f"curl -fsSL -o {home}/miniforge3.sh https://github.com/")
    assert cmds[1] == f"bash {home}/miniforge3.sh -b -u -p {home}/miniforge3"
    assert f"{home}/miniforge3/bin/mamba env create -p {tmp_path / 'env'} -f " \
           f"{tmp_path / 'src'}/environments/default.yml" in cmds


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    out = run_recipe(tmp_path, "--gpu", tools=fake_tools(tmp_path / "b"))
    assert out.returncode == 2 and "unknown option: --gpu" in out.stderr


def _probe(*args: str, path: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": path}
    return subprocess.run([sys.executable, str(sam3d_probe.__file__), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_the_recipes_last_step_fails_naming_what_does_not_import() -> None:
    """Here (no kaolin, pytorch3d …) the check exits 1 and names them; flash_attn only on
    the cards upstream switches to it."""
    plain = _probe("check", "NVIDIA RTX 6000 Ada Generation")
    assert plain.returncode == 1
    for name in ("kaolin", "pytorch3d", "gsplat", "gradio"):
        assert f"does not import: {name} (ModuleNotFoundError" in plain.stderr
    assert "flash_attn" not in plain.stderr and "numpy" not in plain.stderr
    h100 = _probe("check", "NVIDIA H100 80GB HBM3")
    assert "does not import: flash_attn" in h100.stderr


def test_probe_texture_tells_the_rasterizer_variants_apart() -> None:
    standins = REPO / "tests" / "standins"
    mip = _probe("texture", path=str(standins / "texture_libs"))
    assert mip.returncode == 0 and mip.stdout.strip() == "{}"
    graphdeco = _probe("texture", path=f"{standins / 'rasterizer_graphdeco'}:"
                                        f"{standins / 'texture_libs'}")
    assert "has no kernel_size, subpixel_offset" in graphdeco.stdout
    assert "nvdiffrast" not in graphdeco.stdout


def test_worker_modules_are_what_a_worker_really_imports() -> None:
    """WORKER_MODULES (the recipe's check) against the imports of hub3d's worker path."""
    code = ("import sys\nimport hub3d.workers.child, hub3d.models.sam3d, "
            "hub3d.imaging.background\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120, cwd=REPO)
    third_party = {m for m in done.stdout.split() if not m.startswith("_")} - set(
        sys.stdlib_module_names) - {"hub3d"}
    helpers = {"annotated_types", "pydantic_core", "typing_extensions", "typing_inspection"}
    assert third_party - helpers <= set(sam3d_probe.WORKER_MODULES), third_party


def test_a_real_run_stops_at_the_import_check_with_what_is_missing(tmp_path: Path) -> None:
    """Not a dry run: a fake micromamba makes an env whose python is this one, except that its
    pip and upstream's hydra patch only record their arguments (no channels, no index here).
    Everything else runs: offline.env is written, and the final check fails on kaolin & co."""
    tools = fake_tools(tmp_path / "bin", nvidia_smi="sam3d/nvidia-smi-query-h100.csv")
    log = tmp_path / "pip.log"
    env_python = (f'#!/bin/sh\ncase "$1 $2 $3" in\n  "-m pip install"|*patching/hydra*) '
                  f'echo "$@" >> {log}; exit 0 ;;\nesac\nexec {sys.executable} "$@"\n')
    (tools / "micromamba").write_text(
        '#!/bin/sh\n[ "$1" = --version ] && { echo 2.0.5; exit 0; }\n'
        f'mkdir -p "$4/bin" && printf %s {shlex.quote(env_python)} > "$4/bin/python" '
        '&& chmod +x "$4/bin/python"\n')
    (tools / "micromamba").chmod(0o755)
    src = tmp_path / "src"
    (src / "environments").mkdir(parents=True)
    (src / "environments" / "default.yml").write_text("name: sam3d-objects\n")
    out = run_recipe(tmp_path, "--src", str(src), tools=tools, dry=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "does not import: kaolin (ModuleNotFoundError" in out.stderr
    assert "does not import: flash_attn" in out.stderr  # an H100: upstream switches to it
    recorded = log.read_text().splitlines()
    assert [line.split()[-1] for line in recorded if "pip install" in line] == [
        f"{src}[dev]", f"{src}[p3d]", f"{src}[inference]", str(REPO)]
    assert recorded[3].endswith(f"{src}/patching/hydra")
    offline = (tmp_path / "data" / "offline.env").read_text()
    assert f"HUB3D_SAM3D_PYTHON={tmp_path / 'env'}/bin/python" in offline
    assert f"HUB3D_SAM3D_SRC={src}" in offline
