"""Row blocks decoded over threads give exactly the serial result, whatever the split."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesynth._parallel import available_cores, map_rows, row_threads, using_threads
from tracesynth.errors import UserError
from tracesynth.runtime import GenerationOptions


def _nearest_rows(rows: np.ndarray) -> np.ndarray:
    return np.argmax(rows @ np.linspace(-1.0, 1.0, 40, dtype=np.float32).reshape(4, 10), axis=1)


@settings(max_examples=40)
@given(n=st.integers(0, 5000), threads=st.integers(1, 5), min_rows=st.integers(1, 3000), seed=st.integers(0, 99))
def test_map_rows_equals_the_serial_call(n, threads, min_rows, seed):
    rows = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    out = map_rows(_nearest_rows, rows, np.full(n, -1, dtype=np.int64), threads, min_rows=min_rows)
    np.testing.assert_array_equal(out, _nearest_rows(rows))


def test_row_threads_come_from_the_caller_not_the_environment(monkeypatch):
    monkeypatch.setenv("TRACESYNTH_GENERATE_THREADS", "3")              # the CLI's default, not read here
    assert row_threads() == available_cores()
    with using_threads(2):
        assert row_threads() == 2
        with using_threads(1):
            assert row_threads() == 1
        assert row_threads() == 2
    assert row_threads() == available_cores()


def test_generation_options_are_checked_and_resolved():
    assert GenerationOptions().resolved_threads() == available_cores()
    assert GenerationOptions(threads=3).resolved_threads() == 3
    assert GenerationOptions(threads=2, precision="float32").describe() == {"threads": 2, "precision": "float32"}
    for bad in ({"threads": 0}, {"threads": 1.5}, {"threads": True}, {"precision": "fp8"}):
        with pytest.raises(UserError):
            GenerationOptions(**bad)
