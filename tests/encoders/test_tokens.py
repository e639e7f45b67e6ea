"""Tokens of the autoregressive model: exact round trips on real traces, spikes and bins, key vocabularies."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tracesynth import read_trace
from tracesynth.config import preset
from tracesynth.encoders.flow_tokens import FlowTokenizer
from tracesynth.encoders.tokens import KeyTokens, SpikeRule, SpikyBins, top_values
from tracesynth.flows.table import FlowTable


@pytest.mark.parametrize("name,kind", [("caida_10k", "pcap"), ("ugr16_1k", "netflow")])
def test_tokenizer_round_trip_is_exact_on_real_traces(name, kind, request):
    """Every value of a real trace is a spike, a category or a top key here, or drawn from its bin: the
    tokenizer's inverse gives back every categorical/key field exactly, numeric ones inside their bin."""
    table = read_trace(request.getfixturevalue(name)).table
    cfg = preset(kind)
    flows = FlowTable.from_records(table, cfg.flow_length.max_flow_len)
    tok = FlowTokenizer(cfg).fit(flows)
    tokens = tok.transform(flows)
    assert tokens.header.shape == (flows.n_flows, len(tok.header_vocab))
    assert (tokens.header < np.array(tok.header_vocab)).all() and (tokens.records < np.array(tok.record_vocab)).all()
    back = tok.inverse(tokens.header, tokens.records, tokens.lengths, np.random.default_rng(0))
    for col in ("srcip", "dstip", "srcport", "dstport", "proto"):
        assert (back.attributes[col].to_numpy() == flows.attributes[col].to_numpy()).all(), col
    assert (back.lengths == flows.lengths).all()
    again = tok.transform(back)          # values drawn inside a bin fall back into the same bin
    assert (again.records[:, 1:] == tokens.records[:, 1:]).all()
    restored = FlowTokenizer.from_state(cfg, tok.to_state())
    assert (restored.transform(flows).header == tokens.header).all()


def test_spikes_keep_the_real_pkt_len_values(caida_10k):
    """caida-10k pkt_len: 1500 (30%), 52, 40 are spikes, so they come back exactly, never smeared."""
    values = read_trace(caida_10k).table["pkt_len"].to_numpy()
    bins = SpikyBins(SpikeRule(32, 0.005), 32, integer=True).fit(values)
    assert {1500.0, 52.0, 40.0} <= set(bins.spikes_[:5].tolist())
    decoded = bins.inverse(bins.transform(values), np.random.default_rng(1))
    for v in (1500, 52, 40):
        assert (decoded == v).mean() == pytest.approx((values == v).mean())


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=300), st.integers(0, 8), st.booleans())
def test_spiky_bins_decode_inside_the_token(values, spikes, log1p):
    v = np.asarray(values)
    bins = SpikyBins(SpikeRule(spikes, 0.01), 8, log1p=log1p).fit(v)
    tokens = bins.transform(v)
    assert tokens.min() >= 0 and tokens.max() < bins.n_tokens
    decoded = bins.inverse(tokens, np.random.default_rng(0))
    assert (bins.transform(decoded) == tokens).all()


def test_top_values_need_their_share():
    values = np.array([5] * 50 + [7] * 3 + list(range(100, 147)))
    assert top_values(values, SpikeRule(4, 0.02)).tolist() == [5, 7]


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=200), st.integers(0, 20))
def test_key_tokens_round_trip_any_address(values, top_k):
    keys = KeyTokens(4, top_k, min_flows=2).fit(np.asarray(values))
    cls, parts, used = keys.transform(np.asarray(values))
    assert (keys.inverse(cls, parts) == np.asarray(values)).all()
    assert (used == (cls == len(keys.top_))).all()


def test_rare_keys_get_no_token():
    """A port seen in one or two flows (an ephemeral client port) is learnt as bytes, not replayed."""
    ports = np.array([443] * 10 + [80] * 3 + [51353, 51353, 40000])
    keys = KeyTokens(2, 128, min_flows=3).fit(ports)
    assert keys.top_.tolist() == [443, 80]
