"""`tracesynth fit` / `generate` through the CLI: exit codes, outputs, clear errors."""
from __future__ import annotations

import json

import pandas as pd

from tsdata import shared
from tracesynth.cli import main


def test_fit_generate_cli(tmp_path, capsys):
    trace = shared("caida/caida-1k.pcapng")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("preset: pcap\nchunking: {n_chunks: 1}\nflow_length: {max_flow_len: 10}\n"
                   "training: {epochs: 1, batch_size: 50}\n"
                   "model: {kind: doppelganger, sample_len: 5, attribute_num_units: 8, attribute_num_layers: 1, feature_num_units: 8,"
                   " critic_num_units: 8, critic_num_layers: 1, attr_critic_num_units: 8, attr_critic_num_layers: 1}\n")
    run = tmp_path / "run"
    assert main(["fit", str(trace), "--out", str(run), "--config", str(cfg)]) == 0
    assert json.loads((run / "manifest.json").read_text())["input"]["records"] == 1000
    assert main(["fit", str(trace), "--out", str(run), "--config", str(cfg)]) == 2      # no silent overwrite
    assert "--force" in capsys.readouterr().err
    out = tmp_path / "synth.csv"
    assert main(["generate", str(run), "--out", str(out), "--count", "250", "--seed", "2"]) == 0
    assert len(pd.read_csv(out)) == 250
    one = tmp_path / "one-thread.csv"
    assert main(["generate", str(run), "--out", str(one), "--count", "250", "--seed", "2", "--threads", "1"]) == 0
    assert len(pd.read_csv(one)) == 250
    assert main(["generate", str(run), "--out", str(one), "--threads", "0"]) == 2          # not a thread count
    assert main(["generate", str(run), "--out", str(tmp_path / "x.csv"), "--count", "5", "--scale", "2"]) == 2


def test_generate_errors_name_the_problem(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "nope"), "--out", str(tmp_path / "s.pcap")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    assert main(["generate", str(tmp_path / "half"), "--out", str(tmp_path / "s.pcap")]) == 2
    assert "did not finish" in capsys.readouterr().err
