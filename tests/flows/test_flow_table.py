"""FlowTable: records -> flows -> records is exact on real captures; the cap splits without losing records."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdata import shared
from tracesynth.flows.table import FlowTable
from tracesynth.io import read_trace

REAL = ["caida/caida-10k.pcapng", "ugr16/ugr16-1k.csv", "ndpi/synscan.pcap", "ndpi/teams.pcap",
        "ndpi/KakaoTalk_talk.pcap", "ndpi/alexa-app.pcapng"]


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = list(a.columns)
    assert list(b.columns) == cols
    key = [c for c in cols if str(a[c].dtype) not in ("str", "string", "object")]
    a = a.sort_values(key, kind="stable").reset_index(drop=True)
    b = b.sort_values(key, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize("cap", [None, 3])
def test_round_trip_is_exact_on_real_traces(name, cap):
    table = read_trace(shared(name)).table
    flows = FlowTable.from_records(table, max_flow_len=cap)
    back = flows.to_records()
    time_col = table.columns[0]
    assert np.all(np.diff(back[time_col].to_numpy()) >= 0)
    assert int(flows.lengths.sum()) == len(table)
    _same_rows(table, back)


def test_layout_and_known_values_on_caida():
    table = read_trace(shared("caida/caida-10k.pcapng")).table
    flows = FlowTable.from_records(table)
    assert flows.n_flows == 3149  # data/README.md
    attrs, series = flows.attributes, flows.series
    assert (attrs["flow_id"].to_numpy() == np.arange(flows.n_flows)).all()
    assert np.all(np.diff(attrs["flow_start"].to_numpy()) >= 0)
    first = series["step"].to_numpy() == 0
    assert (series.loc[first, "iat"] == 0).all()
    assert (series["iat"] >= 0).all()
    assert list(series.columns[:3]) == ["flow_id", "step", "iat"]
    assert {"pkt_len", "tos", "id", "flag", "off", "ttl", "tcp_flags"} <= set(series.columns)


def _hand_table() -> pd.DataFrame:
    """One flow of 7 packets at t=10..16 and one single-packet flow at t=12.5."""
    t = np.r_[10.0 + np.arange(7), 12.5]
    return pd.DataFrame({
        "time": t, "srcip": [1] * 7 + [2], "dstip": [3] * 8, "srcport": [80] * 7 + [53],
        "dstport": [1000] * 8, "proto": [6] * 7 + [17], "pkt_len": np.arange(8) + 40, "tos": 0,
        "id": np.arange(8), "flag": 2, "off": 0, "ttl": 64, "tcp_flags": 16,
    })


def test_cap_splits_into_segments_whose_first_iat_is_the_gap():
    flows = FlowTable.from_records(_hand_table(), max_flow_len=3)
    assert flows.flows_split == 1
    assert flows.lengths.tolist() == [3, 1, 3, 1]  # samples numbered by start: 10, 12.5, 13, 16
    attrs = flows.attributes
    assert attrs["segment"].tolist() == [0, 0, 1, 2]
    assert attrs["flow_start"].tolist() == [10.0, 12.5, 13.0, 16.0]
    s = flows.series
    assert s.loc[s.flow_id == 2, "iat"].tolist() == [1.0, 1.0, 1.0]  # continuation: gap 12 -> 13 first
    assert s.loc[s.flow_id == 3, "iat"].tolist() == [1.0]
    assert len(flows.to_records()) == 8


def test_select_renumbers_flows():
    flows = FlowTable.from_records(_hand_table(), max_flow_len=3)
    sub = flows.select(np.array([2, 0]))
    assert sub.lengths.tolist() == [3, 3]
    assert sub.attributes["flow_start"].tolist() == [13.0, 10.0]
    assert sorted(sub.to_records()["time"].tolist()) == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
