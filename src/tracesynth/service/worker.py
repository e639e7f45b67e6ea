"""The body of one worker process: fit, generate and report for one job attempt.

Started by the job manager with the multiprocessing "spawn" method, so it shares nothing with the web
process but the SQLite file. It dies with the server (PR_SET_PDEATHSIG, plus a parent watchdog), which
is what lets a restarted server call every job it finds `running` interrupted and safe to resume.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..config import config_from_dict, save_config
from ..errors import UserError
from ..progress import ProgressEvent
from ..runtime import GenerationOptions
from . import tasks
from .store import DONE, FAILED, Store

log = logging.getLogger(__name__)

#: Scheduling niceness of a worker process: training and generation yield the CPU to the web process,
#: so status requests stay fast while a job runs (issue 14, item 10; docs/service.md, "Performance").
WORKER_NICE = 10
#: Progress writes at most this often (seconds), so a fast epoch loop never hammers the database.
PROGRESS_INTERVAL_S = 0.5
_STEPS = ("fit", "generate", "report")


class ProgressWriter:
    """A ProgressCallback that stores the latest event of the current step in the job row (throttled)."""

    def __init__(self, store: Store, job_id: str, attempt: int):
        self.store, self.job_id, self.attempt = store, job_id, attempt
        self.step = "queued"
        self.started = time.time()
        self._last_write = 0.0
        self._state: dict[str, Any] = {}

    def begin(self, step: str) -> None:
        self.step = step
        self._state = {"step": step, "step_index": _STEPS.index(step), "steps": len(_STEPS)}
        self._write(force=True)

    def __call__(self, event: ProgressEvent) -> None:
        info = {k: v for k, v in event.info.items() if isinstance(v, (int, float, str, bool)) or v is None}
        fraction = None
        if event.total:
            fraction = max(0.0, min(1.0, float(event.done) / float(event.total)))
        self._state.update({"stage": event.stage, "done": event.done, "total": event.total,
                            "unit": event.unit, "fraction": fraction, "info": info})
        for key in ("chunk", "epoch", "eta_s"):
            if key in info:
                self._state[key] = info[key]
        self._write(force=fraction == 1.0)

    def _write(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_write < PROGRESS_INTERVAL_S:
            return
        self._last_write = now
        self._state["elapsed_s"] = round(now - self.started, 3)
        if not self.store.report_progress(self.job_id, self.attempt, self._state):
            # the job was cancelled or taken over by a newer attempt: stop working on it
            log.warning("job %s attempt %s is no longer current; stopping", self.job_id, self.attempt)
            os._exit(0)


def run_job(db_path: str, job_dir: str, trace_path: str, job_id: str, attempt: int,
            options: GenerationOptions = GenerationOptions(threads=1)) -> None:
    """Entry point of the worker process (must stay importable for the spawn start method). `options`:
    this job's generation threads (also its fine-tuning workers) and precision (`jobs.job_options`)."""
    _die_with_parent()
    job_folder = Path(job_dir)
    job_folder.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=job_folder / "job.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)  # its INFO lines would drown the job's own
    store = Store(db_path)
    job = store.get_job(job_id)
    if job is None:
        return
    writer = ProgressWriter(store, job_id, attempt)
    try:
        outputs = _run_steps(job.params, Path(trace_path), job_folder, writer, options)
    except UserError as exc:
        log.info("job %s failed: %s", job_id, exc)
        store.finish(job_id, attempt, FAILED, error=str(exc))
        return
    except Exception as exc:  # a bug somewhere below: keep the traceback in the job log
        log.exception("job %s crashed", job_id)
        store.finish(job_id, attempt, FAILED,
                     error=f"internal error: {type(exc).__name__}: {exc} (traceback in the job log)")
        return
    store.finish(job_id, attempt, DONE, outputs=outputs, error=outputs.pop("report_error", None))


def _run_steps(params: dict[str, Any], trace: Path, job_folder: Path, writer: ProgressWriter,
               options: GenerationOptions) -> dict[str, Any]:
    config = save_config(config_from_dict(params["config"], "stored job config"), job_folder / "config.json")
    run_dir = job_folder / "run"
    if not (run_dir / "manifest.json").exists():
        writer.begin("fit")
        fitted = tasks.fit(trace, run_dir, config, writer, workers=options.resolved_threads())
    else:
        fitted = {"resumed": False, "already_fitted": True}
    writer.begin("generate")
    synthetic = job_folder / f"synthetic.{params['output_format']}"
    generated = tasks.generate(run_dir, synthetic, params.get("count"), params.get("scale"),
                               int(params.get("seed", 0)), writer, options)
    outputs: dict[str, Any] = {"synthetic": synthetic.name, "synthetic_bytes": synthetic.stat().st_size,
                               "records": generated.get("records"), "fit": _plain(fitted)}
    writer.begin("report")
    report = job_folder / "report.html"
    try:
        tasks.report(trace, synthetic, report, run_dir=run_dir)
        outputs["report"] = report.name
    except Exception as exc:  # the synthetic trace is the product; a failed report must not discard it
        log.exception("report failed")
        outputs["report_error"] = f"the synthetic trace is ready, but the report failed: {exc}"
    return outputs


def _plain(result: Any) -> dict[str, Any]:
    """The JSON-safe scalars of a step's result dict (what the job page shows about the fit)."""
    if not isinstance(result, dict):
        return {}
    return {k: v for k, v in result.items()
            if k not in ("run", "out") and (isinstance(v, (int, float, str, bool)) or v is None)}


def _die_with_parent() -> None:
    """Make this process (and its group) end when the server process ends, however it ends."""
    parent = os.getppid()
    os.setpgrp()  # own process group: cancel stops the worker and anything it started
    try:
        os.nice(WORKER_NICE)  # inherited by everything the worker starts (runner processes too)
    except OSError:
        pass
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
