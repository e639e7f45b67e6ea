"""Runners execute independent chunk jobs: in this process, in worker processes, or on a Ray cluster.

A runner only knows `map(fn, jobs) -> results` (results in job order). `fn` must be a module-level
function and every job picklable, so the same job runs unchanged under any runner; that is what makes
LocalRunner and RayRunner give the same results. This is the ONLY module that imports ray (lazily).
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from typing import Any, Callable, Sequence

from .._parallel import available_cores
from ..errors import UserError

log = logging.getLogger(__name__)


def _init_worker(threads: int) -> None:
    """Give each worker a fixed share of the cores so parallel chunks do not oversubscribe the CPU."""
    import torch

    torch.set_num_threads(max(1, threads))
    os.environ["OMP_NUM_THREADS"] = str(max(1, threads))


def default_workers(n_chunks: int) -> int:
    """`fit`'s default worker count: the cores this process may run on, capped by the chunks that are
    fine-tuned in parallel (chunk 0 trains first, alone)."""
    return max(1, min(available_cores(), n_chunks - 1))


class LocalRunner:
    """Run jobs on this machine. `workers <= 1` runs them in this process (no spawn cost).

    With more workers, a `spawn` process pool is used (fork is unsafe with torch threads) and each
    worker gets `cpu_count // workers` torch threads.
    """

    def __init__(self, workers: int = 1, threads_per_worker: int | None = None):
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        self.workers = int(workers)
        cores = available_cores()
        self.threads_per_worker = threads_per_worker or max(1, cores // self.workers)

    def describe(self) -> str:
        return f"local ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        jobs = list(jobs)
        if not jobs:
            return []
        if self.workers == 1 or len(jobs) == 1:
            return [fn(job) for job in jobs]
        ctx = multiprocessing.get_context("spawn")
        n = min(self.workers, len(jobs))
        with cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker,
                                    initargs=(self.threads_per_worker,)) as pool:
            return list(pool.map(fn, jobs))


class RayRunner:
    """Run jobs as Ray tasks. `address`: "local" starts Ray in this process; otherwise a cluster address
    ("auto", "ray://host:10001" or "host:6379") as started with `ray start --head` (docs/distributed.md).
    """

    def __init__(self, address: str = "local", cpus_per_job: int = 1):
        self.address = address
        self.cpus_per_job = max(1, int(cpus_per_job))

    def describe(self) -> str:
        return f"ray ({self.address})"

    def _connect(self):
        try:
            import ray
        except ImportError:
            raise UserError("--ray needs the 'ray' package: pip install 'tracesynth[ray]'") from None
        if not ray.is_initialized():
            try:
                if self.address == "local":
                    ray.init(num_cpus=available_cores(), include_dashboard=False, log_to_driver=False,
                             ignore_reinit_error=True)
                else:
                    ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
            except ConnectionError as exc:
                raise UserError(f"--ray {self.address}: cannot connect to a Ray cluster ({exc}); start one "
                                "with `ray start --head` or use `--ray local`") from None
        return ray

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        jobs = list(jobs)
        if not jobs:
            return []
        ray = self._connect()
        remote = ray.remote(num_cpus=self.cpus_per_job)(_ray_call)
        refs = [remote.remote(fn, job, self.cpus_per_job) for job in jobs]
        return list(ray.get(refs))

    def shutdown(self) -> None:
        """Stop a Ray instance this runner started in-process (a cluster stays up)."""
        if self.address == "local":
            import ray

            if ray.is_initialized():
                ray.shutdown()


def _ray_call(fn: Callable[[Any], Any], job: Any, threads: int) -> Any:
    _init_worker(threads)
    return fn(job)


def make_runner(workers: int | None = None, ray_address: str | None = None):
    """The runner the CLI asks for: Ray when an address is given, else local workers; None when neither
    is set (`Synthesizer.fit` then picks `default_workers` for the chunks it chose)."""
    if ray_address:
        return RayRunner(ray_address)
    return None if workers is None else LocalRunner(workers)
