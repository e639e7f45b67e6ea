"""Job and upload state in SQLite (stdlib sqlite3, WAL) under the service's data folder.

The web process and the worker processes share one database file: WAL lets readers (status requests)
run while a worker writes progress. Each thread of each process gets its own connection, so the store is
safe to use from any thread or process. Connections are reused per thread (and per process), which
keeps a status request to a fraction of a millisecond of database time. A job row carries an `attempt` counter: a worker may only
write to the attempt it was started for, so a cancelled or interrupted worker that is still winding
down can never overwrite the state of the job's next attempt.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

#: Job states. `interrupted`: the server stopped (or died) while the job ran; it can be resumed.
QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE_STATES = (QUEUED, RUNNING)
RESUMABLE_STATES = (INTERRUPTED, FAILED, CANCELLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    stored_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    format TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    created REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    upload_id TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    outputs TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    resume INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    updated REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, created);
"""
#: Columns added after the first release: (table, column, definition), added to older databases.
_MIGRATIONS = (("uploads", "owner", "TEXT NOT NULL DEFAULT ''"), ("jobs", "owner", "TEXT NOT NULL DEFAULT ''"))


@dataclass
class UploadRecord:
    """An uploaded trace: `stored_name` is server-chosen; `filename` is the client's, for display only."""

    id: str
    filename: str
    stored_name: str
    size: int
    format: str
    kind: str
    summary: dict[str, Any]
    created: float
    #: the user who uploaded it ("" in the single-user modes)
    owner: str = ""


@dataclass
class JobRecord:
    """One synthesis job (fit, generate, report) on one upload."""

    id: str
    upload_id: str
    status: str
    params: dict[str, Any]
    progress: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempt: int = 0
    resume: bool = False
    pid: int | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    updated: float = 0.0
    owner: str = ""

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE_STATES


