"""`hub3d fetch-weights` against a small Hugging Face-compatible server on 127.0.0.1.

The server speaks the part of the Hub's HTTP API that huggingface_hub's downloads use (file
resolve with commit/etag headers, revision info), or answers every request 401/403 like a gated
repo whose licence was not accepted. The command runs as a real subprocess.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import REPO

pytest.importorskip("huggingface_hub")

COMMIT = "a" * 40
REPOS: dict[str, dict[str, bytes]] = {
    "stabilityai/stable-fast-3d": {"config.yaml": b"cond_image_size: 512\n",
                                   "model.safetensors": b"\x08\x00" + b"0" * 62},
    "facebook/dinov2-large": {"config.json": b"{}", "model.safetensors": b"w" * 64,
                              "preprocessor_config.json": b"{}"},
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": {"open_clip_pytorch_model.bin": b"c" * 64},
    "facebook/sam-3d-objects": {
        "checkpoints/pipeline.yaml": b"_target_: sam3d_objects.pipeline.X\n",
        # as upstream's configs do: the embedder names its model, repo_or_dir is the default
        "checkpoints/ss_generator.yaml": (
            b"module:\n  condition_embedder:\n    embedder_list:\n    - - _target_: "
            b"sam3d_objects.model.backbone.dit.embedder.dino.Dino\n"
            b"        dino_model: dinov2_vitg14_reg\n        input_size: 518\n"),
        "checkpoints/ss_generator.ckpt": b"s" * 64, "README.md": b"not wanted"},
    "Ruicheng/moge-vitl": {"model.pt": b"m" * 64},
}


class FakeHub(BaseHTTPRequestHandler):
    refuse: int | None = None

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, head: bool) -> None:
        path = self.path.split("?")[0]
        if self.refuse:
            code = "GatedRepo" if self.refuse == 403 else "RepoNotFound"
            self._send(self.refuse, b'{"error":"refused"}', {"X-Error-Code": code}, head)
        elif path == "/u2net.onnx":
            self._send(200, b"onnx" * 16, {}, head)
        elif path.startswith("/api/models/") and "/tree/" in path:
            files = REPOS.get(path[len("/api/models/"):].split("/tree/")[0], {})
            tree = [{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                    for f, b in files.items()]
            self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"},
                       head)
        elif path.startswith("/api/models/"):
            repo = path[len("/api/models/"):].split("/revision/")[0]
            files = REPOS.get(repo, {})
            info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
            self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"},
                       head)
        elif "/resolve/" in path:
            repo, _, rest = path.lstrip("/").partition("/resolve/")
            name = rest.partition("/")[2]
            body = REPOS.get(repo, {}).get(name)
            if body is None:
                self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                return
            etag = hashlib.sha256(body).hexdigest()
            self._send(200, body, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'}, head)
        else:
            self._send(404, b"", {}, head)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)


@pytest.fixture
def hub() -> Iterator[tuple[str, type[FakeHub]]]:
    handler = type("Hub", (FakeHub,), {"refuse": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def fetch(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": url, "HUB3D_U2NET_URL": f"{url}/u2net.onnx",
           "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_XET": "1", "PYTHONPATH": str(REPO),
           "HOME": str(Path(args[-1]).parent)}
    return subprocess.run([sys.executable, "-m", "hub3d", "fetch-weights", *args],
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def test_sf3d_downloads_everything_and_writes_offline_env(hub: tuple[str, type[FakeHub]],
                                                          tmp_path: Path) -> None:
    url, _ = hub
    data = tmp_path / "data"
    done = fetch(url, "sf3d", "--token", "hf_test", "--dir", str(data))
    assert done.returncode == 0, done.stderr
    weights = data / "weights"
    assert (weights / "sf3d" / "model.safetensors").read_bytes() == \
        REPOS["stabilityai/stable-fast-3d"]["model.safetensors"]
    assert list((weights / "hf" / "hub").glob("models--facebook--dinov2-large/snapshots/*/"
                                               "model.safetensors"))
    assert list((weights / "hf" / "hub").glob("models--laion--CLIP-*/snapshots/*/*.bin"))
    assert (weights / "u2net" / "u2net.onnx").stat().st_size == 64
    env = dict(line.split("=", 1) for line in (data / "offline.env").read_text().splitlines()
               if not line.startswith("#"))
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["HF_HOME"] == str(weights / "hf")
    assert "TORCH_HOME" not in env  # SF3D's load reads no torch.hub cache
    assert env["U2NET_HOME"] == str(weights / "u2net")
    assert env["HUB3D_SF3D_CHECKPOINT"] == str(weights / "sf3d")
    assert f"--data-dir {data}" in done.stdout


def test_sam3d_checkpoints_layout_and_env_merge(hub: tuple[str, type[FakeHub]],
                                                tmp_path: Path) -> None:
    url, _ = hub
    data = tmp_path / "data"
    data.mkdir()
    (data / "offline.env").write_text("HUB3D_SF3D_CHECKPOINT=/kept\n")
    done = fetch(url, "sam3d", "--dir", str(data))
    assert done.returncode == 0, done.stderr
    checkpoints = data / "weights" / "sam3d" / "checkpoints"
    assert (checkpoints / "pipeline.yaml").is_file()
    assert not (data / "weights" / "sam3d" / "README.md").exists()  # only checkpoints/*
    text = (data / "offline.env").read_text()
    assert "HUB3D_SF3D_CHECKPOINT=/kept" in text
    assert f"HUB3D_SAM3D_CHECKPOINTS={checkpoints}" in text
    # here torch is absent: the exact command to run in the SAM-3D env, for the configured model
    assert "torch.hub.load('facebookresearch/dinov2', 'dinov2_vitg14_reg'" in done.stdout
    # the SAM-3D env has no rembg: no u2net download, no U2NET_HOME
    assert "u2net" not in done.stdout and not (data / "weights" / "u2net").exists()
    assert "U2NET_HOME" not in text


@pytest.mark.parametrize("status", [401, 403])
def test_gated_refusal_says_accept_the_licence(hub: tuple[str, type[FakeHub]], tmp_path: Path,
                                               status: int) -> None:
    url, handler = hub
    handler.refuse = status
    done = fetch(url, "sf3d", "--dir", str(tmp_path / "data"))
    assert done.returncode == 1
    assert f"HTTP {status}" in done.stderr
    assert "accept the licence at https://huggingface.co/stabilityai/stable-fast-3d" in done.stderr
    assert "--token" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "offline.env").exists()
