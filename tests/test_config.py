"""Config: presets equal NetShare's examples, YAML/JSON round trips, errors that name the key."""
from __future__ import annotations

import pytest

from tracesynth.config import config_from_dict, load_config, preset, save_config
from tracesynth.errors import ConfigError


def test_pcap_preset_matches_netshare_example():
    cfg = preset("pcap")
    assert cfg.kind == "packets" and cfg.time.column == "time"
    enc = {f.name: f.encoding for f in cfg.fields}
    assert enc == {"srcip": "bits", "dstip": "bits", "srcport": "word2vec_port", "dstport": "word2vec_port",
                   "proto": "word2vec_proto", "pkt_len": "numeric", "tos": "numeric", "id": "numeric",
                   "flag": "categorical", "off": "categorical", "ttl": "numeric", "tcp_flags": "categorical"}
    ranges = {f.name: f.range for f in cfg.fields if f.encoding == "numeric"}
    assert ranges == {"pkt_len": None, "tos": (0, 255), "id": (0, 65535), "ttl": (0, 255)}
    assert {f.name: f.top_k for f in cfg.fields if f.top_k} == {"srcport": 128, "dstport": 128}
    assert cfg.field("srcip").n_bits == 32 and cfg.word2vec.vector_size == 10 and cfg.word2vec.window == 5
    # NetShare's 10 chunks and batch 100 are the bounds of the automatic choice (flows/sizing.py)
    assert cfg.chunking.n_chunks is None and cfg.chunking.max_chunks == 10
    assert cfg.training.batch_size is None and cfg.training.max_batch_size == 100


def test_netflow_preset_matches_netshare_example():
    cfg = preset("netflow")
    assert cfg.kind == "flows" and cfg.time.column == "ts"
    assert [(f.name, f.log1p) for f in cfg.fields if f.encoding == "numeric"] == \
        [("td", True), ("pkt", True), ("byt", True)]
    assert cfg.field("label").encoding == "categorical" and cfg.model.sample_len == 10
    assert [(f.name, f.spikes) for f in cfg.fields if f.spikes] == [("pkt", 16), ("byt", 16)]  # tracesynth's change


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_round_trip(tmp_path, suffix):
    cfg = preset("netflow")
    cfg.chunking.n_chunks = 4
    path = save_config(cfg, tmp_path / f"run{suffix}")
    assert load_config(path) == cfg


def test_preset_key_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: pcap\nchunking:\n  n_chunks: 3\nflow_length:\n  max_flow_len: 50\n")
    cfg = load_config(path)
    assert cfg.chunking.n_chunks == 3 and cfg.flow_length.max_flow_len == 50 and cfg.kind == "packets"


def _bad(change):
    data = preset("pcap").model_dump(mode="json")
    change(data)
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "cfg.yaml")
    return str(info.value)


def test_unknown_key_is_named():
    msg = _bad(lambda d: d["chunking"].update(n_chunk=3))
    assert "cfg.yaml" in msg and "chunking.n_chunk" in msg


def test_impossible_values_are_named():
    assert "chunking.n_chunks" in _bad(lambda d: d["chunking"].update(n_chunks=0))
    assert "fields.5: Value error, field 'pkt_len': range must be" in _bad(lambda d: d["fields"][5].update(range=[10, 1]))
    assert "sample_len" in _bad(lambda d: d["model"].update(sample_len=7))
    assert "fields.0.n_bits" in _bad(lambda d: d["fields"][0].update(n_bits=0))
    assert "fields.11 (tcp_flags).role" in _bad(lambda d: d["fields"][11].update(role="attribute"))
    assert "fields.0 (srcip).role" in _bad(lambda d: d["fields"][0].update(role="feature"))
    assert "time.column" in _bad(lambda d: d["time"].update(column="ts"))
    assert "fields.8 (flag).choices" in _bad(lambda d: d["fields"][8].update(encoding="numeric", choices=[1]))
    assert "duplicate" in _bad(lambda d: d["fields"].append(dict(d["fields"][5])))
    assert "fields.4 (proto).top_k" in _bad(lambda d: d["fields"][4].update(top_k=8))
    assert "fields.2 (srcport).choices" in _bad(lambda d: d["fields"][2].update(top_k=0, choices=[443]))
    assert "top ports must be integers" in _bad(lambda d: d["fields"][2].update(choices=[443, "http"]))
    assert "fields.2.top_k" in _bad(lambda d: d["fields"][2].update(top_k=-1))


def test_top_port_choices_are_accepted(tmp_path):
    data = preset("pcap").model_dump(mode="json")
    data["fields"][2].update(top_k=2, choices=[443, 80])
    cfg = config_from_dict(data)
    assert cfg.field("srcport").choices == [443, 80]
    assert load_config(save_config(cfg, tmp_path / "c.yaml")) == cfg


def test_unknown_preset_and_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'pcapng'"):
        preset("pcapng")
    bad = tmp_path / "c.yaml"
    bad.write_text("chunking: [unclosed")
    with pytest.raises(ConfigError, match="c.yaml: not valid YAML"):
        load_config(bad)


# ---- model size limit (issue 14, item 5b) ---------------------------------------------------------
def test_huge_model_is_refused_before_anything_is_allocated():
    """attribute_num_units: 1e9 was OOM-killed at 23.8 GB; now one ConfigError line naming the keys."""
    msg = _bad(lambda d: d["model"].update(kind="doppelganger", attribute_num_units=1_000_000_000))
    assert msg.startswith("cfg.yaml: invalid config: model: these sizes make about ")
    assert "*_num_units" in msg and "\n" not in msg and "<root>" not in msg


def test_huge_batch_is_refused_by_the_memory_estimate():
    msg = _bad(lambda d: d["training"].update(batch_size=10_000_000))
    assert "training would need about" in msg and "training.batch_size" in msg


def test_parameter_estimate_matches_the_built_networks():
    """The estimate is the networks' real size (within 1%) for spans of the estimated widths."""
    from tracesynth.encoders.base import Span
    from tracesynth.limits import _field_width, parameter_estimate
    from tracesynth.model.dgan import DoppelGANger

    for name in ("pcap", "netflow"):
        cfg = preset(name)     # chunks unset: the estimate uses their bound, as a fit can choose at most that
        a_dim = sum(_field_width(f) for f in cfg.fields if f.role == "attribute") + 1 + 2 * (1 + cfg.chunking.max_chunks)
        d_dim = sum(_field_width(f) for f in cfg.fields if f.role == "feature") + 1
        model = DoppelGANger([Span(a_dim, "sigmoid")], [Span(d_dim, "sigmoid")], cfg.flow_length.max_flow_len,
                             cfg.model)
        real = sum(p.numel() for p in model.parameters())
        assert abs(parameter_estimate(cfg) - real) / real < 0.01, name


def test_presets_and_a_large_real_model_stay_below_the_limits():
    from tracesynth.limits import MAX_MODEL_PARAMETERS, check_model_size, parameter_estimate

    cfg = preset("pcap")
    assert parameter_estimate(cfg) < MAX_MODEL_PARAMETERS / 10
    data = cfg.model_dump(mode="json")
    data["model"].update(attribute_num_units=2048, critic_num_units=2048, attr_critic_num_units=2048)
    check_model_size(config_from_dict(data))  # 4x NetShare's widths: big, but accepted
