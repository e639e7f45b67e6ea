"""How many threads generation uses, and a map over row blocks in that many threads.

Generation's numpy kernels (matmul, argmax) release the GIL, so row blocks decode in parallel threads
with no process start-up or copying; torch's own intra-op threads are set from the same count.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

#: environment variable that fixes generation's thread count (a positive integer; default: every core)
THREADS_ENV = "TRACESYNTH_GENERATE_THREADS"


def generation_threads() -> int:
    """TRACESYNTH_GENERATE_THREADS when it is a positive integer, else every core. Never derived from
    the machine's load: the output for a seed depends on torch's thread count (kernels block
    differently), so it must be the same on every run on one machine."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return available_cores()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which a container or `taskset` narrows), not
    the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without sched_getaffinity (macOS)
        return os.cpu_count() or 1


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
