"""benchmarks/sf3d_gpu.py rehearsed on the CPU, so the GPU run cannot rot between the rare
times a GPU is at hand: the same code path (upstream direct, hub3d single jobs, batches on a
jobs-per-worker and a two-worker configuration, memory, checks, tables) on the reduced model.

Cost: 85–97 s of rehearsal, 93 s for this file, on the shared 2-core VM (the env is the tier's
`sf3d_env`, built once for the tier).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trimesh

from benchmarks.sf3d_direct import glb_vertices
from benchmarks.sf3d_gpu_report import checks
from tests.gltf_check import assert_valid_glb
from tests.upstream.conftest import timings
from tests.upstream.sf3d_data import REPO

pytestmark = pytest.mark.upstream

BATCH = 4
CONFIGS = {"1 worker(s) x 2 job(s)": (1, 2), "2 worker(s) x 1 job(s)": (2, 1)}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sf3d-gpu-bench")


@pytest.fixture(scope="module")
def rehearsal(sf3d_env: Path, work: Path) -> tuple[dict, str]:
    tmp = work
    out = tmp / "sf3d_gpu.json"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "benchmarks.sf3d_gpu", "--env",
                          str(sf3d_env.parent.parent), "--cpu", "--reduced", "--reps", "1",
                          "--batch", str(BATCH), "--texture", "512", "--workers", "1,2",
                          "--jobs", "1,2", "--work", str(tmp / "work"), "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=1200)
    timings["benchmarks.sf3d_gpu --cpu --reduced (rehearsal)"] = time.monotonic() - started
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return json.loads(out.read_text()), run.stdout


def _batch_is_sound(batch: dict, jobs: int) -> None:
    assert batch["jobs"] == batch["completed"] == jobs, batch
    assert batch["jobs_per_s"] > 0 and batch["wall_s"] > 0
    assert len(batch["vertices"]) == jobs and min(batch["vertices"]) > 500
    assert batch["stages"]["sf3d.run_image"] > 0 and batch["stages"]["total"] > 0


def test_every_section_is_there_with_sane_values(rehearsal: tuple[dict, str]) -> None:
    report, _ = rehearsal
    assert report["errors"] == [] and report["skipped"] == []
    assert report["machine"]["device"] == "cpu"
    direct = report["direct"]
    assert direct["load_s"] > 0 and 0 < direct["warm_p50_s"] < 120
    assert direct["first"]["vertices"] == direct["first"]["mesh_vertices"] > 500
    hub = report["hub3d"]
    worker = hub["workers"][0]
    assert worker["load_s"] > 0 and worker["warmup_s"] > 0  # --warmup on with --cpu
    assert hub["ready_s"] > worker["load_s"]
    first = hub["first"]
    assert first["glb_vertices"] == first["vertices"] > 500 and first["e2e_s"] > 0
    assert first["model_timings"]["run_image"] > 0 and len(hub["warm"]) == 1
    _batch_is_sound(hub["batch"], BATCH)
    assert hub["memory"]["source"] == "worker RSS (psutil)"
    assert hub["memory"]["peak_gb"] > 0.2 and hub["memory"]["samples"] > 0
    seen = {r["config"]: r for r in report["throughput"]}
    assert set(seen) == set(CONFIGS)
    for name, (workers, jobs) in CONFIGS.items():
        row = seen[name]
        assert (row["max_concurrent"], row["jobs_per_worker"]) == (workers, jobs)
        assert len(row["workers"]) == workers and row["priming_jobs"] == workers * jobs
        assert all(w["capacity"] == jobs and w["load_s"] > 0 for w in row["workers"])
        _batch_is_sound(row["batch"], BATCH)
        assert len(row["memory"]["per_worker_peak_gb"]) == workers
    assert report["phases"]["total"] > 0
    assert any(k.startswith("random checkpoint (reduced)") for k in report["phases"])


def test_the_glbs_it_counted_pass_the_validator(rehearsal: tuple[dict, str], work: Path) -> None:
    report, _ = rehearsal
    counted = set(report["hub3d"]["batch"]["vertices"])
    results = sorted((work / "work").glob("serve-*/data/jobs/*/result.glb"))
    # every configuration's jobs: the single ones, the priming and the batches
    assert len(results) == 2 + 4 + (2 + 4) + (2 + 4), results
    for glb in results[::4]:
        info = assert_valid_glb(glb.read_bytes())["info"]
        assert info["totalVertexCount"] == glb_vertices(glb.read_bytes()) in counted


def test_the_targets_are_judged_from_the_figures(rehearsal: tuple[dict, str]) -> None:
    report, stdout = rehearsal
    got = {c["target"]: c for c in report["checks"]}
    assert set(got) == {"throughput", "memory", "first_job", "warm_e2e"}
    for check in got.values():
        assert check["figure"] > 0 and check["met"] in (True, False), check
        assert check["text"] in stdout
    best = max([report["hub3d"], *report["throughput"]], key=lambda r: r["batch"]["jobs_per_s"])
    assert got["throughput"]["figure"] == pytest.approx(
        best["batch"]["jobs_per_s"] * report["direct"]["warm_p50_s"])
    assert got["warm_e2e"]["figure"] == pytest.approx(
        report["hub3d"]["warm_p50_s"] / report["direct"]["warm_p50_s"])


def test_the_tables_are_printed_and_saved(rehearsal: tuple[dict, str]) -> None:
    report, stdout = rehearsal
    assert report["tables"] in stdout
    for heading in ("CPU REHEARSAL", "Single jobs (s)", "Throughput, 4 jobs submitted at once",
                    "upstream run_image (direct)", "hub3d /generate/sync", *CONFIGS,
                    "Stages", "Targets", "Phases (s)"):
        assert heading in report["tables"], heading


def test_a_partial_report_says_what_was_not_measured() -> None:
    report = {"direct": None, "hub3d": None, "throughput": []}
    assert [c["met"] for c in checks(report)] == [None] * 4
    assert all(c["text"].startswith("[not measured]") for c in checks(report))


def test_glb_vertices_counts_a_real_glb_and_refuses_a_broken_one() -> None:
    box = trimesh.creation.box()
    glb = trimesh.Scene(box).export(file_type="glb")
    assert glb_vertices(glb) == len(box.vertices)
    for broken in (glb[:-8], b"glTF" + glb[4:12], b"PNG..." + glb[6:]):
        with pytest.raises(ValueError):
            glb_vertices(broken)