class Store:
    """Thin typed access to the two tables."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            for table, column, definition in _MIGRATIONS:
                if column not in {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (autocommit: every statement is its own transaction)."""
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db, self._local.pid = db, os.getpid()
        yield db

    # uploads ------------------------------------------------------------------------------------
    def add_upload(self, rec: UploadRecord) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO uploads (id, filename, stored_name, size, format, kind, summary, created, "
                       "owner) VALUES (?,?,?,?,?,?,?,?,?)",
                       (rec.id, rec.filename, rec.stored_name, rec.size, rec.format, rec.kind,
                        json.dumps(rec.summary), rec.created, rec.owner))

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM uploads WHERE id=?", (upload_id,)).fetchone()
        return None if row is None else _upload(row)

    def list_uploads(self, owner: str | None = None) -> list[UploadRecord]:
        """Every upload, or only `owner`'s."""
        sql, args = "SELECT * FROM uploads", ()
        if owner is not None:
            sql, args = sql + " WHERE owner=?", (owner,)
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY created DESC", args).fetchall()
        return [_upload(r) for r in rows]

    def delete_upload(self, upload_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM uploads WHERE id=?", (upload_id,))

    # jobs ---------------------------------------------------------------------------------------
    def add_job(self, job_id: str, upload_id: str, params: dict[str, Any], owner: str = "") -> JobRecord:
        now = time.time()
        with self._connect() as db:
            db.execute("INSERT INTO jobs (id, upload_id, status, params, created, updated, owner) "
                       "VALUES (?,?,?,?,?,?,?)", (job_id, upload_id, QUEUED, json.dumps(params), now, now, owner))
        job = self.get_job(job_id)
        assert job is not None
        return job

    def get_job(self, job_id: str, config: bool = True) -> JobRecord | None:
        """One job; `config=False` leaves the stored run configuration (most of `params`) out of
        `params`, cut by SQLite, so a status request does not parse kilobytes of JSON it never shows."""
        with self._connect() as db:
            row = db.execute(f"SELECT {_columns(config)} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def list_jobs(self, status: str | None = None, upload_id: str | None = None,
                  owner: str | None = None, config: bool = True) -> list[JobRecord]:
        sql, args = f"SELECT {_columns(config)} FROM jobs WHERE 1=1", []
        if owner is not None:
            sql, args = sql + " AND owner=?", args + [owner]
        if status is not None:
            sql, args = sql + " AND status=?", args + [status]
        if upload_id is not None:
            sql, args = sql + " AND upload_id=?", args + [upload_id]
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY created DESC", args).fetchall()
        return [_job(r) for r in rows]

    def next_queued(self) -> JobRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE status=? ORDER BY created LIMIT 1", (QUEUED,)).fetchone()
        return None if row is None else _job(row)

    def mark_started(self, job_id: str, pid: int | None) -> int:
        """Move a queued job to running under a new attempt number; returns that attempt."""
        now = time.time()
        with self._connect() as db:
            db.execute("UPDATE jobs SET status=?, attempt=attempt+1, pid=?, started=?, finished=NULL, "
                       "error=NULL, updated=? WHERE id=? AND status=?", (RUNNING, pid, now, now, job_id, QUEUED))
            row = db.execute("SELECT attempt FROM jobs WHERE id=?", (job_id,)).fetchone()
        return int(row["attempt"])

    def set_pid(self, job_id: str, attempt: int, pid: int | None) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET pid=? WHERE id=? AND attempt=?", (pid, job_id, attempt))

    def report_progress(self, job_id: str, attempt: int, progress: dict[str, Any]) -> bool:
        """Written by the worker; ignored (returns False) once the attempt is no longer current."""
        with self._connect() as db:
            cur = db.execute("UPDATE jobs SET progress=?, updated=? WHERE id=? AND attempt=? AND status=?",
                             (json.dumps(progress), time.time(), job_id, attempt, RUNNING))
        return cur.rowcount == 1

    def finish(self, job_id: str, attempt: int, status: str, outputs: dict[str, Any] | None = None,
               error: str | None = None) -> bool:
        """End the current attempt of a running job (done, failed, cancelled, interrupted)."""
        now = time.time()
        with self._connect() as db:
            cur = db.execute("UPDATE jobs SET status=?, outputs=COALESCE(?, outputs), error=?, pid=NULL, "
                             "finished=?, updated=? WHERE id=? AND attempt=? AND status=?",
                             (status, None if outputs is None else json.dumps(outputs), error, now, now,
                              job_id, attempt, RUNNING))
        return cur.rowcount == 1

    def requeue(self, job_id: str, resume: bool) -> bool:
        """Put a stopped job back in the queue (resume continues from the run folder's checkpoints)."""
        marks = ",".join("?" * len(RESUMABLE_STATES))
        with self._connect() as db:
            cur = db.execute(f"UPDATE jobs SET status=?, resume=?, error=NULL, updated=? "
                             f"WHERE id=? AND status IN ({marks})",
                             (QUEUED, int(resume), time.time(), job_id, *RESUMABLE_STATES))
        return cur.rowcount == 1

    def cancel_queued(self, job_id: str) -> bool:
        now = time.time()
        with self._connect() as db:
            cur = db.execute("UPDATE jobs SET status=?, finished=?, updated=? WHERE id=? AND status=?",
                             (CANCELLED, now, now, job_id, QUEUED))
        return cur.rowcount == 1

    def mark_interrupted_all(self) -> list[str]:
        """At start-up: every job left `running` by a previous server was interrupted."""
        now = time.time()
        with self._connect() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE status=?", (RUNNING,))]
            db.execute("UPDATE jobs SET status=?, pid=NULL, finished=?, updated=?, "
                       "error='the server stopped while this job ran; resume it to continue from its checkpoints' "
                       "WHERE status=?", (INTERRUPTED, now, now, RUNNING))
        return ids

    def delete_job(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def count_by_status(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {r["status"]: int(r["n"]) for r in rows}


def _columns(config: bool) -> str:
    """The job columns to select; without the config, `params` is cut by SQLite's json_remove."""
    if config:
        return "*"
    return ", ".join("json_remove(params, '$.config') AS params" if c == "params" else c
                     for c in JobRecord.__dataclass_fields__)


def _upload(row: sqlite3.Row) -> UploadRecord:
    d = dict(row)
    d["summary"] = json.loads(d["summary"])
    return UploadRecord(**d)


def _job(row: sqlite3.Row) -> JobRecord:
    d = dict(row)
    for key in ("params", "progress", "outputs"):
        d[key] = json.loads(d[key])
    d["resume"] = bool(d["resume"])
    return JobRecord(**d)
