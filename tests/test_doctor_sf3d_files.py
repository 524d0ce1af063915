"""doctor's rows about the files SF3D loads (checkpoint, DINOv2, CLIP) on recorded probe facts,
the look-ups on caches laid out on disk as huggingface_hub writes them, and `sf3d_files`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hub3d.doctor import rows_from_facts
from hub3d.doctor.hf_cache import cached_file, has_token, hub_cache, is_offline
from hub3d.doctor.sf3d import sf3d_files
from hub3d.doctor.sf3d_weights import find_checkpoint, find_clip, find_dinov2
from hub3d.imaging.background import rembg_model_path
from tests.test_doctor import by_name, facts, read, sf3d_probe

CLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
HUB = {"kind": "hub", "repo": "facebook/dinov2-large", "found": None}
CLIP = {"kind": "hf", "repo": CLIP_REPO, "files": ["open_clip_pytorch_model.bin"], "found": None}
REDUCED = json.loads(read("sf3d-probe-weights-reduced.json"))
DINO_DIR = {"kind": "folder", "path": "/home/jovyan/sf3d-model/dinov2", "lacks": []}


def files(**over: Any) -> dict[str, Any]:
    base = {"checkpoint": "/w", "source": "HUB3D_SF3D_CHECKPOINT", "hf_cache": "/h/hub",
            "transformers_cache": "/h/hub", "offline": True, "token": False}
    return {**base, **over}


def weights(*, probe: dict[str, Any] | None = None, **over: Any) -> dict[str, Any]:
    """The rows for SF3D's files, from the recorded cu118 facts with `over` applied."""
    got = by_name(rows_from_facts(facts(sf3d=probe or sf3d_probe(), **over)))
    return {k: v for k, v in got.items() if k in ("SF3D weights", "DINOv2 / CLIP")}


def test_the_env_that_served_sf3d_on_an_h200_has_no_fail() -> None:
    """Python 3.12, offline, a config naming a local DINOv2 folder and no CLIP tag."""
    probe = sf3d_probe(python="3.12.3", weights=REDUCED)
    rows = rows_from_facts(facts(sf3d=probe, sf3d_deps={"dinov2": DINO_DIR,
                                                        "clip": REDUCED["clip"]}))
    assert [r.name for r in rows if r.status == "fail"] == []
    row = by_name(rows)["DINOv2 / CLIP"]
    assert (row.status, row.found) == ("ok", "DINOv2: folder /home/jovyan/sf3d-model/dinov2 "
                                       "present; CLIP ViT-S-32-alt: no pretrained tag, nothing "
                                       "to fetch")


def test_published_config_cached_is_ok() -> None:
    row = weights()["DINOv2 / CLIP"]
    assert row.status == "ok"
    assert row.found == ("DINOv2: facebook/dinov2-large cached in /h/hub; CLIP ViT-B-32/"
                         f"laion2b_s34b_b79k ({CLIP_REPO}): cached in /h/hub")


def test_offline_and_not_cached_fails_with_the_fetch() -> None:
    row = weights(sf3d_deps={"dinov2": HUB, "clip": CLIP})["DINOv2 / CLIP"]
    assert row.status == "fail"
    assert row.found.startswith("DINOv2 facebook/dinov2-large: not in /h/hub and downloads are "
                                "off (HF_HUB_OFFLINE)")
    assert f"({CLIP_REPO}): not in /h/hub and downloads are off" in row.found
    assert row.fix.count("hub3d fetch-weights sf3d") == 1  # one fix for both
    assert "offline.env" in row.fix and "unset HF_HUB_OFFLINE" in row.fix


def test_online_and_not_cached_downloads_at_the_first_load() -> None:
    row = weights(sf3d_files=files(offline=False),
                  sf3d_deps={"dinov2": HUB, "clip": CLIP})["DINOv2 / CLIP"]
    assert row.status == "ok"
    assert row.found == ("DINOv2 facebook/dinov2-large: not in /h/hub; the first load "
                         "downloads it; CLIP ViT-B-32/laion2b_s34b_b79k "
                         f"({CLIP_REPO}): not in /h/hub; the first load downloads it")


