"""Flow meter: hand-computed records, nfstream's flows on real captures, conservation laws."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdata import packets_table, shared
from tracesynth.data import sample_path
from tracesynth.errors import UserError
from tracesynth.io import read_trace
from tracesynth.io.flowmeter import _active_kernel, _active_numpy, meter_flows
from tracesynth.io.ipaddr import ip_to_uint32
from tracesynth.schema import FLOW_COLUMNS

A, B = int(ip_to_uint32(["10.0.0.1"])[0]), int(ip_to_uint32(["10.0.0.2"])[0])


_packets = packets_table


def test_hand_computed_idle_and_active_timeouts():
    packets = _packets([
        # key 1 (A:1000 -> B:80 tcp): 0, 5, 10 | gap 11 > idle 10 | 21, 31 (gap exactly 10 stays) ...
        (0.0, A, B, 1000, 80, 6, 100), (5.0, A, B, 1000, 80, 6, 200), (10.0, A, B, 1000, 80, 6, 300),
        (21.0, A, B, 1000, 80, 6, 40), (31.0, A, B, 1000, 80, 6, 40), (41.0, A, B, 1000, 80, 6, 40),
        # ... 51 is 30 s after 21: 30 is not > active 30, stays; 52 is 31 s after 21: new record
        (51.0, A, B, 1000, 80, 6, 40), (52.0, A, B, 1000, 80, 6, 60),
        # reverse direction is its own flow; so is another protocol
        (1.0, B, A, 80, 1000, 6, 1500), (2.0, A, B, 1000, 80, 17, 28),
    ])
    flows = meter_flows(packets.sample(frac=1, random_state=3), idle_timeout=10, active_timeout=30)
    got = flows[["ts", "td", "srcip", "srcport", "proto", "pkt", "byt"]].values.tolist()
    assert got == [
        [0.0, 10.0, A, 1000, 6, 3, 600],
        [1.0, 0.0, B, 80, 6, 1, 1500],
        [2.0, 0.0, A, 1000, 17, 1, 28],
        [21.0, 30.0, A, 1000, 6, 4, 160],
        [52.0, 0.0, A, 1000, 6, 1, 60],
    ]
    assert {c: flows[c].dtype for c in FLOW_COLUMNS} == FLOW_COLUMNS


def test_bidirectional_takes_direction_from_first_packet():
    packets = _packets([(1.0, B, A, 80, 1000, 6, 60), (0.5, A, B, 1000, 80, 6, 40), (3.0, A, B, 1000, 80, 6, 40)])
    flows = meter_flows(packets, bidirectional=True)
    assert flows[["ts", "td", "srcip", "dstport", "pkt", "byt"]].values.tolist() == [[0.5, 2.5, A, 80, 3, 140]]


@pytest.mark.parametrize("name", ["ethereum.pcap", "webex.pcap", "whatsapp_login_call.pcap", "wechat.pcap"])
def test_matches_nfstream_flows(name):
    """ndpi-flows.csv is nfstream's default output: bidirectional, idle 120 s, ms timestamps."""
    packets = read_trace(shared(f"ndpi/{name}")).table
    ref = pd.read_csv(shared("flows/ndpi-flows.csv"))
    ref = ref[(ref["source_file"] == name) & (ref["ip_version"] == 4)]
    flows = meter_flows(packets, idle_timeout=120, bidirectional=True)
    assert len(flows) == len(ref)
    icmp = flows["proto"].isin([1, 58]).to_numpy()  # nfstream keeps no ICMP type/code: its ports are 0
    ours = pd.DataFrame({"ms": np.floor(flows["ts"] * 1000).astype(np.int64), "src": flows["srcip"],
                         "sport": np.where(icmp, 0, flows["srcport"]), "dport": np.where(icmp, 0, flows["dstport"]),
                         "pkt": flows["pkt"]})
    theirs = pd.DataFrame({"ms": (ref["ts"] // 1000).astype(np.int64),
                           "src": ip_to_uint32(ref["srcip"].to_numpy(object)),
                           "sport": ref["srcport"], "dport": ref["dstport"], "pkt": ref["pkt"]})
    key = ["ms", "src", "sport", "dport", "pkt"]
    merged = ours.merge(theirs, on=key, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    # bytes differ by design: nfstream counts link-layer frame bytes, tracesynth IP total length


def test_conservation_on_caida(caida_10k):
    packets = read_trace(caida_10k).table
    flows = meter_flows(packets)
    assert len(flows) == len(packets.drop_duplicates(["srcip", "dstip", "srcport", "dstport", "proto"]))
    assert flows["pkt"].sum() == len(packets)
    assert flows["byt"].sum() == packets["pkt_len"].astype(np.uint64).sum()
    assert (flows["ts"].diff().dropna() >= 0).all() and (flows["td"] >= 0).all()
    assert flows["ts"].min() == packets["time"].min()


def test_sample_flows():
    packets = read_trace(sample_path()).table
    assert len(meter_flows(packets)) == 139
    assert len(meter_flows(packets, bidirectional=True)) == 74
    # a tiny active timeout cuts records but never loses a packet
    cut = meter_flows(packets, active_timeout=0.05)
    assert len(cut) > 139 and cut["pkt"].sum() == 2000 and (cut["td"] <= 0.05).all()


def test_empty_and_bad_input():
    empty = meter_flows(_packets([]))
    assert len(empty) == 0 and list(empty.columns) == list(FLOW_COLUMNS)
    with pytest.raises(UserError, match="positive"):
        meter_flows(_packets([(0.0, A, B, 1, 2, 6, 40)]), idle_timeout=0)
    with pytest.raises(UserError, match="pkt_len"):
        meter_flows(pd.DataFrame({"time": [0.0], "srcip": [1], "dstip": [2], "srcport": [1], "dstport": [2],
                                  "proto": [6]}))


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=60),
       keys=st.lists(st.integers(0, 2), min_size=60, max_size=60), active=st.floats(0.5, 100))
def test_active_kernel_matches_numpy_fallback(gaps, keys, active):
    time = np.cumsum(gaps)
    new = np.r_[True, np.diff(np.asarray(keys[:len(time)])) != 0]
    expected = _active_numpy(time, new, active)
    if _active_kernel is not None:
        np.testing.assert_array_equal(np.flatnonzero(_active_kernel(time, new, active)), expected)
    starts = np.append(expected, len(time))
    for lo, hi in zip(starts[:-1], starts[1:]):  # every record fits in the active timeout
        assert time[hi - 1] - time[lo] <= active
