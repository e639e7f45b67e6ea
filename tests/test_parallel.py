"""Row blocks decoded over threads give exactly the serial result, whatever the split."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesynth._parallel import generation_threads, map_rows


def _nearest_rows(rows: np.ndarray) -> np.ndarray:
    return np.argmax(rows @ np.linspace(-1.0, 1.0, 40, dtype=np.float32).reshape(4, 10), axis=1)


@settings(max_examples=40)
@given(n=st.integers(0, 5000), threads=st.integers(1, 5), min_rows=st.integers(1, 3000), seed=st.integers(0, 99))
def test_map_rows_equals_the_serial_call(n, threads, min_rows, seed):
    rows = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    out = map_rows(_nearest_rows, rows, np.full(n, -1, dtype=np.int64), threads, min_rows=min_rows)
    np.testing.assert_array_equal(out, _nearest_rows(rows))


def test_generation_threads_from_the_environment(monkeypatch):
    import os

    monkeypatch.setenv("TRACESYNTH_GENERATE_THREADS", "3")
    assert generation_threads() == 3
    for value in ("", "0", "-2", "two"):
        monkeypatch.setenv("TRACESYNTH_GENERATE_THREADS", value)
        assert generation_threads() == (os.cpu_count() or 1)