def test_a_missing_dinov2_folder_fails() -> None:
    gone = {**DINO_DIR, "lacks": ["the folder"]}
    row = weights(probe=sf3d_probe(weights=REDUCED),
                  sf3d_deps={"dinov2": gone, "clip": REDUCED["clip"]})["DINOv2 / CLIP"]
    assert row.status == "fail"
    assert row.found.startswith("DINOv2: folder /home/jovyan/sf3d-model/dinov2 missing (the "
                                "folder)")
    assert "image_tokenizer.pretrained_model_name_or_path" in row.fix


def test_a_clip_tag_open_clip_does_not_know_fails() -> None:
    err = ("open_clip 2.24.0 has no pretrained tag 'laion2b' for ViT-B-32, and no file of that "
           "name (its tags: openai, laion2b_s34b_b79k)")
    probe = sf3d_probe(weights={**REDUCED, "clip_model": "ViT-B-32", "clip_pretrain": "laion2b"})
    row = weights(probe=probe, sf3d_deps={"dinov2": DINO_DIR,
                                          "clip": {"kind": "error", "error": err}})["DINOv2 / CLIP"]
    assert row.status == "fail" and f"CLIP ViT-B-32/laion2b: {err}" in row.found
    assert "image_estimator.pretrain" in row.fix


def test_a_clip_url_offline_warns_that_the_flag_does_not_stop_it() -> None:
    url = {"kind": "url", "url": "https://example.org/clip/ViT-B-32.pt",
           "path": "/home/u/.cache/clip/ViT-B-32.pt", "found": None}
    probe = sf3d_probe(weights={**REDUCED, "clip_model": "ViT-B-32", "clip_pretrain": "openai"})
    row = weights(probe=probe, sf3d_deps={"dinov2": DINO_DIR, "clip": url})["DINOv2 / CLIP"]
    assert row.status == "warn" and "HF_HUB_OFFLINE does not stop it" in row.found
    assert "/home/u/.cache/clip/ViT-B-32.pt" in row.fix


def test_a_config_that_does_not_parse_fails() -> None:
    err = "ValidationError: Incompatible value 'None' for field of type 'str'"
    row = weights(probe=sf3d_probe(weights={"error": err}))["DINOv2 / CLIP"]
    assert row.status == "fail" and err in row.found and "config.yaml" in row.fix


def test_hub_checkpoint_rows() -> None:
    hub = {"kind": "hub", "repo": "stabilityai/stable-fast-3d", "config": None, "found": None}
    source = files(checkpoint="stabilityai/stable-fast-3d", source="the default")
    offline = weights(sf3d_checkpoint=hub, sf3d_files=source)["SF3D weights"]
    assert offline.status == "fail" and "downloads are off" in offline.found
    gated = weights(sf3d_checkpoint=hub, sf3d_files={**source, "offline": False})["SF3D weights"]
    assert gated.status == "fail" and gated.found == (
        "stabilityai/stable-fast-3d (the default): not in /h/hub; the first load downloads it, "
        "but the repo is gated and no token is set")
    assert "https://huggingface.co/stabilityai/stable-fast-3d" in gated.fix
    assert "HF_TOKEN" in gated.fix
    token = weights(sf3d_checkpoint=hub, sf3d_files={**source, "offline": False, "token": True})
    assert token["SF3D weights"].status == "warn"  # its licence may not be accepted yet
    cached = weights(sf3d_checkpoint={**hub, "found": f"{hub}/model.safetensors"},
                     sf3d_files=source)["SF3D weights"]
    assert cached.status == "ok" and cached.found.endswith("cached in /h/hub")


