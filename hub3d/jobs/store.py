"""The job store: one SQLite file in the data dir, job folders beside it.

All calls come from the control plane's event loop thread; each is a short statement in WAL
mode, so they do not stall the loop.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub3d.jobs.record import Job, JobStatus, valid_job_id

__all__ = ["JobStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT,
    message TEXT NOT NULL DEFAULT '',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    result TEXT,
    media_type TEXT,
    has_mask INTEGER NOT NULL DEFAULT 0,
    device TEXT,
    timings TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
"""
# Columns added after the first release: (name, type), added on open to a new data dir and to
# one made by an older version alike, so they are defined here only.
_ADDED_COLUMNS = (("idempotency_key", "TEXT"), ("request_hash", "TEXT"), ("error_code", "TEXT"))
_KEY_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency_key ON jobs (idempotency_key)"
              " WHERE idempotency_key IS NOT NULL")

_COLUMNS = (
    "id", "model", "params", "status", "stage", "message", "error", "attempts", "created_at",
    "started_at", "finished_at", "result", "media_type", "has_mask", "device", "timings", "seq",
    "idempotency_key", "request_hash", "error_code",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM jobs"


def _row_to_job(row: tuple[Any, ...]) -> Job:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["params"] = json.loads(data["params"])
    data["timings"] = json.loads(data["timings"])
    data["status"] = JobStatus(data["status"])
    data["has_mask"] = bool(data["has_mask"])
    return Job(**data)


def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    values = []
    for name, value in fields.items():
        if isinstance(value, JobStatus):
            value = value.value
        elif name in ("timings", "params"):
            value = json.dumps(value)
        values.append(value)
    return ", ".join(f"{name} = ?" for name in fields), values


class JobStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.jobs_dir = data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / "jobs.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in _ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
        self._db.execute(_KEY_INDEX)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def job_dir(self, job_id: str) -> Path:
        if not valid_job_id(job_id):  # never build a path from an unchecked id
            raise ValueError(f"invalid job id {job_id!r}")
        return self.jobs_dir / job_id

    def insert(self, job: Job) -> Job:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO jobs (id, model, params, status, message, created_at, has_mask,"
                " timings, idempotency_key, request_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.model, json.dumps(job.params), job.status.value, job.message,
                 job.created_at, int(job.has_mask), json.dumps(job.timings),
                 job.idempotency_key, job.request_hash),
            )
        job.seq = int(cur.lastrowid or 0)
        return job

    def get(self, job_id: str) -> Job | None:
        if not valid_job_id(job_id):
            return None
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def by_idempotency_key(self, key: str) -> Job | None:
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE idempotency_key = ?", (key,)).fetchone()
        return _row_to_job(row) if row else None

    def update(self, job_id: str, **fields: Any) -> None:
        """Set fields whatever the job's status (tests, and fields no transition guards)."""
        assigns, values = _assignments(fields)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {assigns} WHERE id = ?", (*values, job_id))

    def transition(self, job_id: str, expect: JobStatus | tuple[JobStatus, ...],
                   **fields: Any) -> Job | None:
        """Set fields only while the job's status is `expect` (checked in the UPDATE itself);
        the job as it is after, or None when its status was another: a late write (a worker's
        answer after a cancel) changes nothing."""
        allowed = (expect,) if isinstance(expect, JobStatus) else expect
        assigns, values = _assignments(fields)
        marks = ", ".join("?" for _ in allowed)
        # UPDATE … RETURNING needs SQLite 3.35; older Pythons ship older SQLite. The lock makes
        # the UPDATE and the SELECT one step for this connection, the only writer.
        with self._lock:
            cur = self._db.execute(
                f"UPDATE jobs SET {assigns} WHERE id = ? AND status IN ({marks})",
                (*values, job_id, *(s.value for s in allowed)))
            if cur.rowcount == 0:
                return None
            row = self._db.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row)

    def queued(self) -> list[Job]:
        with self._lock:
            rows = self._db.execute(f"{_SELECT} WHERE status = 'queued' ORDER BY seq").fetchall()
        return [_row_to_job(r) for r in rows]

    def by_status(self, status: JobStatus) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT} WHERE status = ? ORDER BY seq", (status.value,)
            ).fetchall()
        return [_row_to_job(r) for r in rows]

    def position(self, job: Job) -> int:
        """1-based place in the queue (1 = next to start); 0 when not queued."""
        if job.status is not JobStatus.QUEUED:
            return 0
        with self._lock:
            (ahead,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq < ?", (job.seq,)
            ).fetchone()
        return int(ahead) + 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        found = {status.value: 0 for status in JobStatus}
        found.update({status: int(n) for status, n in rows})
        return found

    def count_queued(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()
        return int(n)

    def recent(self, limit: int = 20) -> list[Job]:
        with self._lock:
            rows = self._db.execute(f"{_SELECT} ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [_row_to_job(r) for r in rows]

    def expired(self, finished_before: float) -> Iterator[Job]:
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT} WHERE finished_at IS NOT NULL AND finished_at < ?", (finished_before,)
            ).fetchall()
        return (_row_to_job(r) for r in rows)

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
