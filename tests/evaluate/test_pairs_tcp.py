"""Known values of the 2-way marginal distance and the TCP consistency metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracesynth.evaluate.pairs import fit_binnings, pair_tv
from tracesynth.evaluate.tcp import bigram_jsd, fin_rst_close_share, flag_bigrams, syn_open_share, tcp_flows
from tracesynth.schema import PACKET_COLUMNS


def packets(**cols) -> pd.DataFrame:
    """A packet table with the given columns (canonical dtypes), the others zero, time = row number."""
    n = len(next(iter(cols.values())))
    base = {c: np.zeros(n, dtype=d) for c, d in PACKET_COLUMNS.items()}
    base.update({c: np.asarray(v).astype(PACKET_COLUMNS[c]) for c, v in cols.items()})
    if "time" not in cols:
        base["time"] = np.arange(n, dtype=float)
    return pd.DataFrame(base)


def test_pair_tv_sees_a_broken_link_that_marginals_keep():
    # reference: proto 6 always with port 80, proto 17 with port 53; candidate: the same marginals, swapped
    ref = packets(proto=[6, 6, 17, 17], dstport=[80, 80, 53, 53])
    swapped = packets(proto=[6, 6, 17, 17], dstport=[53, 53, 80, 80])
    bins = fit_binnings(ref, "packets")
    assert pair_tv(ref, ref, bins)["dstport~proto"] == 0.0
    assert pair_tv(ref, swapped, bins)["dstport~proto"] == pytest.approx(1.0)  # disjoint joint support
    half = packets(proto=[6, 6, 17, 17], dstport=[80, 53, 80, 53])  # independent: each cell 1/4
    assert pair_tv(ref, half, bins)["dstport~proto"] == pytest.approx(0.5)


def test_pair_bins_come_from_the_reference_only():
    ref = packets(srcip=[0x0A000001] * 4, dstport=[80, 80, 443, 443], pkt_len=[40, 60, 1000, 1500])
    bins = {b.name: b for b in fit_binnings(ref, "packets")}
    assert bins["srcip/8"].values.tolist() == [10] and bins["srcip/24"].values.tolist() == [0x0A0000]
    cand = packets(srcip=[0x0B000001, 0x0A000001], dstport=[22, 80], pkt_len=[40, 1500])
    assert bins["srcip/8"].codes(cand).tolist() == [1, 0]  # 11.x is "other", 10.x the top value
    assert bins["dstport"].codes(cand).tolist() == [2, 0]  # 22 unseen in the reference: "other"
    assert bins["pkt_len"].codes(cand).min() == 0 and bins["pkt_len"].codes(cand).max() == bins["pkt_len"].n_bins - 1
    names = set(pair_tv(ref, cand, list(bins.values())))
    assert "srcip/8~srcip/16" not in names and "srcip/8~dstport" in names  # one source's prefixes not paired


def test_tcp_opening_closing_and_bigrams():
    syn, ack, fin, rst = 0x02, 0x10, 0x11, 0x04
    # flow A (port 1): SYN, ACK, FIN; flow B (port 2): ACK, RST; one UDP packet ignored
    t = packets(srcport=[1, 2, 1, 2, 1, 9], proto=[6, 6, 6, 6, 6, 17], tcp_flags=[syn, ack, ack, rst, fin, 0])
    flows = tcp_flows(t)
    assert syn_open_share(flows) == 0.5 and fin_rst_close_share(flows) == 1.0
    assert sorted(flag_bigrams(flows).tolist()) == sorted([syn * 256 + ack, ack * 256 + fin, ack * 256 + rst])
    assert bigram_jsd(flows, flows) == 0.0
    only_acks = tcp_flows(packets(srcport=[1, 1], proto=[6, 6], tcp_flags=[ack, ack]))
    assert bigram_jsd(flows, only_acks) == pytest.approx(np.log(2))  # disjoint bigram sets
    assert np.isnan(syn_open_share(tcp_flows(packets(proto=[17, 17]))))
