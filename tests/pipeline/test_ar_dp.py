"""DP-SGD and public pretraining for the autoregressive model through the pipeline and the CLI, on real
slices with tiny settings (hidden 16, 2 epochs):

- caida-1k is the private trace, the later 4,000 packets of caida-10k (disjoint from it) the public one;
  the window is the whole capture's span (public knowledge: when the capture ran);
- a DP fit writes the ledger (epsilon <= target) into the manifest and the report facts, stores no
  private loss or count, is reproducible from its seed, and generates exact counts inside the window;
- the tokenizer comes from the public trace;
- DP without a public trace is refused, saying what to give, before anything is written;
- the CLI runs it as a user would (ugr16-1k split by flow key: both parts cover the same 183 s).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tracesynth import read_trace
from tracesynth.cli import main
from tracesynth.config import config_from_dict, preset
from tracesynth.errors import UserError
from tracesynth.flows.table import FlowTable
from tracesynth.pipeline import ar
from tracesynth.pipeline.commands import report_meta, with_privacy
from tracesynth.pipeline.synthesizer import Synthesizer

from tsdata import shared


def tiny_ar(kind: str = "pcap", window=None, **ar_settings) -> dict:
    d = preset(kind).model_dump(mode="json")
    d["model"]["kind"] = "ar"
    d["model"]["ar"].update(hidden=16, max_epochs=2, batch_size=64, **ar_settings)
    d["time"]["window"] = None if window is None else list(window)
    return d


@pytest.fixture(scope="module")
def traces():
    private = read_trace(shared("caida/caida-1k.pcapng")).table
    full = read_trace(shared("caida/caida-10k.pcapng")).table.sort_values("time", kind="stable")
    public = full[full["time"] > private["time"].max()].iloc[:4000].reset_index(drop=True)
    window = (float(full["time"].min()), float(full["time"].max()))
    return private, public, window


@pytest.fixture(scope="module")
def dp_run(traces, tmp_path_factory):
    private, public, window = traces
    cfg = with_privacy(config_from_dict(tiny_ar(window=window)), 4.0)
    run = tmp_path_factory.mktemp("ar-dp") / "run"
    synth = Synthesizer(cfg).fit(private, run_dir=run, public=public, public_name="caida-10k, later part")
    synth.save(run)
    return run, synth


def test_dp_fit_writes_the_ledger_and_generates_exact_counts(dp_run, traces):
    run, synth = dp_run
    private, public, window = traces
    manifest = json.loads((run / "manifest.json").read_text())
    block, fit = manifest["privacy"], manifest["ar"]
    ledger = block["ledger"]
    assert block["dp"] and block["settings"]["epsilon"] == 4.0
    assert 0 < ledger["epsilon"] <= 4.0 + 1e-9 and ledger["sigma"] > 0 and ledger["updates_per_sample"] == 1
    assert ledger["unit"].startswith("flow sample") and ledger["size_shares"] == "public trace"
    assert ledger["epochs"] == [ar.dp_epochs(synth.config)] == [fit["epochs"]]
    assert block["public"]["name"] == "caida-10k, later part" and block["public"]["records"] == len(public)
    # nothing private beyond the releases: no held-out private flows, no private loss, sizes from the count
    assert fit["validation_flows"] == 0 and fit["best_validation_nll"] is None
    assert all(h["train_nll"] is None and h["validation_nll"] is None for h in fit["history"])
    assert fit["flows"] == ledger["noisy_flow_counts"][0]
    assert manifest["input"]["records"] == round(fit["flows"] * fit["records_per_flow"])
    assert fit["window"] == list(window)
    out = Synthesizer.load(run).sample(count=333, seed=2)
    assert len(out) == 333 and out["time"].between(*window).all()
    meta = report_meta(run)
    assert f"{ledger['epsilon']:.4g}" in meta["differential privacy"] and "one noisy update" in meta["DP-SGD"]
    assert "DP schedule" in meta and "public pretraining" in meta


def test_dp_fit_is_reproducible_from_the_seed(dp_run, traces, tmp_path):
    run, synth = dp_run
    private, public, _ = traces
    again = Synthesizer(synth.config).fit(private, run_dir=tmp_path / "again", public=public,
                                          public_name="caida-10k, later part")
    assert again.manifest["privacy"] == synth.manifest["privacy"]
    a = torch.load(run / ar.FOLDER / ar.WEIGHTS, weights_only=True)
    b = torch.load(tmp_path / "again" / ar.FOLDER / ar.WEIGHTS, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_tokenizer_comes_from_the_public_trace(dp_run, traces):
    run, synth = dp_run
    private, public, window = traces
    cfg = synth.config
    stored = json.loads((run / ar.FOLDER / ar.TOKENIZER).read_text())
    from_public = ar.make_tokenizer(cfg).fit(ar.public_flows_in(public, cfg, window)).to_state()
    from_private = ar.make_tokenizer(cfg).fit(FlowTable.from_records(private, cfg.flow_length.max_flow_len)).to_state()
    assert stored == json.loads(json.dumps(from_public))
    assert stored["keys"]["dstip"]["top"] != from_private["keys"]["dstip"]["top"]


def test_public_flow_starts_are_moved_onto_a_window_of_another_period(traces):
    private, public, window = traces
    cfg = config_from_dict(tiny_ar(window=window))
    same = ar.public_flows_in(public, cfg, window)            # inside the window: kept as they are
    np.testing.assert_array_equal(same.attributes["flow_start"], FlowTable.from_records(public, 100).attributes["flow_start"])
    later = (window[0] + 3600.0, window[1] + 3600.0)           # another period: moved onto it
    moved = ar.public_flows_in(public, cfg, later).attributes["flow_start"].to_numpy()
    assert moved.min() >= later[0] - 1e-9 and moved.max() <= later[1] + 1e-9


def test_public_pretraining_without_dp(traces, tmp_path):
    private, public, _ = traces
    synth = Synthesizer(config_from_dict(tiny_ar())).fit(private, run_dir=tmp_path / "run", public=public,
                                                          public_name="later part")
    block = synth.manifest["privacy"]
    assert block["dp"] is False and block["ledger"] is None and block["public"]["flows"] > 0
    assert synth.manifest["input"]["records"] == len(private)  # no DP: the real size
    assert len(synth.sample(count=200, seed=0)) == 200


def test_dp_without_a_public_trace_is_refused_saying_what_to_give(traces, tmp_path):
    private, _, window = traces
    cfg = with_privacy(config_from_dict(tiny_ar(window=window)), 4.0)
    with pytest.raises(UserError, match="--public PUBLIC_TRACE"):
        Synthesizer(cfg).fit(private, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "manifest.json").exists()
    with pytest.raises(UserError, match="token vocabularies"):       # pipeline/ar.py says it too
        ar.fit(private, cfg, tmp_path / "direct")
    assert not (tmp_path / "direct").exists()


def test_cli_refuses_dp_without_public_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["fit", str(shared("caida/caida-1k.pcapng")), "--model", "ar", "--dp-epsilon", "4",
                 "--out", str(run)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--public PUBLIC_TRACE" in err and "time.window" in err
    assert not (run / "manifest.json").exists()


def test_cli_dp_fit_with_a_public_trace(tmp_path, capsys, monkeypatch):
    """ugr16-1k split by flow key (both parts cover the same 183 s); the preset's window is the public
    part's span (said), and the fit prints the achieved epsilon."""
    from tracesynth import config

    def tiny_netflow():
        d = config._preset_netflow().model_dump(mode="json")
        d["model"]["ar"].update(hidden=16, batch_size=32)
        return config_from_dict(d)

    monkeypatch.setitem(config.PRESETS, "netflow", tiny_netflow)
    table = pd.read_csv(shared("ugr16/ugr16-1k.csv"))
    public = (table["srcip"] + table["dstip"]) % 2 == 0
    table[public].to_csv(tmp_path / "public.csv", index=False)
    table[~public].to_csv(tmp_path / "private.csv", index=False)
    run = tmp_path / "run"
    code = main(["fit", str(tmp_path / "private.csv"), "--public", str(tmp_path / "public.csv"), "--model", "ar",
                 "--dp-epsilon", "8", "--epochs", "2", "--out", str(run)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "differential privacy: epsilon = " in printed.out
    ledger = json.loads((run / "manifest.json").read_text())["privacy"]["ledger"]
    assert ledger["epsilon"] <= 8.0 + 1e-9
    assert main(["generate", str(run), "--out", str(tmp_path / "synth.csv"), "--count", "150"]) == 0
    assert len(read_trace(tmp_path / "synth.csv").table) == 150
