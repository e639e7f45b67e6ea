"""Run folder: overwrite protection, resume detection, manifest written last, version checks."""
from __future__ import annotations

import json

import pytest

from tracesynth.config import preset
from tracesynth.errors import UserError
from tracesynth.pipeline.rundir import RunDir, config_hash


def test_prepare_refuses_other_runs_and_resumes_same(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.prepare_fit("cfg-a", "data-1", force=False) is False
    assert run.prepare_fit("cfg-a", "data-1", force=False) is True          # unfinished, same run: resume
    with pytest.raises(UserError, match="different config or input"):
        run.prepare_fit("cfg-b", "data-1", force=False)
    run.write_manifest({"chunks": []})
    with pytest.raises(UserError, match="--force"):
        run.prepare_fit("cfg-a", "data-1", force=False)
    assert run.prepare_fit("cfg-b", "data-1", force=True) is False
    assert not run.is_complete()


def test_generate_side_checks(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(UserError, match="no such run directory"):
        run.read_manifest()
    run.prepare_fit("a", "b", force=False)
    with pytest.raises(UserError, match="did not finish"):
        run.read_manifest()
    run.write_manifest({"chunks": []})
    assert run.read_manifest()["format"] == "tracesynth-run"
    data = json.loads(run.manifest_path.read_text())
    data["format_version"] = 99
    run.manifest_path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="version 99"):
        run.read_manifest()
    run.manifest_path.write_text("{not json")
    with pytest.raises(UserError, match="corrupt manifest"):
        run.read_manifest()


def test_config_hash_tracks_changes():
    a, b = preset("pcap"), preset("pcap")
    assert config_hash(a) == config_hash(b)
    b.training.epochs = 3
    assert config_hash(a) != config_hash(b)
