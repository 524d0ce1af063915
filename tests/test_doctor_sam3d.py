"""hub3d doctor's SAM-3D rows: on recorded probe outputs, and on this machine for real (the probe
run under a python, the checkpoints and caches laid out on disk as upstream and torch.hub do)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from hub3d.doctor.sam3d import gather_sam3d, rows, sam3d_rows
from tests.servers import REPO

DATA = Path(__file__).resolve().parent / "data"
DINO = "sam3d_objects.model.backbone.dit.embedder.dino.Dino"


def recorded(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / "sam3d" / name).read_text()))


def facts(probe: str, **over: Any) -> dict[str, Any]:
    base = {"python": "/env/bin/python", "probe": recorded(probe), "checkpoints": "/w/ckpt",
            "ckpt_files": 9, "torch_hub": "/t/hub", "hf_hub": "/h/hub", "smi_cards": [],
            "dino": [("facebookresearch/dinov2", "dinov2_vitl14_reg",
                      "/t/hub/checkpoints/dinov2_vitl14_reg4_pretrain.pth")],
            "moge": "/h/hub/models--Ruicheng--moge-vitl/snapshots/a/model.pt"}
    return {**base, **over}


def by_name(rows: list[Any]) -> dict[str, Any]:
    return {r.name: r for r in rows}


def test_complete_env_on_an_h100_is_all_ok() -> None:
    rows = sam3d_rows(facts("probe-facts-h100-complete.json"))
    assert [(r.name, r.found) for r in rows if r.status != "ok"] == []
    got = by_name(rows)
    assert set(got) >= {"SAM-3D env", "SAM-3D torch", "SAM-3D kaolin", "SAM-3D pytorch3d",
                        "SAM-3D gsplat", "SAM-3D flash_attn", "SAM-3D rasterizer",
                        "SAM-3D checkpoints", "SAM-3D DINOv2 cache", "SAM-3D MoGe cache",
                        "SAM-3D VRAM"}
    assert got["SAM-3D torch"].found == "2.5.1+cu121 (CUDA 12.1)"
    assert got["SAM-3D VRAM"].found == "NVIDIA H100 80GB HBM3 79.1 GB"


def test_gaps_each_get_their_row_and_fix() -> None:
    got = by_name(sam3d_rows(facts("probe-facts-rtx4090-gaps.json")))
    assert got["SAM-3D env"].status == "warn" and "CUDA 12.1 toolkit" in got["SAM-3D env"].found
    assert "setup_sam3d_env.sh" in got["SAM-3D env"].fix
    kaolin = got["SAM-3D kaolin"]
    assert kaolin.status == "fail" and "No module named 'kaolin'" in kaolin.found
    assert "PIP_FIND_LINKS=https://nvidia-kaolin" in kaolin.fix and "'.[inference]'" in kaolin.fix
    assert got["SAM-3D other imports"].status == "fail"
    assert "seaborn" in got["SAM-3D other imports"].found
    # a 4090 is not a card upstream switches to flash_attn on: its absence is fine there
    assert (got["SAM-3D flash_attn"].status, got["SAM-3D flash_attn"].found) == (
        "ok", "not used on NVIDIA GeForce RTX 4090")
    raster = got["SAM-3D rasterizer"]
    assert raster.status == "warn" and "graphdeco-inria" in raster.found
    assert "mip-splatting" in raster.fix
    assert got["SAM-3D nvdiffrast"].status == "warn"
    vram = got["SAM-3D VRAM"]
    assert vram.status == "fail" and vram.found == "NVIDIA GeForce RTX 4090 23.6 GB"
    assert ">= 32 GB" in vram.fix and "HUB3D_SAM3D_ALLOW_LOW_VRAM=1" in vram.fix


def test_flash_attn_broken_on_an_a100_fails_with_the_p3d_extra() -> None:
    got = by_name(sam3d_rows(facts("probe-facts-a100-broken.json")))
    row = got["SAM-3D flash_attn"]
    assert row.status == "fail" and "libcudart.so.11.0" in row.found
    assert "NVIDIA A100-SXM4-80GB" in row.found and "'.[p3d]'" in row.fix
    assert got["SAM-3D pytorch3d"].status == "fail" and "undefined symbol" in \
        got["SAM-3D pytorch3d"].found


def test_caches_and_checkpoints_missing_say_how_to_get_them() -> None:
    got = by_name(sam3d_rows(facts(
        "probe-facts-h100-complete.json", moge=None,
        dino=[("facebookresearch/dinov2", "dinov2_vitl14_reg", None)],
        checkpoints_error="SAM-3D checkpoint folder /w/ckpt has no pipeline.yaml. Download …")))
    assert got["SAM-3D checkpoints"].status == "fail"
    assert "hub3d fetch-weights sam3d" in got["SAM-3D checkpoints"].fix
    assert "facebookresearch/dinov2:dinov2_vitl14_reg" in got["SAM-3D DINOv2 cache"].found
    assert "fetch-weights sam3d" in got["SAM-3D DINOv2 cache"].fix
    assert got["SAM-3D MoGe cache"].status == "warn"


def test_unset_python_is_one_row_that_says_how_to_set_it_up() -> None:
    """SAM-3D is optional: an SF3D-only kernel stays all ok (and passes --strict)."""
    [row] = sam3d_rows({"python": "", "probe": {}})
    assert (row.name, row.status) == ("SAM-3D env", "ok")
    assert "HUB3D_SAM3D_PYTHON unset" in row.found and "setup_sam3d_env.sh" in row.found


def _layout(tmp: Path) -> dict[str, str]:
    """Checkpoints as upstream's HF repo has them, DINOv2 and MoGe where torch.hub / HF put them."""
    ckpt = tmp / "checkpoints"
    ckpt.mkdir()
    (ckpt / "pipeline.yaml").write_text("_target_: sam3d_objects.pipeline.X\n")
    (ckpt / "ss_generator.yaml").write_text(
        f"embedders:\n- _target_: {DINO}\n  dino_model: dinov2_vitl14_reg\n")
    (ckpt / "ss_generator.ckpt").write_bytes(b"w")
    hub = tmp / "torch" / "hub"
    (hub / "facebookresearch_dinov2_main").mkdir(parents=True)
    (hub / "checkpoints").mkdir()
    (hub / "checkpoints" / "dinov2_vitl14_reg4_pretrain.pth").write_bytes(b"w")
    moge = tmp / "hf" / "hub" / "models--Ruicheng--moge-vitl"
    (moge / "snapshots" / "abc").mkdir(parents=True)
    (moge / "snapshots" / "abc" / "model.pt").write_bytes(b"w")
    (moge / "refs").mkdir()
    (moge / "refs" / "main").write_text("abc")  # the snapshot an offline load takes
    return {"HUB3D_SAM3D_PYTHON": sys.executable, "HUB3D_SAM3D_CHECKPOINTS": str(ckpt),
            "TORCH_HOME": str(tmp / "torch"), "HF_HOME": str(tmp / "hf")}


