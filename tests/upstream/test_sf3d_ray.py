"""The real SF3D code (the tier's reduced model, the sphere density) served on a Ray cluster: a
head and a second node on this machine, each running the SF3D env's Python, as a lab's GPU
nodes would run the recipe's env. The control plane is this test run's Python."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.gltf_check import assert_valid_glb
from tests.servers import ServerProcess
from tests.upstream.test_sf3d_serve import SPHERE, _disc, _done, _submit

pytestmark = [pytest.mark.upstream, pytest.mark.ray, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster(sf3d_env: Path, sf3d_src: Path, model_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed: pip install -e '.[test]'")
    from importlib.metadata import version

    from tests.ray_cluster import head_and_n1

    # the nodes run the SF3D env's Python: it needs the control plane's very Ray release
    subprocess.run([str(sf3d_env), "-m", "pip", "install", "-q", f"ray=={version('ray')}"],
                   check=True, timeout=900, capture_output=True)
    env = {"HUB3D_SF3D_SRC": str(sf3d_src), "HUB3D_SF3D_CHECKPOINT": str(model_dir),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with head_and_n1(tmp_path_factory.mktemp("ray-sf3d"), env=env,
                     ray=str(sf3d_env.with_name("ray"))) as made:
        yield made


def test_sf3d_jobs_run_on_both_nodes_of_the_cluster(cluster: Any,
                                                    tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", ["--models", SPHERE, "--ray-address",
                                            cluster.address], env=cluster.client_env)
    srv.start(120)
    try:
        jobs = [_submit(srv.url, _disc(), texture_resolution=512) for _ in range(2)]
        done = [_done(srv.url, j) for j in jobs]
        nodes = {j["device"].rpartition("/")[2] for j in done}
        assert len(nodes) == 2, done  # one on each node
        for job in done:
            glb = requests.get(f"{srv.url}/job/{job['job_id']}/download", timeout=30).content
            report = assert_valid_glb(glb)
            assert report["info"]["totalVertexCount"] > 500
    finally:
        srv.stop()
