"""The three steps of a job, each one call into the path-in/path-out entry points
(`tracesynth.pipeline.commands`, re-exported by `tracesynth.api`, and `tracesynth.api.report_paths`).

Kept apart from the worker so the wiring to the pipeline and the evaluation is one line per step.
Runs only inside worker processes: importing the pipeline pulls in torch, which the web process never loads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..progress import ProgressCallback
from ..runtime import GenerationOptions


def fit(trace: Path, run_dir: Path, config: Path, progress: ProgressCallback, workers: int) -> Any:
    """Train (or resume training) the run folder; an unfinished run folder resumes from its checkpoints.

    `workers` (fine-tuning processes): this job's share of the cores (the scheduler sets it for every
    job, see `jobs.worker_threads`), not every core as `tracesynth fit` takes, since other jobs may run
    beside it."""
    from ..pipeline.commands import fit_path

    return fit_path(trace, run_dir, config=config, workers=workers, progress=progress)


def generate(run_dir: Path, out: Path, count: int | None, scale: float | None, seed: int,
             progress: ProgressCallback, options: GenerationOptions) -> Any:
    """Sample the synthetic trace into `out` (format by suffix) with this job's threads and precision."""
    from ..pipeline.commands import generate_path

    return generate_path(run_dir, out, count=count, scale=scale, seed=seed, options=options, progress=progress)


def report(real: Path, synthetic: Path, out: Path, run_dir: Path | None = None) -> Any:
    """Write the self-contained HTML report comparing the real and the synthetic trace; with `run_dir`,
    the report also states the run's privacy guarantee (DP ledger, public pretraining) from its manifest."""
    from .. import api

    meta = None
    if run_dir is not None:
        from ..pipeline.commands import report_meta

        meta = report_meta(run_dir) or None
    return api.report_paths(real, synthetic, out, meta=meta)
