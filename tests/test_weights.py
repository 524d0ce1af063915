"""`hub3d fetch-weights` against the Hugging Face stand-in (tests/hf_hub.py), as a real CLI.

Each run goes through one of the two huggingface_hub clients hub3d meets: this venv's (2.x) and
0.23.4, the version SF3D's pins put in the env the quickstart runs fetch-weights from. What it
fetched is then read back offline, by both clients, with the stand-in stopped.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub3d.models.sf3d import WEIGHTS as SF3D
from tests.hf_hub import HubStandIn
from tests.servers import REPO

pytest.importorskip("huggingface_hub")

OLD_CLIENT = "0.23.4"
REUSE_SF3D_ENV = os.environ.get("HUB3D_TEST_SF3D_ENV")  # read before the tests clean the env
TOKEN = "hf_accepted"  # the account that accepted every licence
OTHER = "hf_not_accepted"  # a real account that did not
SAM3D_CONFIG = (b"module:\n  condition_embedder:\n    embedder_list:\n    - - _target_: "
                b"sam3d_objects.model.backbone.dit.embedder.dino.Dino\n"
                b"        dino_model: dinov2_vitg14_reg\n        input_size: 518\n")
REPOS: dict[str, dict[str, bytes]] = {
    "stabilityai/stable-fast-3d": {"config.yaml": b"cond_image_size: 512\n",
                                   "model.safetensors": b"\x08\x00" + b"0" * 62,
                                   "README.md": b"not in the plan"},
    "facebook/dinov2-large": {"config.json": b"{}", "model.safetensors": b"w" * 64,
                              "preprocessor_config.json": b"{}"},
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": {"open_clip_pytorch_model.bin": b"c" * 64},
    "facebook/sam-3d-objects": {
        "checkpoints/pipeline.yaml": b"_target_: sam3d_objects.pipeline.X\n",
        # as upstream's configs do: the embedder names its model, repo_or_dir is the default
        "checkpoints/ss_generator.yaml": SAM3D_CONFIG,
        "checkpoints/ss_generator.ckpt": b"s" * 64, "README.md": b"not wanted"},
    "Ruicheng/moge-vitl": {"model.pt": b"m" * 64},
}
GATED = ("stabilityai/stable-fast-3d", "facebook/sam-3d-objects")
U2NET = b"u2net stand-in: the stand-in serves these bytes, not the published model" * 4


@pytest.fixture(scope="session")
def old_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python whose huggingface_hub is 0.23.4: the SF3D env's when HUB3D_TEST_SF3D_ENV names
    one, else a small venv whose other packages (hub3d's deps) fall through to this venv's."""
    if REUSE_SF3D_ENV:
        return Path(REUSE_SF3D_ENV) / "bin" / "python"
    venv = tmp_path_factory.mktemp("hf-0.23")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q",
                          f"huggingface_hub=={OLD_CLIENT}"], capture_output=True, text=True,
                         timeout=300)
    if pip.returncode != 0:
        pytest.fail(f"pip install huggingface_hub=={OLD_CLIENT} failed:\n{pip.stderr[-2000:]}")
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], capture_output=True, text=True, check=True)
    # after its own site-packages: the pinned client wins, the rest comes from this venv
    (Path(own.stdout.strip()) / "zz_test_venv.pth").write_text(sysconfig.get_paths()["purelib"])
    return python


@pytest.fixture(params=["2.x", OLD_CLIENT])
def client(request: pytest.FixtureRequest) -> Path:
    """The Python that runs the command: this venv's client, or 0.23.4."""
    if request.param == OLD_CLIENT:
        return Path(request.getfixturevalue("old_python"))
    return Path(sys.executable)


def _folders(root: Path) -> dict[str, Path]:
    for repo_id, files in REPOS.items():
        for name, body in files.items():
            path = root / repo_id / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
    return {repo_id: root / repo_id for repo_id in REPOS}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubStandIn]:
    (tmp_path / "u2net.onnx").write_bytes(U2NET)
    with HubStandIn(_folders(tmp_path / "repos"), gated=GATED, tokens={TOKEN: GATED, OTHER: ()},
                    files={"u2net.onnx": tmp_path / "u2net.onnx"}) as standin:
        yield standin


def _env(hub: HubStandIn, home: Path, **extra: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO),
            "HF_ENDPOINT": hub.url, "HUB3D_U2NET_URL": hub.file_url("u2net.onnx"), **extra}


def fetch(python: Path, hub: HubStandIn, data: Path, *args: str,
          **env: str) -> subprocess.CompletedProcess[str]:
    # HF_HUB_OFFLINE=1 as offline.env leaves it in a shell: the command must go online anyway
    return subprocess.run([str(python), "-m", "hub3d", "fetch-weights", *args, "--dir",
                           str(data)], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env=_env(hub, data.parent / "home", HF_HUB_OFFLINE="1", **env))


def _client_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import huggingface_hub as h; print(h.__version__)"],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin"})
    return out.stdout.strip()


