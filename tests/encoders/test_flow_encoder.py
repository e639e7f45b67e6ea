"""Word2vec and the FlowEncoder on real traces: exact decode of IPs, ports, protocols, categories."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsdata import shared
from tracesynth.config import preset
from tracesynth.encoders.base import Span, total_dim
from tracesynth.encoders.categorical import CategoricalEncoder
from tracesynth.encoders.flow_encoder import EncodedFlows, FlowEncoder
from tracesynth.encoders.word2vec import PortProtoEmbedding, Word2VecEncoder, sentences
from tracesynth.errors import NotFittedError, UserError
from tracesynth.flows.chunking import split_chunks
from tracesynth.io import read_trace


def _small(cfg, n_chunks=3):
    cfg.chunking.n_chunks = n_chunks
    cfg.word2vec.epochs = 2
    return cfg


@pytest.fixture(scope="module")
def caida():
    table = read_trace(shared("caida/caida-10k.pcapng")).table.iloc[:4000].reset_index(drop=True)
    cfg = _small(preset("pcap"))
    chunks = split_chunks(table, cfg)
    return cfg, chunks, FlowEncoder(cfg).fit(chunks)


def _check_round_trip(enc, chunk, iat_atol):
    encoded = enc.transform(chunk.flows, chunk.window)
    back = enc.inverse_transform(encoded, chunk.window)
    a, b = chunk.flows.attributes, back.attributes
    for col in ["srcip", "dstip", "srcport", "dstport", "proto", "starts_here"] + \
            [c for c in a if c.startswith("in_chunk_")]:
        assert np.array_equal(a[col].to_numpy(), b[col].to_numpy()), col
        assert a[col].dtype == b[col].dtype, col
    width = chunk.window[1] - chunk.window[0]
    assert np.allclose(a["flow_start"], b["flow_start"], rtol=0, atol=1e-6 * max(width, 1e-9))
    s, t = chunk.flows.series, back.series
    assert np.array_equal(s["flow_id"], t["flow_id"]) and np.array_equal(s["step"], t["step"])
    for col, field_enc in enc.feature_encoders_.items():
        if isinstance(field_enc, CategoricalEncoder):
            assert np.array_equal(s[col].to_numpy(), t[col].to_numpy()), col
        else:  # numeric: within 1e-6 relative (float32 arrays; integers round back exactly when small)
            x, y = s[col].to_numpy(np.float64), t[col].to_numpy(np.float64)
            assert np.all(np.abs(x - y) <= 1e-6 * np.maximum(np.abs(x), 1.0)), (col, np.max(np.abs(x - y) / np.maximum(x, 1)))
    assert np.allclose(s["iat"], t["iat"], rtol=1e-6, atol=iat_atol)
    return encoded


def test_pcap_round_trip_and_layout(caida):
    cfg, chunks, enc = caida
    assert enc.attribute_spans[:64] == [Span(2, "softmax")] * 64
    top = Span(129, "softmax")  # the preset's 128 top ports + "other", then the word2vec vector
    assert enc.attribute_spans[64:69] == [top, Span(10, "tanh"), top, Span(10, "tanh"), Span(10, "tanh")]
    assert enc.attribute_spans[69] == Span(1, "sigmoid")
    assert enc.attribute_spans[70:] == [Span(2, "softmax")] * (1 + 3)
    assert enc.feature_spans[0] == Span(1, "sigmoid")  # iat first
    for chunk in chunks:
        e = _check_round_trip(enc, chunk, iat_atol=1e-6 * float(enc.iat_encoder_._range()[1]))
        n, L = chunk.flows.n_flows, cfg.flow_length.max_flow_len
        assert e.attributes.shape == (n, total_dim(enc.attribute_spans)) and e.attributes.dtype == np.float32
        assert e.features.shape == (n, L, total_dim(enc.feature_spans)) and e.features.dtype == np.float32
        assert np.array_equal(e.gen_flags.sum(axis=1).astype(int), chunk.flows.lengths)
        pad = e.gen_flags == 0
        assert not e.features[pad].any()  # zero padding after the end


@pytest.mark.parametrize("name", ["ndpi/teams.pcap", "ndpi/synscan.pcap"])
def test_ndpi_round_trip(name):
    table = read_trace(shared(name)).table
    cfg = _small(preset("pcap"), n_chunks=2)
    chunks = split_chunks(table, cfg)
    enc = FlowEncoder(cfg).fit(chunks)
    for chunk in chunks:
        _check_round_trip(enc, chunk, iat_atol=1e-6 * float(enc.iat_encoder_._range()[1]))


def test_netflow_round_trip_with_labels():
    table = read_trace(shared("ugr16/ugr16-1k.csv")).table
    cfg = _small(preset("netflow"), n_chunks=2)
    chunks = split_chunks(table, cfg)
    enc = FlowEncoder(cfg).fit(chunks)
    assert enc.feature_encoders_["label"].spans[0].dim == table["label"].nunique()
    for chunk in chunks:
        _check_round_trip(enc, chunk, iat_atol=1e-6 * float(enc.iat_encoder_._range()[1]))
        back = enc.inverse_transform(enc.transform(chunk.flows, chunk.window), chunk.window).to_records()
        assert len(back) == len(chunk.records)


def test_soft_values_and_gen_flags(caida):
    cfg, chunks, enc = caida
    chunk = chunks[0]
    e = enc.transform(chunk.flows, chunk.window)
    rng = np.random.default_rng(0)
    soft = EncodedFlows(e.attributes * 0.8 + rng.normal(0, 1e-3, e.attributes.shape).astype(np.float32), np.clip(e.features + rng.normal(0, 1e-3, e.features.shape), -1, 1),
                        e.gen_flags * 0.9 + 0.05, e.lengths)
    back = enc.inverse_transform(soft, chunk.window)
    assert np.array_equal(back.attributes["dstip"], chunk.flows.attributes["dstip"])
    assert np.array_equal(back.attributes["dstport"], chunk.flows.attributes["dstport"])
    assert np.array_equal(back.lengths, chunk.flows.lengths)
    flags = np.ones_like(e.gen_flags)
    flags[:, 3] = 0.0  # everything ends at the first 0 flag
    flags[0, 0] = 0.0  # ... but keeps at least one record
    short = enc.inverse_transform(EncodedFlows(e.attributes, e.features, flags, e.lengths), chunk.window)
    assert short.lengths[0] == 1 and (short.lengths[1:] == 3).all()
    assert len(short.to_records()) == int(short.lengths.sum())


def test_decode_of_packed_flows_equals_inverse_transform(caida):
    """`decode` (packed records, as generation gives them) and `inverse_transform` (padded) agree, and
    real flows packed come back with their lengths and 5-tuples."""
    cfg, chunks, enc = caida
    chunk = chunks[1]
    e = enc.transform(chunk.flows, chunk.window)
    packed = e.features[e.gen_flags.astype(bool)]                       # flow after flow, step order
    lengths = e.gen_flags.sum(1).astype(np.int64)
    a = enc.decode(e.attributes, packed, lengths, chunk.window)
    b = enc.inverse_transform(e, chunk.window)
    pd.testing.assert_frame_equal(a.attributes, b.attributes)
    pd.testing.assert_frame_equal(a.series, b.series)
    np.testing.assert_array_equal(a.lengths, chunk.flows.lengths)
    for col in ("srcip", "dstip", "srcport", "dstport", "proto"):
        np.testing.assert_array_equal(a.attributes[col].to_numpy(), chunk.flows.attributes[col].to_numpy())
    with pytest.raises(ValueError, match="records"):
        enc.decode(e.attributes, packed[1:], lengths, chunk.window)


def test_save_load_gives_same_encoding(caida, tmp_path):
    cfg, chunks, enc = caida
    enc.save(tmp_path / "enc")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["encoder.json", "word2vec.kv"]
    clone = FlowEncoder.load(tmp_path / "enc")
    for chunk in chunks:
        a, b = enc.transform(chunk.flows, chunk.window), clone.transform(chunk.flows, chunk.window)
        assert np.array_equal(a.attributes, b.attributes) and np.array_equal(a.features, b.features)
    assert clone.attribute_spans == enc.attribute_spans and clone.feature_spans == enc.feature_spans


def test_pretrained_word2vec_for_dp_mode(caida, tmp_path):
    cfg, chunks, enc = caida
    enc.embedding_.save(tmp_path / "public.kv")
    dp = cfg.model_copy(deep=True)
    dp.word2vec.pretrained = str(tmp_path / "public.kv")
    loaded = FlowEncoder(dp).fit(chunks[:1])
    v = chunks[0].flows.attributes["srcport"].to_numpy()
    vectors = slice(-cfg.word2vec.vector_size, None)  # the top-port slots follow the public model's order
    assert np.array_equal(loaded.attribute_encoders_["srcport"].transform(v)[:, vectors],
                          enc.attribute_encoders_["srcport"].transform(v)[:, vectors])


def test_word2vec_typed_tokens_deterministic_and_exact():
    sp = np.array([6, 443, 443, 53, 80], np.uint16)
    dp = np.array([443, 6, 51000, 51001, 52000], np.uint16)
    pr = np.array([6, 6, 6, 17, 6], np.uint8)
    assert sentences(sp, dp, pr)[0] == ["port:6", "port:443", "proto:6"]
    a = PortProtoEmbedding(seed=7).fit(sp, dp, pr)
    b = PortProtoEmbedding(seed=7).fit(sp, dp, pr)
    assert np.array_equal(a.wv_.vectors, b.wv_.vectors)
    ports = Word2VecEncoder(a, "port").fit()
    protos = Word2VecEncoder(a, "proto").fit()
    assert set(protos.values_.tolist()) == {6, 17} and 6 in ports.values_
    assert not np.array_equal(ports.transform(np.array([6])), protos.transform(np.array([6])))
    allp = np.r_[sp, dp]
    assert np.array_equal(ports.inverse_transform(ports.transform(allp)), allp)
    assert np.allclose(np.linalg.norm(ports.transform(allp), axis=1), 1, atol=1e-6)
    with pytest.raises(UserError, match="not in the word2vec vocabulary"):
        ports.transform(np.array([8080]))
    near = Word2VecEncoder(a, "port", unknown="nearest_value").fit()
    assert near.inverse_transform(near.transform(np.array([444]))).tolist() == [443]


def test_not_fitted_errors():
    enc = FlowEncoder(preset("pcap"))
    with pytest.raises(NotFittedError):
        enc.attribute_spans
    with pytest.raises(NotFittedError):
        Word2VecEncoder(PortProtoEmbedding(), "port").fit()


def test_unknown_field_and_uncapped_flows_are_user_errors(caida):
    cfg, chunks, enc = caida
    bad = cfg.model_copy(deep=True)
    bad.fields[-1].name = "ecn"
    with pytest.raises(UserError, match="'ecn'"):
        FlowEncoder(bad).fit(chunks)
    from tracesynth.flows.table import FlowTable

    flows = chunks[0].flows
    series = flows.series.copy()
    series.loc[series.index[-1], "step"] = cfg.flow_length.max_flow_len  # one record past the cap
    with pytest.raises(UserError, match="max_flow_len"):
        enc.transform(FlowTable(flows.kind, flows.attributes, series), chunks[0].window)


def test_word2vec_sample_keeps_every_value():
    table = read_trace(shared("caida/caida-10k.pcapng")).table
    sp, dp, pr = (table[c].to_numpy() for c in ("srcport", "dstport", "proto"))
    emb = PortProtoEmbedding(epochs=1, seed=3, max_sentences=1000).fit(sp, dp, pr)
    ports = Word2VecEncoder(emb, "port").fit()
    assert set(ports.values_.tolist()) == set(np.r_[sp, dp].tolist())
    assert np.array_equal(ports.inverse_transform(ports.transform(sp)), sp)
    again = PortProtoEmbedding(epochs=1, seed=3, max_sentences=1000).fit(sp, dp, pr)
    assert np.array_equal(again.wv_.vectors, emb.wv_.vectors)