def test_a_broken_checkpoint_folder_fails_with_the_backends_message() -> None:
    msg = "SF3D checkpoint folder /w lacks model.safetensors. Download them with …"
    row = weights(sf3d_checkpoint={"kind": "folder", "path": "/w", "error": msg})["SF3D weights"]
    assert row.status == "fail" and row.found == msg and "fetch-weights sf3d" in row.fix


def test_without_sf3d_code_the_files_only_warn() -> None:
    """SF3D is optional: in an env without it, its missing files do not fail doctor."""
    hub = {"kind": "hub", "repo": "stabilityai/stable-fast-3d", "config": None, "found": None}
    got = weights(probe={"python": "3.12.3", "torch_error": "No module named 'torch'"},
                  sf3d_checkpoint=hub)
    assert got["SF3D weights"].status == "warn" and "DINOv2 / CLIP" not in got


# -- the look-ups, on disk ----------------------------------------------------------------

def hub_layout(cache: Path, repo: str, names: list[str], commit: str = "0123abc") -> Path:
    """A repo in a Hugging Face cache as hf_hub_download leaves it (refs/main → snapshot)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in names:
        (snap / name).write_bytes(b"x")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    return snap


def test_cached_file_follows_refs_main(tmp_path: Path) -> None:
    snap = hub_layout(tmp_path, CLIP_REPO, ["open_clip_pytorch_model.bin"])
    assert cached_file(tmp_path, CLIP_REPO, "open_clip_pytorch_model.bin") == \
        snap / "open_clip_pytorch_model.bin"
    assert cached_file(tmp_path, CLIP_REPO, "other.bin") is None
    (snap.parent.parent / "refs" / "main").write_text("another")  # main moved on
    assert cached_file(tmp_path, CLIP_REPO, "open_clip_pytorch_model.bin") is None


def test_find_dinov2_folder_and_hub(tmp_path: Path) -> None:
    folder = tmp_path / "dinov2"
    folder.mkdir()
    assert find_dinov2(str(folder), tmp_path)["lacks"] == [
        "config.json", "model.safetensors or pytorch_model.bin"]
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x")
    assert find_dinov2(str(folder), tmp_path) == {"kind": "folder", "path": str(folder),
                                                  "lacks": []}
    assert find_dinov2(str(tmp_path / "gone"), tmp_path)["lacks"] == ["the folder"]
    assert find_dinov2("facebook/dinov2-large", tmp_path)["found"] is None
    snap = hub_layout(tmp_path, "facebook/dinov2-large", ["config.json", "pytorch_model.bin"])
    assert find_dinov2("facebook/dinov2-large", tmp_path)["found"] == str(
        snap / "pytorch_model.bin")


def test_find_clip_hf_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hf = {"kind": "hf", "repo": CLIP_REPO, "files": ["open_clip_pytorch_model.bin"]}
    assert find_clip(hf, tmp_path)["found"] is None
    snap = hub_layout(tmp_path, CLIP_REPO, ["open_clip_pytorch_model.bin"])
    assert find_clip(hf, tmp_path)["found"] == str(snap / "open_clip_pytorch_model.bin")
    monkeypatch.setenv("HOME", str(tmp_path))  # open_clip saves URL downloads in ~/.cache/clip
    url = find_clip({"kind": "url", "url": "https://example.org/a/ViT-B-32.pt"}, tmp_path)
    assert url["path"] == str(tmp_path / ".cache" / "clip" / "ViT-B-32.pt") and not url["found"]


def test_find_checkpoint_folder_hub_and_broken(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.yaml").write_text("cond_image_size: 512\n")
    (ckpt / "model.safetensors").write_bytes(b"x" * 64)
    assert find_checkpoint(str(ckpt), tmp_path) == {
        "kind": "folder", "path": str(ckpt), "config": str(ckpt / "config.yaml")}
    hub = find_checkpoint("stabilityai/stable-fast-3d", tmp_path)
    assert (hub["kind"], hub["config"], hub["found"]) == ("hub", None, None)
    snap = hub_layout(tmp_path, "stabilityai/stable-fast-3d", ["config.yaml", "model.safetensors"])
    hub = find_checkpoint("stabilityai/stable-fast-3d", tmp_path)
    assert hub["config"] == str(snap / "config.yaml")  # what the probe then reads
    (ckpt / "model.safetensors").unlink()
    broken = find_checkpoint(str(ckpt), tmp_path)
    assert "lacks model.safetensors" in broken["error"]
    assert broken["config"] == str(ckpt / "config.yaml")  # its classes are still checked


def test_sf3d_files_takes_the_setting_then_the_fetched_folder_then_the_hub_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HUB3D_SF3D_CHECKPOINT", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
                "TRANSFORMERS_CACHE", "PYTORCH_TRANSFORMERS_CACHE",
                "PYTORCH_PRETRAINED_BERT_CACHE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    got = sf3d_files(tmp_path / "data")
    assert (got.checkpoint, got.source) == ("stabilityai/stable-fast-3d", "the default")
    assert got.hf_cache == got.transformers_cache == tmp_path / "hf" / "hub"
    assert got.u2net == tmp_path / "u2net" / "u2net.onnx" == rembg_model_path()  # the server's
    monkeypatch.delenv("U2NET_HOME")
    assert sf3d_files(tmp_path / "data").u2net == rembg_model_path()
    fetched = tmp_path / "data" / "weights" / "sf3d"
    fetched.mkdir(parents=True)
    (fetched / "config.yaml").write_text("{}\n")
    assert sf3d_files(tmp_path / "data").checkpoint == str(fetched)
    monkeypatch.setenv("HUB3D_SF3D_CHECKPOINT", "/models/sf3d")
    monkeypatch.setenv("TRANSFORMERS_CACHE", str(tmp_path / "tf"))  # transformers' own, still read
    got = sf3d_files(tmp_path / "data")
    assert (got.checkpoint, got.source) == ("/models/sf3d", "HUB3D_SF3D_CHECKPOINT")
    assert got.transformers_cache == tmp_path / "tf" and got.hf_cache == tmp_path / "hf" / "hub"


def test_cache_settings_read_as_huggingface_hub_reads_them(tmp_path: Path) -> None:
    assert hub_cache({"HF_HUB_CACHE": "/a", "HF_HOME": "/b"}) == Path("/a")
    assert hub_cache({"HF_HOME": "/b"}) == Path("/b/hub")
    assert hub_cache({"XDG_CACHE_HOME": "/x"}) == Path("/x/huggingface/hub")
    assert is_offline({"HF_HUB_OFFLINE": "1"}) and is_offline({"TRANSFORMERS_OFFLINE": "yes"})
    assert not is_offline({"HF_HUB_OFFLINE": "0"}) and not is_offline({})
    assert has_token({"HF_TOKEN": "hf_x"}) and not has_token({"HF_HOME": str(tmp_path)})
    (tmp_path / "token").write_text("hf_saved\n")  # what `huggingface-cli login` writes
    assert has_token({"HF_HOME": str(tmp_path)})


def test_gathered_for_real_with_this_python(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The section's gather, as doctor runs it, on a checkpoint folder: no SF3D code here, so the
    probe reports that and the weights row stands alone."""
    from hub3d.doctor import sf3d

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.yaml").write_text("cond_image_size: 512\n")
    (ckpt / "model.safetensors").write_bytes(b"x" * 64)
    monkeypatch.setenv("HUB3D_SF3D_CHECKPOINT", str(ckpt))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    f = sf3d.gather(sys.executable, tmp_path / "data")
    assert f["sf3d_checkpoint"]["config"] == str(ckpt / "config.yaml")
    assert f["sf3d_files"]["hf_cache"] == str(tmp_path / "hf" / "hub")
    row = by_name(sf3d.rows(f))["SF3D weights"]
    assert (row.status, row.found) == ("ok", f"{ckpt} (HUB3D_SF3D_CHECKPOINT)")