OFFLINE_READ = """
import json, sys
from huggingface_hub import hf_hub_download
print(json.dumps({f"{r}/{n}": hf_hub_download(r, n) for r, n in json.loads(sys.argv[1])}))
"""


def read_offline(python: Path, hub: HubStandIn, data: Path) -> dict[str, Path]:
    """hf_hub_download of every cached file of the plan, offline, as a fetched kernel would."""
    wanted = [(item.repo_id, name) for item in SF3D.plan if not item.into
              for name in item.files]
    env = _env(hub, data.parent / "home-offline", HF_HUB_OFFLINE="1",
               HF_HOME=str(data / "weights" / "hf"))
    out = subprocess.run([str(python), "-c", OFFLINE_READ, json.dumps(wanted)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return {k: Path(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def test_sf3d_fetches_the_plan_and_both_clients_read_it_offline(
        client: Path, old_python: Path, hub: HubStandIn, tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = fetch(client, hub, data, "sf3d", HF_TOKEN=TOKEN)
    assert done.returncode == 0, done.stderr
    weights = data / "weights"
    for item in SF3D.plan:
        for name in item.files:
            if item.into:
                got = weights / item.into / name
            else:
                folder = weights / "hf" / "hub" / f"models--{item.repo_id.replace('/', '--')}"
                ref = (folder / "refs" / "main").read_text()
                assert ref == hub.commit(item.repo_id)
                got = folder / "snapshots" / ref / name
            assert got.read_bytes() == REPOS[item.repo_id][name], got
    assert not (weights / "sf3d" / "README.md").exists()  # the plan's files only
    assert (weights / "u2net" / "u2net.onnx").read_bytes() == U2NET
    env = dict(line.split("=", 1) for line in (data / "offline.env").read_text().splitlines()
               if not line.startswith("#"))
    assert env == {"HF_HUB_OFFLINE": "1", "HF_HOME": str(weights / "hf"),
                   "U2NET_HOME": str(weights / "u2net"),
                   "HUB3D_SF3D_CHECKPOINT": str(weights / "sf3d")}  # SF3D reads no torch.hub
    assert "set -a" in done.stdout
    # plain HTTP: the hub's own paths and the CDN's signed blobs, nothing Xet
    cdn = {(s.method, s.path.split("/")[1]) for s in hub.seen if s.server == "cdn"}
    assert cdn == {("GET", "blobs"), ("GET", "files")}, cdn
    assert not [s for s in hub.seen if "xet" in s.path.lower()]
    assert all(s.token == TOKEN for s in hub.seen if "/resolve/" in s.path)
    assert all(s.token is None for s in hub.seen if s.server == "cdn")  # auth stays on the hub

    hub.stop()
    for reader in (Path(sys.executable), old_python):
        paths = read_offline(reader, hub, data)
        for key, path in paths.items():
            repo_id, name = key.rsplit("/", 1)
            assert path.read_bytes() == REPOS[repo_id][name], (reader, key)
            assert path.is_relative_to(weights / "hf" / "hub")
    assert [s for s in hub.seen if not s.answered] == []


@pytest.mark.parametrize(("token", "said"), [
    (None, "Hugging Face refused stabilityai/stable-fast-3d (HTTP 401): accept the licence at "
           "https://huggingface.co/stabilityai/stable-fast-3d with your account, then pass a "
           "token: `hub3d fetch-weights sf3d --token hf_…` (or set HF_TOKEN)."),
    (OTHER, "Hugging Face refused stabilityai/stable-fast-3d (HTTP 403): accept the licence at "
            "https://huggingface.co/stabilityai/stable-fast-3d with your account, then pass a "
            "token: `hub3d fetch-weights sf3d --token hf_…` (or set HF_TOKEN)."),
    ("hf_typo", "Hugging Face does not know the token (HTTP 401: Invalid credentials in "
                "Authorization header): copy a read token from "
                "https://huggingface.co/settings/tokens, then `hub3d fetch-weights sf3d "
                "--token hf_…` (or set HF_TOKEN)."),
], ids=["no-token", "licence-not-accepted", "unknown-token"])
def test_the_gate_refuses_with_what_to_do(client: Path, hub: HubStandIn, tmp_path: Path,
                                          token: str | None, said: str) -> None:
    data = tmp_path / "data"
    done = fetch(client, hub, data, "sf3d", **({"HF_TOKEN": token} if token else {}))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == f"hub3d fetch-weights: error: {said}\n"
    assert not (data / "offline.env").exists()
    assert not (data / "weights" / "sf3d" / "model.safetensors").exists()
    refused = [s for s in hub.seen if "/resolve/" in s.path]
    assert refused and all(s.token == token for s in refused)


def test_sam3d_snapshot_of_checkpoints_and_env_merge(client: Path, hub: HubStandIn,
                                                    tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "offline.env").write_text("HUB3D_SF3D_CHECKPOINT=/kept\n")
    # the python that would cache DINOv2 has no torch (this venv has none)
    done = fetch(client, hub, data, "sam3d", "--token", TOKEN,
                 HUB3D_SAM3D_PYTHON=sys.executable)
    assert done.returncode == 1, done.stderr
    checkpoints = data / "weights" / "sam3d" / "checkpoints"
    got = {p.relative_to(checkpoints).as_posix(): p.read_bytes()
           for p in checkpoints.iterdir() if p.is_file()}
    assert got == {k.split("/", 1)[1]: v for k, v in REPOS["facebook/sam-3d-objects"].items()
                   if k.startswith("checkpoints/")}
    assert not (data / "weights" / "sam3d" / "README.md").exists()  # only checkpoints/*
    text = (data / "offline.env").read_text()
    assert "HUB3D_SF3D_CHECKPOINT=/kept" in text
    assert f"HUB3D_SAM3D_CHECKPOINTS={checkpoints}" in text
    # the SAM-3D env has no rembg: no u2net download, no U2NET_HOME
    assert "u2net" not in done.stdout and not (data / "weights" / "u2net").exists()
    assert "U2NET_HOME" not in text
    # 2.x lists the tree, 0.23 reads the siblings of the repo's info
    listed = [s.path for s in hub.seen if s.path.startswith("/api/models/facebook/sam-3d")]
    assert listed and all(s.token == TOKEN for s in hub.seen if "/resolve/" in s.path)
    # DINOv2: what it says is true (that python has no torch) and says what to do
    torch_home = data / "weights" / "torch"
    assert (f"DINOv2 (facebookresearch/dinov2:dinov2_vitg14_reg) was NOT cached: "
            f"{sys.executable} (HUB3D_SAM3D_PYTHON) has no torch. Point HUB3D_SAM3D_PYTHON at "
            "the SAM-3D env's python (kernel_setup/setup_sam3d_env.sh makes it) and run "
            "`hub3d fetch-weights sam3d` again, or run with that python: "
            f"TORCH_HOME={torch_home} <its python> -c \"import torch; torch.hub.load("
            "'facebookresearch/dinov2', 'dinov2_vitg14_reg', verbose=False)\"") in done.stdout
    # the checkpoints are kept and recorded, but the command fails: SAM-3D cannot load offline
    assert "Offline from now on" not in done.stdout
    assert done.stderr.endswith("hub3d fetch-weights: error: NOT complete: DINOv2 (facebook"
                                "research/dinov2:dinov2_vitg14_reg) is missing; sam3d cannot "
                                "load offline until it is cached (see above).\n"), done.stderr


def test_a_broken_download_resumes_with_a_range_request(client: Path, old_python: Path,
                                                        tmp_path: Path) -> None:
    """Each client resumes its own way: 2.x when the connection drops mid-file, 0.23 from the
    blobs/<sha256>.incomplete an earlier run left. Both ask the CDN for the rest only."""
    body = os.urandom(24 << 20)  # 2.x keeps what it read in 10 MB chunks: cut past the first
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "model.safetensors").write_bytes(body)
    with HubStandIn({"org/big": tmp_path / "big"}) as hub:
        sha256 = hub.list_files("org/big")[0].digests()[0]
        if client == old_python:
            blobs = tmp_path / "hf" / "hub" / "models--org--big" / "blobs"
            blobs.mkdir(parents=True)
            (blobs / f"{sha256}.incomplete").write_bytes(body[:1_000_000])
            ranges: list[str | None] = ["bytes=1000000-"]
        else:
            hub.cut_after[sha256] = 16 << 20
            ranges = [None, f"bytes={10 << 20}-"]
        env = _env(hub, tmp_path / "home", HF_HOME=str(tmp_path / "hf"))
        code = "from huggingface_hub import hf_hub_download as d; print(d('org/big', " \
               "'model.safetensors'))"
        out = subprocess.run([str(client), "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        assert Path(out.stdout.strip().splitlines()[-1]).read_bytes() == body
        assert [s.range for s in hub.seen if s.server == "cdn"] == ranges


def test_a_file_of_hundreds_of_mb_streams(tmp_path: Path) -> None:
    """256 MB through the CLI's client: the stand-in's memory does not grow with the file."""
    big = tmp_path / "big" / "model.safetensors"
    big.parent.mkdir()
    with open(big, "wb") as fh:  # sparse: fast to make, every byte still read and sent
        fh.truncate(256 << 20)
    with HubStandIn({"org/big": big.parent}) as hub:
        hub.list_files("org/big")[0].digests()  # hashing streams too; measure the serving
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        env = _env(hub, tmp_path / "home", HF_HOME=str(tmp_path / "hf"))
        code = "from huggingface_hub import hf_hub_download as d; print(d('org/big', " \
               "'model.safetensors'))"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert Path(out.stdout.strip().splitlines()[-1]).stat().st_size == 256 << 20
    assert grown_kb < 64 << 10, f"the stand-in grew by {grown_kb >> 10} MB"


def test_the_clients_are_the_versions_named(client: Path, old_python: Path) -> None:
    version = _client_version(client)
    assert version == OLD_CLIENT if client == old_python else version.startswith("2."), version
