"""The benchmark's built-in baselines: independent columns (`marginals`) and copying (`copy`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tracesynth.evaluate.baseline import BASELINES, column_shuffle, copy, marginals
from tracesynth.evaluate.fidelity import fidelity
from tracesynth.evaluate.privacy import exact_match_share


def test_marginals_keeps_every_column_distribution_and_dtype(caida_table):
    out = marginals(caida_table, 20_000, seed=1)
    assert len(out) == 20_000 and list(out.columns) == list(caida_table.columns)
    assert (out.dtypes == caida_table.dtypes).all() and out.time.is_monotonic_increasing
    for c in ("dstport", "pkt_len", "ttl"):  # values drawn from train only
        assert set(out[c].unique()) <= set(caida_table[c].unique())
    assert fidelity(caida_table, out, "packets")["avg_jsd"] < 0.03  # marginals kept (sampling noise only)
    assert exact_match_share(caida_table, out, "packets") < 0.01  # whole rows are not copied


def test_copy_reproduces_training_rows(ugr_table):
    out = copy(ugr_table, 500, seed=2)
    assert len(out) == 500 and (out.dtypes == ugr_table.dtypes).all() and out.ts.is_monotonic_increasing
    assert exact_match_share(ugr_table, out, "flows") == 1.0
    assert "label" in out.columns


def test_baselines_are_seeded_and_registered(caida_small):
    assert set(BASELINES) == {"marginals", "copy"}
    for fn in BASELINES.values():
        pd.testing.assert_frame_equal(fn(caida_small, 300, 5), fn(caida_small, 300, 5))
        assert not fn(caida_small, 300, 5).equals(fn(caida_small, 300, 6))


def test_column_shuffle_is_a_permutation_of_each_column(caida_small):
    out = column_shuffle(caida_small, seed=0)
    for c in caida_small.columns:
        assert np.array_equal(np.sort(out[c].to_numpy()), np.sort(caida_small[c].to_numpy()))
