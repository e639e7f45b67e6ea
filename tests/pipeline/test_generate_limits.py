"""`generate` sizes are bounded up front (issue 14, item 5c): `--count 1000000000000` and `--scale 1e9`
are refused with an estimate in one line, before any record is generated."""
from __future__ import annotations

import pytest

from tracesynth import limits
from tracesynth.cli import main
from tracesynth.errors import UserError
from tracesynth.pipeline import generation as gen
from tsdata import shared

TINY = ("preset: pcap\nchunking: {n_chunks: 1}\nflow_length: {max_flow_len: 10}\n"
        "training: {epochs: 1, batch_size: 50, checkpoint_selection: false}\n"
        "model: {kind: doppelganger, sample_len: 5, attribute_num_units: 8, attribute_num_layers: 1, feature_num_units: 8,"
        " critic_num_units: 8, critic_num_layers: 1, attr_critic_num_units: 8, attr_critic_num_layers: 1}\n")


@pytest.mark.parametrize("count, scale, option", [(10**12, None, "--count"), (None, 1e9, "--scale"),
                                                  (10**400, None, "--count"), (None, 1e300, "--scale")])
def test_huge_sizes_are_refused_naming_the_option(count, scale, option):
    with pytest.raises(UserError) as info:
        gen.target_records(1000, count, scale)
    msg = str(info.value)
    assert msg.startswith(f"{option}: ") and "more than one generate writes" in msg and "\n" not in msg


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -1.0])
def test_non_finite_scale_is_refused(scale):
    with pytest.raises(UserError, match="finite, non-negative"):
        gen.target_records(1000, None, scale)


def test_memory_estimate_refuses_what_the_machine_cannot_hold(monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 100 * limits.GENERATE_BYTES_PER_RECORD)
    assert gen.target_records(1000, 100, None) == 100
    with pytest.raises(UserError, match=r"--count: 101 records need about .* ask for at most 100$"):
        gen.target_records(1000, 101, None)
    monkeypatch.setattr(limits, "available_memory", lambda: None)  # unknown: only the fixed cap applies
    assert gen.target_records(1000, None, 1000.0) == 1_000_000


def test_generate_cli_refuses_huge_sizes_before_generating(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    run = tmp_path / "run"
    assert main(["fit", str(shared("caida/caida-1k.pcapng")), "--out", str(run), "--config", str(cfg)]) == 0
    capsys.readouterr()
    out = tmp_path / "s.pcap"
    for args in (["--count", "1000000000000"], ["--scale", "1e9"]):
        assert main(["generate", str(run), "--out", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert args[0] in err and "more than one generate writes" in err and err.count("\n") == 1, err
    assert not out.exists()