def test_gathered_for_real_on_this_machine(tmp_path: Path) -> None:
    env = _layout(tmp_path)
    f = gather_sam3d(env, tmp_path / "data")
    # the probe's real output has the recorded files' shape
    assert set(f["probe"]) == set(recorded("probe-facts-h100-complete.json"))
    smi = (DATA / "sam3d" / "nvidia-smi-query-h100.csv").read_text()
    got = by_name(rows({"sam3d": f, "smi_query": smi}))  # the section, as doctor calls it
    assert got["SAM-3D checkpoints"].status == "ok"
    assert got["SAM-3D DINOv2 cache"].found.endswith("dinov2_vitl14_reg4_pretrain.pth")
    assert got["SAM-3D MoGe cache"].found.endswith("snapshots/abc/model.pt")
    assert got["SAM-3D kaolin"].status == "fail"  # not installed here
    if not f["probe"]["torch"].get("devices"):  # torch sees no card here: nvidia-smi's count
        assert got["SAM-3D VRAM"].found == "NVIDIA H100 80GB HBM3 79.6 GB"
        assert got["SAM-3D flash_attn"].status == "fail"  # needed on that card, absent here


def test_doctor_cli_shows_the_sam3d_rows(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO),
           **_layout(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "hub3d", "doctor", "--json"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["SAM-3D checkpoints"]["status"] == "ok"
    assert rows["SAM-3D kaolin"]["status"] == "fail" and done.returncode == 1


def with_torch(torch: dict[str, Any], **over: Any) -> dict[str, Any]:
    """The complete H100 facts with the probe's torch changed."""
    probe = recorded("probe-facts-h100-complete.json")
    probe["torch"] = {**probe["torch"], **torch}
    return {**facts("probe-facts-h100-complete.json", **over), "probe": probe}


def test_torch_rows_fail_only_where_sam3d_cannot_run() -> None:
    cu118 = by_name(sam3d_rows(with_torch({"version": "2.5.1+cu118", "cuda": "11.8"})))
    row = cu118["SAM-3D torch"]  # the modules import against it: the recipe's choice differs
    assert row.status == "warn" and "the recipe installs 2.5.1+cu121" in row.found
    cpu = by_name(sam3d_rows(with_torch({"version": "2.5.1+cpu", "cuda": None,
                                         "cuda_available": False, "devices": []})))["SAM-3D torch"]
    assert cpu.status == "fail" and cpu.found.endswith("a CPU build")
    smi = [{"name": "NVIDIA H100 80GB HBM3", "vram_gb": 79.6, "compute_cap": "9.0"}]
    blind = by_name(sam3d_rows(with_torch({"cuda_available": False, "devices": []},
                                          smi_cards=smi)))
    assert blind["SAM-3D torch"].status == "fail"
    assert "nvidia-smi lists 1" in blind["SAM-3D torch"].found
    assert "CUDA_VISIBLE_DEVICES" in blind["SAM-3D torch"].fix


def test_no_gpu_at_all_fails_the_vram_row() -> None:
    got = by_name(sam3d_rows(with_torch({"cuda_available": False, "devices": []})))
    assert got["SAM-3D VRAM"].status == "fail" and "runs on a GPU" in got["SAM-3D VRAM"].fix
    assert got["SAM-3D torch"].status == "warn"  # the same cause: one failing row for it


def test_low_vram_allowed_warns_since_the_backend_tries() -> None:
    got = by_name(sam3d_rows(facts("probe-facts-rtx4090-gaps.json", allow_low_vram=True)))
    vram = got["SAM-3D VRAM"]
    assert vram.status == "warn" and "HUB3D_SAM3D_ALLOW_LOW_VRAM=1: it tries" in vram.found


def test_moge_missing_offline_fails() -> None:
    online = by_name(sam3d_rows(facts("probe-facts-h100-complete.json", moge=None)))
    assert online["SAM-3D MoGe cache"].status == "warn"  # the first load downloads it
    offline = by_name(sam3d_rows(facts("probe-facts-h100-complete.json", moge=None,
                                       hf_offline=True)))["SAM-3D MoGe cache"]
    assert offline.status == "fail" and "downloads are off (HF_HUB_OFFLINE)" in offline.found
    assert "hub3d fetch-weights sam3d" in offline.fix


def test_gather_reads_offline_and_low_vram_settings(tmp_path: Path) -> None:
    env = {**_layout(tmp_path), "HF_HUB_OFFLINE": "1", "HUB3D_SAM3D_ALLOW_LOW_VRAM": "1"}
    f = gather_sam3d(env, tmp_path / "data")
    assert f["hf_offline"] and f["allow_low_vram"]
    assert f["moge"].endswith("snapshots/abc/model.pt")
    (tmp_path / "hf" / "hub" / "models--Ruicheng--moge-vitl" / "refs" / "main").write_text("new")
    assert gather_sam3d(env, tmp_path / "data")["moge"] is None  # offline, main's file is absent
