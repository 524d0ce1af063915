"""A job's output format: what its backend is asked to write, and the job's own result made
from it when the job asked for another format (a USDZ from the GLB its backend writes)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from hub3d import formats
from hub3d.errors import ErrorCode, Hub3DError
from hub3d.jobs.ends import Completed, Failure, JobEnd
from hub3d.jobs.record import Job
from hub3d.models.catalog import Catalog

__all__ = ["for_the_backend", "in_its_format"]


def for_the_backend(job: Job, catalog: Catalog) -> dict[str, Any]:
    """The job's params as its backend takes them: with the format it writes itself."""
    wanted = job.params.get("output_format")
    if not wanted or job.model not in catalog:
        return job.params
    return {**job.params, "output_format": catalog.entry(job.model).native_for(str(wanted))}


async def in_its_format(job: Job, end: JobEnd, job_dir: Path) -> JobEnd:
    """The result in the format the job asked for, converted (once, atomically, off the event
    loop) from what the backend wrote when they differ; the backend's own stays beside it."""
    wanted = job.params.get("output_format")
    if not isinstance(end, Completed) or not wanted:
        return end
    fmt = formats.get(str(wanted))
    native = job_dir / end.done.result
    if native.name.endswith(fmt.suffix):
        return end
    started = time.perf_counter()
    try:
        made = await asyncio.to_thread(formats.convert_beside, native, fmt.name)
    except Hub3DError as exc:
        return Failure(f"the {job.model} result could not be converted to {fmt.name}: "
                       f"{exc.message}", ErrorCode.INTERNAL, end.spent)
    done = dataclasses.replace(end.done, result=made.name, media_type=fmt.media_type,
                               metadata={**end.done.metadata, "native_result": native.name})
    return Completed(done, end.device,
                     {**end.spent, "convert": round(time.perf_counter() - started, 6)})
