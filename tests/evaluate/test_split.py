"""The held-out split: whole 5-tuple flows on one side only, seeded, with a clear error for tiny traces."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from tracesynth.errors import UserError
from tracesynth.evaluate.split import MIN_FLOWS_PER_SIDE, Split, split_flows
from tracesynth.schema import PACKET_COLUMNS, empty_table, flow_key_words


def packets(n: int, n_flows: int, seed: int = 0) -> pd.DataFrame:
    """`n` packets spread over about `n_flows` 5-tuples (random ports), time-ordered."""
    rng = np.random.default_rng(seed)
    flow = rng.integers(0, n_flows, n)
    cols = {c: np.zeros(n, dtype=d) for c, d in PACKET_COLUMNS.items()}
    cols.update(time=np.sort(rng.random(n)), srcip=(flow * 7).astype(np.uint32), dstip=np.full(n, 9, np.uint32),
                srcport=(flow % 65536).astype(np.uint16), proto=np.full(n, 6, np.uint8),
                pkt_len=rng.integers(40, 1500, n).astype(np.uint16))
    return pd.DataFrame(cols)


def _keys(table: pd.DataFrame) -> set:
    hi, lo = flow_key_words(table)
    return set(zip(hi.tolist(), lo.tolist()))


@given(n=st.integers(60, 400), n_flows=st.integers(25, 200), holdout=st.floats(0.2, 0.6), seed=st.integers(0, 99))
def test_split_is_flow_disjoint_and_complete(n, n_flows, holdout, seed):
    table = packets(n, n_flows, seed)
    flows = len(_keys(table))
    if min(round(flows * holdout), flows - round(flows * holdout)) < MIN_FLOWS_PER_SIDE:
        with pytest.raises(UserError):
            split_flows(table, "packets", holdout=holdout, seed=seed)
        return
    sp = split_flows(table, "packets", holdout=holdout, seed=seed)
    assert not _keys(sp.train) & _keys(sp.holdout)  # no 5-tuple on both sides
    assert len(sp.train) + len(sp.holdout) == n
    assert len(_keys(sp.holdout)) == round(flows * holdout)
    assert sp.train.time.is_monotonic_increasing and sp.holdout.time.is_monotonic_increasing
    assert (sp.train.dtypes == table.dtypes).all()
    both = pd.concat([sp.train, sp.holdout]).sort_values("time").reset_index(drop=True)
    pd.testing.assert_frame_equal(both, table)


def test_split_is_seeded(caida_table):
    a, b = split_flows(caida_table, seed=3), split_flows(caida_table, seed=3)
    pd.testing.assert_frame_equal(a.holdout, b.holdout)
    c = split_flows(caida_table, seed=4)
    assert not a.holdout.equals(c.holdout)
    assert isinstance(a, Split) and a.kind == "packets" and a.holdout_fraction == 0.2
    assert len(_keys(a.holdout)) == round(3149 * 0.2)  # caida-10k has 3,149 flows (data README)


def test_flow_records_split_too(ugr_table):
    sp = split_flows(ugr_table, "flows", holdout=0.5, seed=0)
    assert sp.kind == "flows" and not _keys(sp.train) & _keys(sp.holdout)
    assert "label" in sp.holdout.columns


def test_too_few_flows_is_one_clear_line():
    with pytest.raises(UserError, match=r"has 12 flow\(s\).*at least 10 flows on each side") as err:
        split_flows(packets(200, 12, seed=1).assign(srcport=lambda t: (t.srcip // 7).astype(np.uint16)),
                    holdout=0.2)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="has 0 flow"):
        split_flows(empty_table("packets"))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_bad_holdout_fraction_is_a_user_error(bad):
    with pytest.raises(UserError, match="holdout fraction"):
        split_flows(packets(100, 50), holdout=bad)


def test_wrong_kind_is_a_user_error(ugr_table):
    with pytest.raises(UserError, match="expected a packets table"):
        split_flows(ugr_table, "packets")
