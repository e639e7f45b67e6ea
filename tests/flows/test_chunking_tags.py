"""Chunking and NetShare flow tags on a hand-made table whose answer is known, and on real traces."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tsdata import shared
from tracesynth.config import preset
from tracesynth.flows.chunking import chunk_report, chunk_windows, split_chunks
from tracesynth.flows.summary import flow_summary
from tracesynth.io import read_trace


def _packets(rows) -> pd.DataFrame:
    """rows: (time, srcip); every packet otherwise identical (one flow per srcip)."""
    t, src = zip(*rows)
    n = len(t)
    return pd.DataFrame({"time": np.array(t, float), "srcip": src, "dstip": 9, "srcport": 1234, "dstport": 80,
                         "proto": 6, "pkt_len": 60, "tos": 0, "id": np.arange(n), "flag": 2, "off": 0,
                         "ttl": 64, "tcp_flags": 16})


def _config(n_chunks=4, cap=100, mode="fixed_time"):
    cfg = preset("pcap")
    cfg.chunking.n_chunks = n_chunks
    cfg.chunking.mode = mode
    cfg.model.sample_len = 1
    cfg.flow_length.max_flow_len = cap
    return cfg


# windows of [0, 40] in 4 chunks: [0,10) [10,20) [20,30) [30,40]
# flow A (srcip 1): t=0, 5, 25  -> chunks 0 and 2
# flow B (srcip 2): t=12, 35, 40 -> chunks 1 and 3 (40 is the last record: inclusive last window)
# flow C (srcip 3): t=21        -> chunk 2 only
HAND = [(0, 1), (5, 1), (25, 1), (12, 2), (35, 2), (40, 2), (21, 3)]


def test_fixed_time_windows_and_inclusive_last():
    chunk, edges = chunk_windows(np.array([t for t, _ in HAND], float), _config())
    assert edges.tolist() == [0, 10, 20, 30, 40]
    assert chunk.tolist() == [0, 0, 2, 1, 3, 3, 2]


def test_tags_have_netshare_v2_semantics():
    chunks = split_chunks(_packets(HAND), _config())
    got = {}
    for c in chunks:
        for row in c.flows.attributes.itertuples():
            got[(c.index, row.srcip)] = (row.starts_here, row.in_chunk_0, row.in_chunk_1, row.in_chunk_2,
                                         row.in_chunk_3)
    assert got == {
        (0, 1): (1, 1, 0, 1, 0),
        (2, 1): (0, 1, 0, 1, 0),  # continuation of A: starts_here 0, membership bits still set
        (1, 2): (1, 0, 1, 0, 1),
        (3, 2): (0, 0, 1, 0, 1),
        (2, 3): (1, 0, 0, 1, 0),
    }
    for c in chunks:
        tags = c.flows.attributes[["starts_here", "in_chunk_0", "in_chunk_1", "in_chunk_2", "in_chunk_3"]]
        assert (tags.dtypes == np.uint8).all()
        assert (c.flows.attributes[f"in_chunk_{c.index}"] == 1).all()  # a flow is always in its own chunk
    assert [c.window for c in chunks] == [(0, 10), (10, 20), (20, 30), (30, 40)]
    # a flow re-entering a chunk starts again with iat 0 at its first record in that chunk
    a2 = chunks[2].flows
    assert a2.series.loc[a2.series.flow_id == a2.attributes.index[a2.attributes.srcip == 1][0], "iat"].tolist() == [0]


def test_empty_windows_give_empty_chunks():
    chunks = split_chunks(_packets([(0, 1), (1, 1), (100, 2)]), _config(n_chunks=5))
    assert [len(c.records) for c in chunks] == [2, 0, 0, 0, 1]
    assert chunks[2].flows.n_flows == 0 and "in_chunk_4" in chunks[2].flows.attributes


def test_fixed_size_gives_equal_counts():
    table = _packets([(float(i) ** 2, i % 3) for i in range(12)])
    chunks = split_chunks(table, _config(n_chunks=4, mode="fixed_size"))
    assert [len(c.records) for c in chunks] == [3, 3, 3, 3]
    assert chunks[1].window == (9.0, 36.0) and chunks[3].window == (81.0, 121.0)


def test_cap_report_and_no_record_lost_on_caida():
    table = read_trace(shared("caida/caida-10k.pcapng")).table
    cfg = _config(n_chunks=10, cap=5)
    chunks = split_chunks(table, cfg)
    report = chunk_report(chunks)
    assert sum(report["records_per_chunk"]) == len(table)
    assert sum(int(c.flows.lengths.sum()) for c in chunks) == len(table)
    assert all(c.flows.lengths.max() <= 5 for c in chunks if c.flows.n_flows)
    assert report["flows_split"] == sum(int((c.flows.attributes.groupby(
        ["srcip", "dstip", "srcport", "dstport", "proto"])["segment"].max() > 0).sum()) for c in chunks)
    assert report["flows_split"] > 0
    rebuilt = pd.concat([c.flows.to_records() for c in chunks]).sort_values("time", kind="stable")
    assert np.array_equal(rebuilt["time"].to_numpy(), np.sort(table["time"].to_numpy()))


def test_flow_summary_on_caida():
    table = read_trace(shared("caida/caida-10k.pcapng")).table
    s = flow_summary(table, preset("pcap"))
    assert s["flows"] == 3149 and s["records"] == 10000
    assert len(s["flows_per_chunk"]) == 10
    assert sum(s["flows_per_chunk"]) >= 3149 + s["flows_spanning_chunks"]  # spanning flows count per chunk
    assert 0 < s["flows_spanning_chunks"] < s["flows"]
    assert s["flow_length_percentiles"]["p100"] == 347
    assert s["flows_over_cap"] == 8


def test_flow_summary_counts_hand_table():
    s = flow_summary(_packets(HAND), _config(cap=2))
    assert s["flows"] == 3
    assert s["flows_per_chunk"] == [1, 1, 2, 1]
    assert s["flows_spanning_chunks"] == 2
    assert s["flows_over_cap"] == 2 and s["extra_samples_from_split"] == 2
