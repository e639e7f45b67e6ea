"""Known values by construction for the pure metric functions."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesynth.evaluate import metrics as m

floats = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200)


def test_identical_histograms_score_zero():
    p = np.array([5, 0, 3, 9])
    assert m.jsd(p, p) == 0.0
    assert m.bincount_jsd([1, 2, 2, 80], [1, 2, 2, 80], 256) == 0.0
    assert m.rank_jsd([7, 7, 8], [7, 7, 8]) == 0.0


def test_disjoint_supports_score_ln2():
    assert math.isclose(m.jsd([1, 0], [0, 1]), math.log(2), rel_tol=1e-12)
    assert math.isclose(m.bincount_jsd([80, 80, 443], [53, 22], 65536), math.log(2), rel_tol=1e-12)
    assert math.isclose(m.categorical_jsd(np.array(["a", "b"]), np.array(["c"])), math.log(2), rel_tol=1e-12)
    assert m.JSD_MAX == math.log(2)


def test_rank_jsd_ignores_which_address_is_popular():
    # same popularity profile (3,2,1) on different addresses: identical rank distributions
    assert m.rank_jsd([1, 1, 1, 2, 2, 3], [9, 8, 8, 9, 9, 7]) == 0.0
    # one hot address vs all distinct: the padded rank distributions differ
    assert m.rank_jsd([1, 1, 1, 1], [1, 2, 3, 4]) > 0.1


@given(floats, st.floats(-1e3, 1e3, allow_nan=False))
@settings(max_examples=60, deadline=None)
def test_emd_of_a_shift_equals_the_shift(values, shift):
    a = np.array(values)
    assert math.isclose(m.emd(a, a + shift), abs(shift), rel_tol=1e-6, abs_tol=1e-6)


@given(floats, st.floats(0, 100, allow_nan=False))
@settings(max_examples=60, deadline=None)
def test_scaled_emd_divides_by_the_real_range(values, shift):
    a = np.array(values)
    span = np.ptp(a) or 1.0
    assert math.isclose(m.scaled_emd(a, a + shift), shift / span, rel_tol=1e-6, abs_tol=1e-9)


@given(st.lists(st.integers(0, 65535), min_size=1, max_size=100), st.lists(st.integers(0, 65535), min_size=1, max_size=100))
@settings(max_examples=60, deadline=None)
def test_jsd_is_symmetric_and_bounded(a, b):
    x, y = m.bincount_jsd(a, b, 65536), m.bincount_jsd(b, a, 65536)
    assert math.isclose(x, y, abs_tol=1e-12)
    assert -1e-12 <= x <= math.log(2) + 1e-12


def test_spearman_and_octets():
    assert m.spearman([1, 2, 3], [10, 20, 30]) == 1.0
    assert m.spearman([1, 2, 3], [3, 2, 1]) == -1.0
    assert math.isnan(m.spearman([1, 1, 1], [1, 2, 3]))
    assert m.ip_octets(np.array([0xC0A80001], dtype=np.uint32)).tolist() == [[192, 168, 0, 1]]
