"""Differential privacy through the pipeline, on real slices (caida-1k split in time: the earlier half is
the public trace, the later half the private one) with tiny configs:

- a naive DP fit (config ranges + a word2vec model trained on the public half) produces a valid, non-empty
  pcap, and its manifest holds the ledger (achieved epsilon <= target, every parameter, no private count);
- public pretraining fine-tunes every chunk from the public model's weights, under DP-SGD;
- the CLI refuses data-dependent settings with one line naming them (exit 2);
- the sweep's no-DP point (epsilon = inf) is exactly a normal fit with the same seed.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tracesynth import read_trace
from tracesynth.cli import main
from tracesynth.config import config_from_dict, preset, save_config
from tracesynth.errors import ConfigError
from tracesynth.pipeline import chunked
from tracesynth.pipeline.commands import generate_path, report_meta, with_privacy
from tracesynth.pipeline.doppelganger import PUBLIC_DIR
from tracesynth.pipeline.synthesizer import Synthesizer

from tsdata import shared

#: TCP flag combinations common on the wire (data-independent choices; others map to the nearest)
TCP_FLAGS = [0, 1, 2, 4, 16, 17, 18, 20, 24, 25, 82, 194]


def tiny(**training) -> dict:
    d = preset("pcap").model_dump(mode="json")
    d["chunking"]["n_chunks"] = 2
    d["flow_length"]["max_flow_len"] = 10
    d["training"].update({"epochs": 2, "checkpoint_every": 1, "batch_size": 20, "critic_steps": 1, **training})
    d["model"].update(kind="doppelganger", sample_len=5, attribute_num_units=16, attribute_num_layers=1, feature_num_units=16,
                      critic_num_units=16, critic_num_layers=1, attr_critic_num_units=16, attr_critic_num_layers=1)
    return d


def dp_ready(window, w2v=None, **training) -> dict:
    """The tiny config with every preprocessing setting fixed, so DP mode reads no private data."""
    d = tiny(checkpoint_selection=False, **training)
    for f in d["fields"]:
        if f["name"] == "pkt_len":
            f["range"] = [0.0, 1500.0]
        elif f["name"] == "flag":
            f["choices"] = list(range(8))
        elif f["name"] == "tcp_flags":
            f["choices"] = TCP_FLAGS
        elif f["name"] == "off":
            f["choices"] = [0, 182, 185]  # fragment offsets (8-byte units) common on CAIDA's links
    d["time"].update(window=list(window), interarrival_range=[0.0, 1e-4])  # the slice spans 2.6 ms
    d["word2vec"]["pretrained"] = w2v
    return d


@pytest.fixture(scope="module")
def halves():
    table = read_trace(shared("caida/caida-1k.pcapng")).table.sort_values("time", kind="stable")
    mid = len(table) // 2
    public, private = table.iloc[:mid].reset_index(drop=True), table.iloc[mid:].reset_index(drop=True)
    window = (float(private["time"].min()), float(private["time"].max()))
    return public, private, window


@pytest.fixture(scope="module")
def public_w2v(halves, tmp_path_factory):
    from tracesynth.encoders.word2vec import PortProtoEmbedding

    public = halves[0]
    emb = PortProtoEmbedding(10, 5, 1, 5, 0, 0).fit(public["srcport"].to_numpy(), public["dstport"].to_numpy(),
                                                    public["proto"].to_numpy())
    return str(emb.save(tmp_path_factory.mktemp("w2v") / "public.kv"))


@pytest.fixture(scope="module")
def naive_run(halves, public_w2v, tmp_path_factory):
    _, private, window = halves
    cfg = with_privacy(config_from_dict(dp_ready(window, public_w2v)), 8.0)
    run = tmp_path_factory.mktemp("dp") / "run"
    synth = Synthesizer(cfg).fit(private, run_dir=run, input_name="private half")
    synth.save(run)
    return run, synth, private


def test_naive_dp_fit_writes_a_valid_pcap_and_the_ledger(naive_run, tmp_path):
    run, synth, private = naive_run
    manifest = json.loads((run / "manifest.json").read_text())
    block = manifest["privacy"]
    ledger = block["ledger"]
    assert block["dp"] and block["public"] is None
    assert ledger["epsilon"] <= 8.0 + 1e-9 and ledger["delta"] == 1e-5 and ledger["sigma"] > 0
    assert ledger["updates_per_sample"] == 2 and ledger["accountant"] == "rdp"
    assert len(ledger["sample_rate"]) == len(ledger["steps"]) == len(ledger["epochs"]) == 2
    assert ledger["epochs"][0] == 2 and 0 < ledger["count_epsilon"] < ledger["epsilon"]
    # generation sizes come from the released counts, not the private ones: without a public trace, the
    # released total x the noisy histogram's shares x one samples-per-flow factor read off the models
    assert ledger["count_releases"] == 2 and ledger["size_shares"] == "noisy histogram"
    assert len(ledger["noisy_histogram"]) == 2 and sum(ledger["shares"]) == pytest.approx(1.0)
    kappa = [c["flows"] / (ledger["noisy_flow_total"] * share) for c, share in zip(manifest["chunks"], ledger["shares"])]
    assert 1.0 - 0.02 <= min(kappa) and max(kappa) <= 2.0 + 0.02 and max(kappa) - min(kappa) < 0.05
    assert manifest["input"]["records"] == sum(c["records"] for c in manifest["chunks"])
    assert all(c["selected_epoch"] == c["epochs"] for c in manifest["chunks"])  # no selection on private data
    out = tmp_path / "synth.pcap"
    generate_path(run, out, count=300, seed=1)
    packets = read_trace(out).table
    assert len(packets) == 300
    lo, hi = manifest["chunks"][0]["window"][0], manifest["chunks"][-1]["window"][1]
    assert packets["time"].between(lo, hi + 1e-6).all()
    assert packets["pkt_len"].between(0, 1500).all() and set(packets["tcp_flags"]) <= set(TCP_FLAGS)
    meta = report_meta(run)
    assert "epsilon" in meta["differential privacy"] and "sigma" in meta["DP-SGD"]


def test_dp_fit_is_reproducible_from_the_seed(naive_run, tmp_path):
    run, synth, private = naive_run
    again = Synthesizer(synth.config).fit(private, run_dir=tmp_path / "again")
    assert again.manifest["privacy"]["ledger"] == synth.manifest["privacy"]["ledger"]
    a = torch.load(run / "chunk_001" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "again" / "chunk_001" / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_public_pretraining_fine_tunes_every_chunk_from_the_public_model(halves, tmp_path):
    public, private, window = halves
    d = dp_ready(window)
    for f in d["fields"]:  # with a public trace these come from it
        f.pop("range", None) if f["name"] == "pkt_len" else None
        if f["encoding"] == "categorical":
            f["choices"] = None
    d["time"]["interarrival_range"] = None
    cfg = with_privacy(config_from_dict(d), 4.0)
    run = tmp_path / "run"
    synth = Synthesizer(cfg).fit(private, run_dir=run, public=public, public_name="public half")
    m = synth.manifest
    assert m["privacy"]["public"]["name"] == "public half" and m["privacy"]["ledger"]["epsilon"] <= 4.0 + 1e-9
    assert all(c["init_from"] == chunked.PUBLIC_MODEL for c in m["chunks"])
    # every chunk starts from the public model: after a short DP fine-tune its weights lie far closer to
    # the public model's than a freshly initialised model's do (and differ: the fine-tune did train)
    public_weights = torch.load(run / PUBLIC_DIR / "weights.pt", weights_only=True)
    torch.manual_seed(0)
    encoder = synth.model.encoder
    fresh = chunked.build_model(cfg, encoder.attribute_spans, encoder.feature_spans).state_dict()

    def distance(state) -> float:
        return max(float((state[k] - public_weights[k]).abs().max()) for k in state if state[k].is_floating_point())

    for chunk in ("chunk_000", "chunk_001"):
        tuned = torch.load(run / chunk / "weights.pt", weights_only=True)
        assert 0 < distance(tuned) < distance(fresh) / 10
    # the encoders were fitted on the public half: its pkt_len range, not the private one
    pub_max = float(public["pkt_len"].max())
    assert encoder.feature_encoders_["pkt_len"].max_ == pytest.approx(pub_max)
    table = synth.sample(count=200, seed=0)
    assert len(table) == 200 and table["time"].between(*window).all()


def test_dp_mode_refuses_data_dependent_settings_via_the_cli(tmp_path, capsys):
    cfg = tmp_path / "tiny.json"
    save_config(config_from_dict(tiny()), cfg)
    run = tmp_path / "run"
    code = main(["fit", str(shared("caida/caida-1k.pcapng")), "--out", str(run), "--config", str(cfg),
                 "--dp-epsilon", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    for needle in ("fields.pkt_len.range", "fields.flag.choices", "word2vec.pretrained", "time.window",
                   "time.interarrival_range", "training.checkpoint_selection"):
        assert needle in err
    assert not (run / "manifest.json").exists()
    assert main(["fit", str(shared("caida/caida-1k.pcapng")), "--out", str(run), "--config", str(cfg),
                 "--dp-delta", "1e-6"]) == 2
    assert "--dp-epsilon" in capsys.readouterr().err


def test_dp_check_runs_in_the_python_api_too(halves):
    with pytest.raises(ConfigError, match="time.window"):
        Synthesizer(with_privacy(config_from_dict(tiny()), 1.0)).fit(halves[1])


def test_sweep_no_dp_point_equals_a_normal_fit(halves, public_w2v, tmp_path):
    _, private, window = halves
    base = config_from_dict(dp_ready(window, public_w2v, epochs=1))
    sweep_point = with_privacy(base, math.inf)
    assert sweep_point.privacy is None
    a = Synthesizer(sweep_point).fit(private, run_dir=tmp_path / "a")
    b = Synthesizer(base).fit(private, run_dir=tmp_path / "b")
    for chunk in ("chunk_000", "chunk_001"):
        wa = torch.load(tmp_path / "a" / chunk / "weights.pt", weights_only=True)
        wb = torch.load(tmp_path / "b" / chunk / "weights.pt", weights_only=True)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = a.sample(count=150, seed=3), b.sample(count=150, seed=3)
    assert sa.equals(sb)
    assert np.isfinite(sa["time"].to_numpy()).all()


# ---- the CLI as a user runs it: a preset, a public and a private part of ugr16-1k ----------------------

def _tiny_netflow():
    """The netflow preset with tiny networks (the preset path of the CLI, at test cost)."""
    from tracesynth.config import _preset_netflow

    d = _preset_netflow().model_dump(mode="json")
    d["flow_length"]["max_flow_len"] = 10
    d["model"].update(kind="doppelganger", sample_len=5, attribute_num_units=16, attribute_num_layers=1, feature_num_units=16,
                      critic_num_units=16, critic_num_layers=1, attr_critic_num_units=16, attr_critic_num_layers=1)
    d["training"].update(batch_size=20, critic_steps=1, checkpoint_every=1)
    return config_from_dict(d)


@pytest.fixture
def ugr_parts(tmp_path, monkeypatch):
    """ugr16-1k split by flow key (both parts cover the same 183 s): public.csv, private.csv. The private
    part gets one record with a duration far outside the public range and a port the public part lacks."""
    import pandas as pd

    from tracesynth import config

    monkeypatch.setitem(config.PRESETS, "netflow", _tiny_netflow)
    table = pd.read_csv(shared("ugr16/ugr16-1k.csv"))
    public = (table["srcip"] + table["dstip"]) % 2 == 0
    private = table[~public].copy()
    odd = private.iloc[[0]].assign(td=1e5, srcport=31337, dstport=31338, proto="TCP")
    pd.concat([private, odd]).to_csv(tmp_path / "private.csv", index=False)
    table[public].to_csv(tmp_path / "public.csv", index=False)
    return tmp_path / "public.csv", tmp_path / "private.csv", table[public], private


def test_dp_fit_with_a_preset_works_as_written_and_says_nothing_private(ugr_parts, tmp_path, caplog, capsys):
    public_csv, private_csv, public, private = ugr_parts
    run = tmp_path / "run"
    caplog.set_level("INFO")
    code = main(["fit", str(private_csv), "--public", str(public_csv), "--dp-epsilon", "4", "--out", str(run),
                 "--epochs", "1", "--chunks", "2"])
    assert code == 0, capsys.readouterr().err
    messages = [r.getMessage() for r in caplog.records]
    assert sum("checkpoint selection is off" in m for m in messages) == 1
    (said,) = [m for m in messages if "time.window is not set" in m]
    lo, hi = public["ts"].min() / 1e6, public["ts"].max() / 1e6   # the public part's span, in seconds
    assert f"{lo:.6f},{hi:.6f}" in said
    # item 12: no count of private values, only that clipping and mapping happen (said once)
    assert not [m for m in messages if "value(s)" in m or "split" in m]
    assert sum("how many is not reported" in m for m in messages) == 1
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["chunks"][0]["window"][0] == pytest.approx(lo)
    assert manifest["chunks"][-1]["window"][1] == pytest.approx(hi)
    ledger = manifest["privacy"]["ledger"]
    assert ledger["epsilon"] <= 4.0 + 1e-9 and ledger["size_shares"] == "public trace"
    assert ledger["count_releases"] == 1 and ledger["noisy_histogram"] is None
    # the stored sizes are the released total x the public shares, never the private counts
    assert [c["flows"] for c in manifest["chunks"]] == ledger["noisy_flow_counts"]
    assert manifest["input"]["records"] == sum(c["records"] for c in manifest["chunks"])
    from tracesynth.pipeline.rundir import RunDir

    assert RunDir(run).read_config().training.checkpoint_selection is False
    out = tmp_path / "synth.csv"
    generate_path(run, out, count=100, seed=0)
    assert len(read_trace(out).table) == 100
    # the same fit without DP does count them: the private part does hold such values
    caplog.clear()
    assert main(["fit", str(private_csv), "--public", str(public_csv), "--out", str(tmp_path / "nodp"),
                 "--epochs", "1", "--chunks", "2"]) == 0
    counted = [r.getMessage() for r in caplog.records if "value(s)" in r.getMessage()]
    assert any("td:" in m and "clipped" in m for m in counted) and any("vocabulary" in m for m in counted)


def test_dp_fit_takes_the_window_option_and_cuts_private_records_outside_it(ugr_parts, tmp_path, caplog):
    public_csv, private_csv, _, private = ugr_parts
    start = float(private["ts"].min() / 1e6)
    end = start + 90.0   # about half the private records lie after it: cut, not refused, not counted
    run = tmp_path / "run"
    caplog.set_level("INFO")
    assert main(["fit", str(private_csv), "--public", str(public_csv), "--dp-epsilon", "8", "--out", str(run),
                 "--epochs", "1", "--chunks", "2", "--window", f"{start},{end}"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["chunks"][0]["window"][0] == pytest.approx(start)
    assert manifest["chunks"][-1]["window"][1] == pytest.approx(end)
    assert not [r for r in caplog.records if "time.window is not set" in r.getMessage()]


@pytest.mark.parametrize("window", ["5,3", "abc", "1,2,3", "nan,4"])
def test_a_bad_window_option_is_one_clear_line(ugr_parts, tmp_path, capsys, window):
    public_csv, private_csv, _, _ = ugr_parts
    code = main(["fit", str(private_csv), "--public", str(public_csv), "--dp-epsilon", "4", "--out",
                 str(tmp_path / "run"), "--window", window])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--window" in err and "START,END" in err


def test_a_custom_config_is_refused_in_whole_sentences(tmp_path, capsys):
    cfg = tmp_path / "custom.json"
    save_config(preset("netflow").model_copy(update={"model": preset("netflow").model.model_copy(
        update={"kind": "doppelganger"})}), cfg)
    code = main(["fit", str(shared("ugr16/ugr16-1k.csv")), "--out", str(tmp_path / "run"), "--config", str(cfg),
                 "--public", str(shared("ugr16/ugr16-1k.csv")), "--dp-epsilon", "4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "DP mode would read the private trace outside the privacy budget. " in err and err.endswith(".")
    assert "set it to START, END in epoch seconds, or pass --window START,END" in err   # nothing eaten
    assert "training.checkpoint_selection is on, so checkpoints would be scored on private data" in err
