"""The job queue: a scheduler thread in the web process that starts worker processes, never trains itself.

Jobs wait in SQLite (`queued`); the scheduler starts at most `max_jobs` of them at a time, each in its own
spawned process running `worker.run_job`, and notices when a worker ends without saying how. On start-up,
every job a previous server left `running` is marked `interrupted`; resume puts it back in the queue and
the pipeline continues from the checkpoints in the job's run folder. Cancel stops the worker's process
group; delete also removes the job's folder.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..runtime import GenerationOptions
from .models import JobRequest, output_format, resolve_config
from .settings import ServiceSettings
from .store import (ACTIVE_STATES, CANCELLED, FAILED, INTERRUPTED, QUEUED, RUNNING, JobRecord, Store)
from .users import SOLE_USER, User

log = logging.getLogger(__name__)


class NotFound(UserError):
    """No job or upload with that id (HTTP 404)."""


class Conflict(UserError):
    """The request does not fit the job's current state (HTTP 409)."""


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process (spawn context)
    attempt: int


class JobManager:
    """Owns the worker processes of one server; all job state lives in the store."""

    def __init__(self, settings: ServiceSettings, store: Store):
        self.settings, self.store = settings, store
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Mark jobs a dead server left running as interrupted, then start scheduling."""
        for job_id in self.store.mark_interrupted_all():
            log.warning("job %s was interrupted by a server stop; it can be resumed", job_id)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tracesynth-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; running jobs become `interrupted` (resumable), their workers are stopped."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for job_id, worker in list(self._workers.items()):
                self.store.finish(job_id, worker.attempt, INTERRUPTED,
                                  error="the server stopped while this job ran; resume it to continue")
                self._kill(worker)
            self._workers.clear()

    # requests -----------------------------------------------------------------------------------
    def submit(self, request: JobRequest, user: User = SOLE_USER) -> JobRecord:
        """Queue a job of `user` on one of the uploads they may see (another user's is a 404)."""
        upload = self.store.get_upload(str(request.upload_id))
        if upload is None or not user.may_see(upload.owner):
            raise NotFound(f"upload_id: no upload {request.upload_id}; upload the trace first")
        config = resolve_config(request, upload.kind)
        params = request.model_dump(mode="json", exclude={"overrides"})
        params.update(config=config.model_dump(mode="json"), output_format=output_format(request, upload.kind),
                      overrides=request.overrides)
        job = self.store.add_job(str(uuid.uuid4()), upload.id, params, owner=user.name)
        self._wake.set()
        return job

    def get(self, job_id: str, user: User = SOLE_USER, config: bool = True) -> JobRecord:
        """The job, if `user` may see it: another user's job is as absent as a job that never was.
        `config=False`: without the stored run configuration (what the API shows of a job)."""
        job = self.store.get_job(job_id, config=config)
        if job is None or not user.may_see(job.owner):
            raise NotFound(f"no job {job_id}")
        return job

    def cancel(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job.status == QUEUED:
            self.store.cancel_queued(job_id)
        elif job.status == RUNNING:
            with self._lock:
                self.store.finish(job_id, job.attempt, CANCELLED, error="cancelled by request")
                worker = self._workers.pop(job_id, None)
                if worker is not None:
                    self._kill(worker)
        else:
            raise Conflict(f"job {job_id} is {job.status}; only queued or running jobs can be cancelled")
        return self.get(job_id)

    def resume(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if not job.resumable:
            raise Conflict(f"job {job_id} is {job.status}; only interrupted, failed or cancelled jobs resume")
        if self.store.get_upload(job.upload_id) is None:
            raise Conflict(f"job {job_id}: its upload was deleted, so it cannot resume")
        self.store.requeue(job_id, resume=True)
        self._wake.set()
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.status in ACTIVE_STATES:
            self.cancel(job_id)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        self.store.delete_job(job_id)

    def job_dir(self, job_id: str) -> Path:
        """The job's folder; `job_id` is a server-made UUID, re-parsed here so no other string gets in."""
        return self.settings.jobs_dir / str(uuid.UUID(job_id))

    def running(self) -> int:
        with self._lock:
            return len(self._workers)

    # scheduling ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._launch()
            except Exception:  # the scheduler must survive anything one job does
                log.exception("job scheduler error")
            self._wake.wait(0.25)
            self._wake.clear()

    def _reap(self) -> None:
        with self._lock:
            for job_id, worker in list(self._workers.items()):
                if worker.process.is_alive():
                    continue
                worker.process.join()
                del self._workers[job_id]
                code = worker.process.exitcode
                if self.store.finish(job_id, worker.attempt, FAILED,
                                     error=f"the worker process ended unexpectedly (exit code {code}); "
                                           "resume the job to continue from its checkpoints"):
                    log.error("job %s: worker exited with %s without reporting", job_id, code)

    def _launch(self) -> None:
        with self._lock:
            while len(self._workers) < self.settings.max_jobs and not self._stop.is_set():
                job = self.store.next_queued()
                if job is None:
                    return
                upload = self.store.get_upload(job.upload_id)
                attempt = self.store.mark_started(job.id, None)
                if upload is None:
                    self.store.finish(job.id, attempt, FAILED, error="the job's upload was deleted")
                    continue
                trace = self.settings.uploads_dir / upload.stored_name
                process = self._ctx.Process(
                    target=_worker_entry, name=f"tracesynth-job-{job.id[:8]}",
                    args=(str(self.settings.db_path), str(self.job_dir(job.id)), str(trace), job.id, attempt,
                          job_options(self.settings)))
                process.start()
                self.store.set_pid(job.id, attempt, process.pid)
                self._workers[job.id] = _Worker(process, attempt)
                log.info("job %s attempt %d started in process %s", job.id, attempt, process.pid)

    @staticmethod
    def _kill(worker: _Worker) -> None:
        """Stop a worker and everything it started (it leads its own process group)."""
        pid = worker.process.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                try:
                    worker.process.terminate() if sig == signal.SIGTERM else worker.process.kill()
                except (ProcessLookupError, ValueError):
                    pass
            worker.process.join(timeout=5)
            if not worker.process.is_alive():
                return


def worker_threads(max_jobs: int, fixed: int | None = None) -> int:
    """Generation (and fine-tuning worker) threads for one job: `fixed` when the operator set them
    (`ServiceSettings.generation.threads`), else the cores shared among the jobs that may run at once,
    since generation slows down several-fold when its threads compete for cores (docs/pipeline.md,
    "Threads")."""
    from .._parallel import available_cores

    if fixed is not None:
        return fixed
    return max(1, available_cores() // max(1, max_jobs))


def job_options(settings: ServiceSettings) -> GenerationOptions:
    """The generation options one job runs with: the service's, with this job's share of the cores."""
    return replace(settings.generation, threads=worker_threads(settings.max_jobs, settings.generation.threads))


def _worker_entry(db_path: str, job_dir: str, trace: str, job_id: str, attempt: int,
                  options: GenerationOptions = GenerationOptions(threads=1)) -> None:
    from .worker import run_job

    run_job(db_path, job_dir, trace, job_id, attempt, options)
