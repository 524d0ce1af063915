"""CPU threads per worker and per job, so workers and concurrent jobs on one machine share its
cores instead of each starting one thread per core (torch, OpenMP, BLAS all default to that)."""

from __future__ import annotations

import os

__all__ = ["THREAD_VARS", "cores", "thread_env"]

# Read once at start by OpenMP (torch's intra-op pool), MKL, OpenBLAS and numexpr.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS")


def cores() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_env(workers: int, jobs_per_worker: int, available: int | None = None) -> dict[str, str]:
    """Thread counts for one worker's environment: the machine's cores split over its workers,
    then over the jobs each runs at once (at least one each). A count already set in the
    server's own environment wins: it is the user's choice."""
    n = available if available is not None else cores()
    per_job = max(1, n // max(1, workers) // max(1, jobs_per_worker))
    return {var: str(per_job) for var in THREAD_VARS if not os.environ.get(var)}
