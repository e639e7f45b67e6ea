"""Spiky numeric encoding (`spikes`): one-hot slots for a numeric field's most frequent exact values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tsdata import shared
from tracesynth.config import config_from_dict, preset
from tracesynth.encoders.base import Span
from tracesynth.encoders.flow_encoder import FlowEncoder
from tracesynth.encoders.numeric import NumericEncoder, SpikyNumericEncoder
from tracesynth.encoders.tokens import SpikeRule, top_values
from tracesynth.errors import ConfigError
from tracesynth.flows.table import FlowTable
from tracesynth.io import read_trace

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def caida():
    return read_trace(shared("caida/caida-10k.pcapng")).table


@pytest.fixture(scope="module")
def ugr16():
    return read_trace(shared("ugr16/ugr16-1k.csv")).table


def _round_trip(values: np.ndarray, log1p: bool):
    enc = SpikyNumericEncoder(NumericEncoder(log1p, name="f"), SpikeRule(16, 0.005)).fit(values)
    encoded = enc.transform(values).astype(np.float32)  # as the FlowEncoder stores it
    return enc, encoded, enc.inverse_transform(encoded)


@pytest.mark.parametrize("trace,column,log1p,first", [
    ("caida", "pkt_len", False, 1500), ("caida", "ttl", False, 58), ("caida", "tos", False, 0),
    ("ugr16", "pkt", True, 31), ("ugr16", "byt", True, 992), ("ugr16", "td", True, 299.992)])
def test_round_trip_on_real_fields(trace, column, log1p, first, request):
    values = request.getfixturevalue(trace)[column].to_numpy()
    enc, encoded, back = _round_trip(values, log1p)
    spikes = top_values(values, SpikeRule(16, 0.005))
    np.testing.assert_array_equal(enc.spikes_, spikes)
    assert enc.spikes_[0] == first                      # the most frequent value owns slot 0
    k = len(spikes)
    assert enc.spans == [Span(k + 1, "softmax"), Span(1, "sigmoid")]
    assert encoded.shape == (len(values), k + 2) and np.all(encoded[:, :k + 1].sum(axis=1) == 1)
    is_spike = np.isin(values, spikes)
    assert np.array_equal(encoded[:, k] == 1, ~is_spike)  # the last slot is "other"
    assert back.dtype == values.dtype
    np.testing.assert_array_equal(back[is_spike], values[is_spike])     # spikes: exact
    plain = NumericEncoder(log1p, name="f").fit(values)                  # the rest: as the numeric column
    expected = plain.inverse_transform(plain.transform(values).astype(np.float32))
    np.testing.assert_array_equal(back[~is_spike], expected[~is_spike])
    rel = np.abs(back.astype(np.float64) - values) / np.maximum(np.abs(values.astype(np.float64)), 1.0)
    assert rel.max() < 1e-5


def test_soft_decoding_argmax_then_numeric(caida):
    values = caida["pkt_len"].to_numpy()
    enc = SpikyNumericEncoder(NumericEncoder(name="pkt_len"), SpikeRule(3, 0.005)).fit(values)  # 1500, 52, 40
    x = enc.transform(np.array([1500, 52, 700], dtype=values.dtype))
    soft = x.copy()
    soft[:, :4] = [[0.1, 0.6, 0.2, 0.1], [0.2, 0.1, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]
    soft[1, 4] = x[2, 4]  # "other" decodes the numeric column (700), whatever value was encoded
    assert enc.inverse_transform(soft).tolist() == [52, 700, 1500]


def test_fixed_spike_values_state_and_no_spikes():
    values = np.array([5.0, 5.0, 7.0, 9.5])
    fixed = SpikyNumericEncoder(NumericEncoder(name="f"), SpikeRule(4), spike_values=[9.5, 1.0]).fit(values)
    assert fixed.spikes_.tolist() == [9.5, 1.0]        # counted on nothing: the public values, in order
    clone = SpikyNumericEncoder.from_state(fixed.state())
    np.testing.assert_array_equal(clone.transform(values), fixed.transform(values))
    none = SpikyNumericEncoder(NumericEncoder(name="f"), SpikeRule(4, 0.9)).fit(values)  # no value has 90%
    assert none.spans == [Span(1, "sigmoid")] and none.transform(values).shape == (4, 1)
    np.testing.assert_allclose(none.inverse_transform(none.transform(values)), values)


def _with_spikes(name: str, **changes) -> dict:
    """The preset as a DoppelGANger config (the encoding is DoppelGANger's) with spikes on some fields."""
    data = preset(name).model_dump(mode="json")
    data["model"]["kind"] = "doppelganger"
    for f in data["fields"]:
        f.update(changes.get(f["name"], {}))
    return data


def test_config_refuses_spikes_outside_numeric_fields():
    with pytest.raises(ConfigError, match=r"fields.8 \(flag\).spikes: spikes and spike_values apply to numeric "
                                          r"fields only \(encoding is categorical\); set spikes to 0"):
        config_from_dict(_with_spikes("pcap", flag={"spikes": 4}))
    with pytest.raises(ConfigError, match="spike_values needs spikes > 0"):
        config_from_dict(_with_spikes("pcap", ttl={"spike_values": [64]}))
    with pytest.raises(ConfigError, match="at most `spikes`"):
        config_from_dict(_with_spikes("pcap", ttl={"spikes": 1, "spike_values": [64, 128]}))
    with pytest.raises(ConfigError, match="spikes"):
        config_from_dict(_with_spikes("pcap", ttl={"spikes": -1}))
    cfg = config_from_dict(_with_spikes("pcap", ttl={"spikes": 8, "spike_min_share": 0.01}))
    assert cfg.field("ttl").spikes == 8 and cfg.field("ttl").spike_min_share == 0.01


def test_dp_mode_takes_spikes_from_public_values_only():
    from tracesynth.model.privacy import check_dp_config
    from tracesynth.pipeline.private import dp_ready_preset

    cfg = config_from_dict(_with_spikes("netflow", pkt={"spikes": 8}, byt={"spikes": 8, "spike_values": [992]}))
    with pytest.raises(ConfigError) as info:
        check_dp_config(cfg)
    assert "fields.pkt.spikes is set without spike_values" in str(info.value)
    assert "fields.byt.spikes" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        check_dp_config(cfg, public_trace="public.csv")  # counted on the public trace: fine
    assert "spikes" not in str(info.value)
    ready = dp_ready_preset(cfg, None)
    assert ready.field("pkt").spikes == 0 and ready.field("byt").spike_values == [992.0]


def test_flow_encoder_layout_and_save_load(caida, tmp_path):
    cfg = config_from_dict(_with_spikes("pcap", pkt_len={"spikes": 16}, ttl={"spikes": 16}, tos={"spikes": 16}))
    cfg.word2vec.epochs = 1
    table = caida.iloc[:3000].reset_index(drop=True)
    flows = FlowTable.from_records(table, max_flow_len=100)
    enc = FlowEncoder(cfg).fit(flows)
    window = (float(table["time"].min()), float(table["time"].max()))
    encoded = enc.transform(flows, window)
    enc.save(tmp_path / "run")
    clone = FlowEncoder.load(tmp_path / "run")
    assert clone.feature_spans == enc.feature_spans
    assert len(enc.feature_spans) == len(preset("pcap").fields) - 5 + 1 + 3  # iat, features, + 3 spike spans
    back = clone.inverse_transform(encoded, window).series
    for col in ("pkt_len", "ttl", "tos"):
        np.testing.assert_array_equal(back[col].to_numpy(), flows.series[col].to_numpy())


def test_tiny_doppelganger_fit_generates_exact_spikes(caida, tmp_path):
    """Trained briefly on a real slice, the model generates pkt_len/ttl/tos spikes exactly: each record
    whose spike slot won decodes to that exact value (so every spike value comes out exactly as often as
    the generator chose it), the others decode the numeric column as the plain encoding does."""
    from tracesynth.model.dgan import DoppelGANger
    from tracesynth.model.trainer import train

    from model._tiny import tiny_model_cfg, tiny_training_cfg

    cfg = config_from_dict(_with_spikes("pcap", pkt_len={"spikes": 8}, ttl={"spikes": 8}, tos={"spikes": 8}))
    cfg.flow_length.max_flow_len, cfg.word2vec.epochs = 20, 1
    cfg.model = tiny_model_cfg(sample_len=5)
    table = caida.iloc[:2000].reset_index(drop=True)
    flows = FlowTable.from_records(table, max_flow_len=20)
    encoder = FlowEncoder(cfg).fit(flows)
    window = (float(table["time"].min()), float(table["time"].max()))
    model = DoppelGANger(encoder.attribute_spans, encoder.feature_spans, 20, cfg.model, seed=0)
    train(model, encoder.transform(flows, window), tiny_training_cfg(batch_size=64), epochs=3, seed=0,
          checkpoint_dir=tmp_path / "ckpt")
    attrs, rows, lengths = model.generate(300, torch.Generator().manual_seed(1))
    series = encoder.decode(attrs, rows, lengths, window).series
    col, chosen = 1, 0  # after iat
    for name, enc in encoder.feature_encoders_.items():
        width = sum(s.dim for s in enc.spans)
        if isinstance(enc, SpikyNumericEncoder):
            k = len(enc.spikes_)
            slots = np.argmax(rows[:, col:col + k + 1], axis=1)
            decoded = series[name].to_numpy()
            won = slots < k
            chosen += int(won.sum())
            np.testing.assert_array_equal(decoded[won], enc.spikes_[slots[won]].astype(decoded.dtype))
            np.testing.assert_array_equal(decoded[~won], enc.numeric.inverse_transform(rows[~won, col + k + 1]))
        col += width
    assert col == rows.shape[1] and chosen > 0  # which fields' spikes a 3-epoch model picks varies
