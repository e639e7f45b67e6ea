"""The tables a benchmark scores: the baselines, and each model fitted on the train part.

Each model is fitted and sampled in a fresh process (multiprocessing `spawn`), so its cost is measured
alone: CPU seconds (user + system, the process and the workers it starts), wall seconds, peak resident
memory (the largest of the process and its workers), and generated records per second. Progress events
come back through a queue, so the terminal shows the fit as a normal `fit` does.
"""
from __future__ import annotations

import json
import multiprocessing
import queue as queue_mod
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from ..errors import InternalError, UserError
from ..progress import ProgressCallback
from ..schema import TraceKind

#: built-in baselines, always scored: every column drawn independently from train; train resampled
BASELINES = ("marginals", "copy")


def _doppelganger_config(kind: TraceKind, config: str | None, epochs: int | None, seed: int):
    """The NetShare model as `tracesynth fit` trains it: the preset of the trace's kind (or a config file)."""
    from ..pipeline.commands import build_config

    return build_config(kind, config=config, epochs=epochs, seed=seed, model="doppelganger")


def _ar_config(kind: TraceKind, config: str | None, epochs: int | None, seed: int):
    """The autoregressive flow model (docs/models.md): the preset of the trace's kind with `model.kind: ar`."""
    from ..pipeline.commands import build_config

    return build_config(kind, config=config, epochs=epochs, seed=seed, model="ar")


#: model name -> config builder (kind, config file, epochs override, seed) -> TraceSynthConfig
MODELS: dict[str, Callable] = {"doppelganger": _doppelganger_config, "ar": _ar_config}


def _cost_metrics() -> tuple:
    """The cost figures as scorecard metrics (name, range, direction, description), so every column of a
    benchmark is declared the same way."""
    from ..evaluate.scorecard import Metric

    inf = float("inf")
    return (Metric("cost.fit_cpu_s", 0.0, inf, "min", "CPU seconds (user + system) to fit, workers included"),
            Metric("cost.fit_wall_s", 0.0, inf, "min", "wall seconds to fit"),
            Metric("cost.peak_rss_mb", 0.0, inf, "min", "peak resident memory of the fit and generation (MB)"),
            Metric("cost.records_per_s", 0.0, inf, "max", "generated records per second"))


COST_METRICS = _cost_metrics()


@dataclass(frozen=True)
class Cost:
    """What producing a row's table cost (NaN for rows that are not generated)."""

    fit_cpu_s: float = float("nan")
    fit_wall_s: float = float("nan")
    peak_rss_mb: float = float("nan")
    records_per_s: float = float("nan")

    def as_metrics(self) -> dict[str, float]:
        """{"cost.<field>": value} in COST_METRICS order."""
        return {m.name: getattr(self, m.name.removeprefix("cost.")) for m in COST_METRICS}


def baseline_table(name: str, train: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, Cost]:
    from ..evaluate import baseline

    t0 = time.perf_counter()
    table = getattr(baseline, name)(train, n, seed)
    return table, Cost(fit_cpu_s=0.0, fit_wall_s=0.0, records_per_s=n / max(time.perf_counter() - t0, 1e-9))


@dataclass(frozen=True)
class ModelJob:
    """One model row: fit `model` on the train part, sample `count` records (plain data: crosses `spawn`)."""

    model: str
    kind: TraceKind
    count: int
    seed: int
    folder: str
    epochs: int | None = None
    config: str | None = None
    workers: int | None = None


def run_model(job: ModelJob, train: pd.DataFrame, progress: ProgressCallback | None) -> tuple[pd.DataFrame, Cost]:
    """Fit and sample in a fresh process; returns the synthetic table and what it cost."""
    folder = Path(job.folder)
    folder.mkdir(parents=True, exist_ok=True)
    train_path, synth_path, result_path = folder / "train.parquet", folder / "synthetic.parquet", folder / "result.json"
    train.to_parquet(train_path, index=False)
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    proc = ctx.Process(target=_child, args=(asdict(job), str(train_path), str(synth_path), str(result_path), events),
                       name=f"benchmark-{job.model}")
    proc.start()
    try:
        while proc.is_alive() or not events.empty():
            try:
                event = events.get(timeout=0.5)
            except queue_mod.Empty:
                continue
            if progress is not None:
                progress(event)
    finally:  # Ctrl-C or an error here: the fit must not outlive the benchmark
        if proc.is_alive():
            proc.terminate()
        proc.join()
    if not result_path.exists():
        raise InternalError(f"benchmark: the {job.model} fit process ended with exit code {proc.exitcode} and "
                            "no result (killed for memory?)")
    result = json.loads(result_path.read_text())
    if "error" in result:
        raise (UserError if result["user"] else InternalError)(f"{job.model}: {result['error']}")
    return pd.read_parquet(synth_path), Cost(**result["cost"])


def _child(job: dict, train_path: str, synth_path: str, result_path: str, events) -> None:
    """Runs in the spawned process: fit, sample, write the table and the cost (or the error)."""
    job = ModelJob(**job)
    out = Path(result_path)
    _exit_with_parent()
    try:
        cost = _fit_and_sample(job, train_path, synth_path, events.put)
        out.write_text(json.dumps({"cost": asdict(cost)}))
    except UserError as exc:
        out.write_text(json.dumps({"error": str(exc), "user": True}))
    except Exception as exc:  # reported by the parent as an internal error with its message
        out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}", "user": False}))


def _exit_with_parent(poll_s: float = 2.0) -> None:
    """End this process when the benchmark that started it is gone (killed without a chance to stop us:
    its SIGTERM/SIGKILL does not reach a spawned child), instead of fitting on as an orphan."""
    import os
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _fit_and_sample(job: ModelJob, train_path: str, synth_path: str, progress: ProgressCallback) -> Cost:
    from ..pipeline.runners import make_runner
    from ..pipeline.synthesizer import Synthesizer

    train = pd.read_parquet(train_path)
    cfg = MODELS[job.model](job.kind, job.config, job.epochs, job.seed)
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    synth = Synthesizer(cfg).fit(train, progress, run_dir=Path(job.folder) / "run",
                                 runner=make_runner(job.workers, None))
    fit_cpu, fit_wall = _cpu_s() - cpu0, time.perf_counter() - wall0
    t0 = time.perf_counter()
    table = synth.sample(count=job.count, seed=job.seed, progress=progress)
    gen_s = time.perf_counter() - t0
    table.to_parquet(synth_path, index=False)
    kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return Cost(fit_cpu_s=round(fit_cpu, 2), fit_wall_s=round(fit_wall, 2), peak_rss_mb=round(kb / 1024, 1),
                records_per_s=round(job.count / max(gen_s, 1e-9), 1))
