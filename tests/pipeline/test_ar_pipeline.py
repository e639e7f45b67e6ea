"""The autoregressive model through the pipeline and the CLI on real slices, tiny settings: exact counts,
same seed same output, save/load, resume, both models behind the same `Synthesizer` calls."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tracesynth import read_trace
from tracesynth.cli import main
from tracesynth.config import config_from_dict, preset
from tracesynth.pipeline.synthesizer import Synthesizer
from tracesynth.schema import columns_for


def tiny_ar(kind: str, **ar):
    d = preset(kind).model_dump(mode="json")
    d["model"]["kind"] = "ar"
    d["model"]["ar"].update(hidden=16, max_epochs=2, **ar)
    return config_from_dict(d)


@pytest.mark.parametrize("name,kind", [("caida_1k", "pcap"), ("ugr16_1k", "netflow")])
def test_fit_save_load_sample(name, kind, request, tmp_path):
    table = read_trace(request.getfixturevalue(name)).table
    synth = Synthesizer(tiny_ar(kind)).fit(table, run_dir=tmp_path / "run")
    assert synth.manifest["model"] == "ar" and synth.manifest["ar"]["epochs"] == 2
    synth.save(tmp_path / "run")
    loaded = Synthesizer.load(tmp_path / "run")
    a = loaded.sample(count=777, seed=3)
    assert len(a) == 777 and list(a.columns[:len(columns_for(table_kind := synth.config.kind))]) == list(columns_for(table_kind))
    pd.testing.assert_frame_equal(a, Synthesizer.load(tmp_path / "run").sample(count=777, seed=3))
    assert not a.equals(loaded.sample(count=777, seed=4))
    time_col = "time" if kind == "pcap" else "ts"
    t = table[time_col].to_numpy()
    assert a[time_col].between(t.min(), t.max()).all() and a[time_col].is_monotonic_increasing
    assert len(loaded.sample(scale=0.5, seed=0)) == round(len(table) * 0.5)


def test_resumed_fit_skips_finished_epochs(caida_1k, tmp_path):
    table = read_trace(caida_1k).table
    Synthesizer(tiny_ar("pcap")).fit(table, run_dir=tmp_path / "run")
    cfg = tiny_ar("pcap")
    again = Synthesizer(cfg).fit(table, run_dir=tmp_path / "run")
    assert again.manifest["resumed"]


def test_same_interface_for_both_models(caida_1k, tmp_path):
    """The same calls fit and sample either model; only `model.kind` differs."""
    table = read_trace(caida_1k).table
    d = preset("pcap").model_dump(mode="json")
    d["training"].update(epochs=1, checkpoint_every=1, checkpoint_selection=False, batch_size=16)
    d["chunking"]["n_chunks"] = 1
    d["model"].update(kind="doppelganger", attribute_num_units=8, attribute_num_layers=1, feature_num_units=8, critic_num_units=8,
                      critic_num_layers=1, attr_critic_num_units=8, attr_critic_num_layers=1)
    d["word2vec"]["epochs"] = 1
    for kind in ("doppelganger", "ar"):
        d["model"]["kind"] = kind
        d["model"]["ar"].update(hidden=16, max_epochs=1)
        synth = Synthesizer(config_from_dict(d)).fit(table, run_dir=tmp_path / kind)
        synth.save(tmp_path / kind)
        assert len(Synthesizer.load(tmp_path / kind).sample(count=100, seed=0)) == 100


def test_cli_fit_model_ar_then_generate(caida_1k, tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("preset: pcap\nmodel:\n  ar:\n    hidden: 16\n")
    assert main(["fit", str(caida_1k), "--out", str(tmp_path / "run"), "--config", str(cfg), "--model", "ar",
                 "--epochs", "1"]) == 0
    assert "one autoregressive model" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["model"] == "ar"
    assert main(["generate", str(tmp_path / "run"), "--out", str(tmp_path / "s.pcap"), "--count", "500"]) == 0
    assert len(read_trace(tmp_path / "s.pcap").table) == 500
    assert main(["fit", str(caida_1k), "--out", str(tmp_path / "r2"), "--model", "gan"]) == 2
    assert "unknown model" in capsys.readouterr().err
