"""Hybrid port encoding (`top_k`): one-hot slots for the frequent ports, word2vec for the rest."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tsdata import shared
from tracesynth.config import preset
from tracesynth.encoders.base import Span
from tracesynth.encoders.flow_encoder import FlowEncoder
from tracesynth.encoders.word2vec import PortProtoEmbedding, Word2VecEncoder
from tracesynth.flows.chunking import split_chunks
from tracesynth.io import read_trace

_RNG = np.random.default_rng(11)
#: a skewed port mix: 443 and 80 dominate, 40 rare ports, many ephemeral ports
SRC = np.r_[np.full(300, 443), np.full(200, 80), np.full(50, 53), _RNG.integers(1000, 1040, 150)].astype(np.uint16)
DST = _RNG.integers(49152, 49252, len(SRC)).astype(np.uint16)
PROTO = np.where(SRC == 53, 17, 6).astype(np.uint8)
EMB = PortProtoEmbedding(epochs=2, seed=5).fit(SRC, DST, PROTO)
KNOWN = np.unique(np.r_[SRC, DST]).astype(np.int64)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.lists(st.sampled_from(KNOWN.tolist()), min_size=1, max_size=80))
def test_round_trip_exact_for_seen_ports(top_k, ports):
    enc = Word2VecEncoder(EMB, "port", top_k=top_k).fit(SRC)
    values = np.array(ports, dtype=np.int64)
    x = enc.transform(values)
    k = len(enc.top_values_)
    assert k == min(top_k, len(np.unique(SRC)))
    assert enc.spans == [Span(k + 1, "softmax"), Span(EMB.vector_size, "tanh")]
    assert x.shape == (len(values), k + 1 + EMB.vector_size) and x.dtype == np.float32
    assert np.all(x[:, :k + 1].sum(axis=1) == 1)
    is_top = np.isin(values, enc.top_values_)
    assert np.array_equal(x[:, k] == 1, ~is_top)  # the last slot is "other"
    assert np.array_equal(enc.inverse_transform(x), values)


def test_top_ports_are_the_most_frequent_by_records():
    enc = Word2VecEncoder(EMB, "port", top_k=3).fit(SRC)
    assert enc.top_values_.tolist() == [443, 80, 53]
    flows = np.array([443, 80, 53, 1000])
    by_records = Word2VecEncoder(EMB, "port", top_k=2).fit(flows, weights=np.array([1, 5, 9, 2]))
    assert by_records.top_values_.tolist() == [53, 80]
    ties = Word2VecEncoder(EMB, "port", top_k=2).fit(np.array([1001, 1000, 1002]))
    assert ties.top_values_.tolist() == [1000, 1001]  # equal counts: lower port first


def test_configured_choices_and_public_model_order():
    chosen = Word2VecEncoder(EMB, "port", top_k=2, top_choices=[80, "22"]).fit(SRC)
    assert chosen.top_values_.tolist() == [80, 22]
    public = Word2VecEncoder(EMB, "port", top_k=2).fit(None)  # DP mode: the model's frequency order
    assert public.top_values_.tolist() == [443, 80]


def test_soft_decoding_argmax_then_nearest_non_top():
    enc = Word2VecEncoder(EMB, "port", top_k=2).fit(SRC)  # 443, 80
    x = enc.transform(np.array([443, 53, 1005]))
    soft = x.copy()
    soft[:, :3] = [[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]
    soft[0, 3:] = enc.transform(np.array([80]))[0, 3:]  # the vector is ignored for a top slot
    assert enc.inverse_transform(soft)[:2].tolist() == [443, 53]
    other = x[:1].copy()
    other[0, :3] = [0, 0, 1]  # "other" with 443's own vector: never decodes to a top port
    decoded = enc.inverse_transform(other)[0]
    assert decoded not in (443, 80) and decoded in KNOWN


def test_top_k_zero_is_the_plain_word2vec_encoding():
    plain = Word2VecEncoder(EMB, "port").fit()
    zero = Word2VecEncoder(EMB, "port", top_k=0).fit(SRC)
    assert zero.spans == plain.spans == [Span(EMB.vector_size, "tanh")]
    assert np.array_equal(zero.transform(KNOWN), plain.unit_vectors_[np.searchsorted(plain.values_, KNOWN)])
    q = np.random.default_rng(0).normal(size=(200, EMB.vector_size)).astype(np.float32)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    assert np.array_equal(zero.inverse_transform(q), plain.values_[np.argmax(qn @ plain.unit_vectors_.T, axis=1)])


def test_flow_encoder_layout_save_load_and_dp_order(tmp_path):
    table = read_trace(shared("caida/caida-10k.pcapng")).table.iloc[:3000].reset_index(drop=True)
    cfg = preset("pcap")
    cfg.chunking.n_chunks, cfg.word2vec.epochs = 2, 1
    chunks = split_chunks(table, cfg)
    enc = FlowEncoder(cfg).fit(chunks)
    sport = enc.attribute_encoders_["srcport"]
    assert enc.attribute_spans[64:67] == [Span(129, "softmax"), Span(10, "tanh"), Span(129, "softmax")]
    packets = np.bincount(table["srcport"].to_numpy(), minlength=65536)
    assert sport.top_values_[0] == np.argmax(packets) and len(sport.top_values_) == 128
    assert set(sport.top_values_.tolist()) >= set(np.flatnonzero(packets >= np.sort(packets)[-5]).tolist())
    enc.save(tmp_path / "run")
    clone = FlowEncoder.load(tmp_path / "run")
    assert np.array_equal(clone.attribute_encoders_["srcport"].top_values_, sport.top_values_)
    for chunk in chunks:
        a, b = enc.transform(chunk.flows, chunk.window), clone.transform(chunk.flows, chunk.window)
        assert np.array_equal(a.attributes, b.attributes)
        back = clone.inverse_transform(a, chunk.window).attributes
        for col in ("srcport", "dstport"):
            assert np.array_equal(back[col].to_numpy(), chunk.flows.attributes[col].to_numpy())
    enc.embedding_.save(tmp_path / "public.kv")
    dp = cfg.model_copy(deep=True)
    dp.word2vec.pretrained = str(tmp_path / "public.kv")
    public = FlowEncoder(dp).fit(chunks[:1]).attribute_encoders_["srcport"]
    order = [int(k[5:]) for k in enc.embedding_.wv_.index_to_key if k.startswith("port:")][:128]
    assert public.top_values_.tolist() == order
