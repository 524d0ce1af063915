"""The page at / in headless Chromium on loopback: load → interactive, and for inflate jobs
drop → first stage shown → result done → mesh on screen (the viewer's load event).

    python -m benchmarks.page --loads 10 --jobs 6

The viewer library is served from tests/js (npm ci --prefix tests/js). WebGL runs on SwiftShader
(the CPU): the first mesh of a browser includes compiling the viewer's shaders in software,
which a browser with a GPU does in well under a second, so the first job is reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, sample_png, save, table
from benchmarks.hub import hub_server
from tests.browser import chromium_driver, drop_files, wait_for

STEPS = ("first_stage", "completed", "mesh_shown")


def _marks(driver: Any, job_id: str) -> dict[str, float]:
    marks = driver.execute_script("return window.hub3dMarks")
    return {m["name"]: m["t"] for m in marks if m["job"] == job_id}


def page_loads(driver: Any, url: str, n: int) -> list[float]:
    """Navigation start → the form is built and the page takes drops, ms."""
    out = []
    for _ in range(n):
        driver.get("about:blank")
        driver.get(url)
        wait_for(lambda: driver.execute_script("return document.body.dataset.ready") == "app",
                 30, "the page")
        out.append(float(driver.execute_script("return window.hub3dReadyAt")))
    return out


def one_job(driver: Any, png: bytes, i: int) -> dict[str, float]:
    before = len(driver.find_elements("css selector", ".job"))
    drop_files(driver, "drop", [(f"photo{i}.png", png, "image/png")])
    wait_for(lambda: len(driver.find_elements("css selector", ".job[data-job-id]")) > before,
             30, "the job card")
    job_id = driver.execute_script("return document.querySelector('.job').dataset.jobId")
    wait_for(lambda: "mesh_shown" in _marks(driver, job_id), 300, "the mesh on screen")
    m = _marks(driver, job_id)
    return {k: round(m[k] - m["drop"], 1) for k in STEPS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    png = sample_png(args.size)
    with hub_server("--models", "inflate", "--viewer-dir", str(REPO / "tests" / "js")) as hub:
        driver = chromium_driver(Path(tempfile.mkdtemp(prefix="hub3d-bench-chromium-")))
        try:
            loads = page_loads(driver, f"{hub.url}/", args.loads)
            driver.get(f"{hub.url}/")
            wait_for(lambda: driver.execute_script("return document.body.dataset.ready"), 30)
            jobs = []
            for i in range(args.jobs):
                jobs.append(one_job(driver, png, i))
                time.sleep(0.5)
        finally:
            driver.quit()
    rows = [{"what": "page load → interactive", "n": len(loads),
             "median ms": round(statistics.median(loads), 1),
             "min–max ms": f"{min(loads):.0f}–{max(loads):.0f}"}]
    for label, runs in (("first job (cold worker, cold shaders)", jobs[:1]),
                        ("later jobs", jobs[1:])):
        for step in STEPS:
            if not runs:
                continue
            values = [r[step] for r in runs]
            rows.append({"what": f"{label}: drop → {step.replace('_', ' ')}", "n": len(values),
                         "median ms": round(statistics.median(values), 1),
                         "min–max ms": f"{min(values):.0f}–{max(values):.0f}"})
    print(table(rows, ["what", "n", "median ms", "min–max ms"]))
    print("saved", save("page", {"args": vars(args), "loads_ms": loads, "jobs_ms": jobs,
                                 "rows": rows}))


if __name__ == "__main__":
    main()
