"""Sketches: known behaviour on synthetic streams and on a real capture."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesynth.evaluate.downstream.sketches import (SKETCHES, CountMin, CountSketch, UnivMon, heavy_hitters,
                                                     heavy_hitter_errors)


def _exact(keys, weights):
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv, weights=weights)


@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=500), st.integers(16, 4096), st.integers(0, 5))
@settings(max_examples=50, deadline=None)
def test_count_min_never_underestimates(keys, memory, seed):
    keys = np.array(keys, dtype=np.uint64)
    w = np.ones(len(keys))
    uniq, exact = _exact(keys, w)
    est = CountMin(memory, seed=seed).fit(keys, w).query(uniq)
    assert (est >= exact - 1e-9).all()


def test_sketches_are_exact_without_collisions():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**32, 50).astype(np.uint64).repeat(rng.integers(1, 20, 50))
    w = np.ones(len(keys))
    uniq, exact = _exact(keys, w)
    for cls in (CountMin, CountSketch, UnivMon):
        est = cls(4 * 1024 * 1024, seed=1).fit(keys, w).query(uniq)
        assert np.allclose(est, exact), cls.__name__


def test_count_sketch_is_unbiased_on_average():
    rng = np.random.default_rng(1)
    keys = rng.zipf(1.3, 20_000).astype(np.uint64)
    w = np.ones(len(keys))
    uniq, exact = _exact(keys, w)
    errs = [CountSketch(2048, seed=s).fit(keys, w).query(uniq) - exact for s in range(20)]
    assert abs(np.mean(errs)) < 0.05 * np.mean(np.abs(errs)) + 0.5


def test_more_memory_means_less_error_on_real_traffic(caida_table):
    small = heavy_hitter_errors(caida_table, memory_bytes=2 * 1024)
    large = heavy_hitter_errors(caida_table, memory_bytes=256 * 1024)
    for key in small:
        for name in SKETCHES:
            assert large[key][name] <= small[key][name] + 1e-9, (key, name)


def test_real_against_itself_ranks_identically(caida_table):
    hh = heavy_hitters(caida_table, caida_table, memory_bytes=4096)
    assert hh["spearman"] == 1.0
    assert hh["relative_error"]["real"] == hh["relative_error"]["synthetic"]
