"""A map over row blocks in threads, and the thread count it uses.

Generation's numpy kernels (matmul, argmax) release the GIL, so row blocks decode in parallel threads
with no process start-up or copying. The count comes from the caller: generation sets it for its
duration (`using_threads`, from `runtime.GenerationOptions`); elsewhere it is every core.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np

_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("tracesynth_threads", default=None)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which a container or `taskset` narrows), not
    the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without sched_getaffinity (macOS)
        return os.cpu_count() or 1


@contextlib.contextmanager
def using_threads(threads: int) -> Iterator[None]:
    """`row_threads()` is `threads` inside (generation's count reaches the decoders without passing
    it through every encoder's `inverse_transform`)."""
    token = _THREADS.set(max(1, int(threads)))
    try:
        yield
    finally:
        _THREADS.reset(token)


def row_threads() -> int:
    """Threads for `map_rows` here: the count `using_threads` set, else every available core."""
    threads = _THREADS.get()
    return threads if threads is not None else available_cores()


def map_rows(fn: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, out: np.ndarray, threads: int,
             min_rows: int = 1024) -> np.ndarray:
    """out[i] = fn(rows[block])[i - block.start] for contiguous row blocks, one per thread (fewer when
    there are under `min_rows` rows a thread: starting a thread costs more than it saves)."""
    parts = max(1, min(threads, len(rows) // max(1, min_rows)))
    if parts == 1:
        out[:] = fn(rows)
        return out
    bounds = np.linspace(0, len(rows), parts + 1).astype(np.int64)

    def run(k: int) -> None:
        out[bounds[k]:bounds[k + 1]] = fn(rows[bounds[k]:bounds[k + 1]])

    list(_pool(parts).map(run, range(parts)))
    return out


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    """One lasting pool per size: starting threads per call cost ~0.3 ms, a tenth of a typical call."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tracesynth-rows")
