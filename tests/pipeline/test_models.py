"""The model interface behind `Synthesizer` on a real slice (caida-1k), tiny settings: both models' manifests
read back to exactly what was written (and old layouts still load), an unknown model is a clear error,
and a fit without a run folder removes its temporary folder once saved, closed or garbage-collected."""
from __future__ import annotations

import gc
import json
import tempfile

import pandas as pd
import pytest

from tracesynth import read_trace
from tracesynth.config import MODEL_KINDS, config_from_dict, preset
from tracesynth.errors import UserError
from tracesynth.pipeline.ar import ARTraceModel
from tracesynth.pipeline.doppelganger import ChunkedDoppelGANger
from tracesynth.pipeline.models import Manifest
from tracesynth.pipeline.synthesizer import MODELS, Synthesizer


def tiny(model: str, **training):
    """Either model at its smallest: one chunk, one epoch, 8-16 units."""
    d = preset("pcap").model_dump(mode="json")
    d["model"]["kind"] = model
    d["training"].update({"epochs": 1, "checkpoint_every": 1, "checkpoint_selection": False, "batch_size": 16,
                          **training})
    d["chunking"]["n_chunks"] = 1
    d["model"].update(attribute_num_units=8, attribute_num_layers=1, feature_num_units=8, critic_num_units=8,
                      critic_num_layers=1, attr_critic_num_units=8, attr_critic_num_layers=1)
    d["model"]["ar"].update(hidden=16, max_epochs=1)
    d["word2vec"]["epochs"] = 1
    return config_from_dict(d)


@pytest.fixture(scope="module")
def table(caida_1k):
    return read_trace(caida_1k).table


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """Temporary folders go under this test's own folder, so the test sees exactly what fit leaves."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_registry_maps_every_config_kind_to_its_model():
    assert MODELS == {"doppelganger": ChunkedDoppelGANger, "ar": ARTraceModel}
    assert set(MODEL_KINDS) == set(MODELS) and all(cls.kind == kind for kind, cls in MODELS.items())


@pytest.mark.parametrize("model", ["doppelganger", "ar"])
def test_manifest_reads_back_to_what_was_written(model, table, tmp_path):
    synth = Synthesizer(tiny(model)).fit(table, run_dir=tmp_path / "run", input_name="caida-1k")
    synth.save(tmp_path / "run")
    written = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert Manifest.from_dict(written, "manifest.json").to_dict() == written
    common = {"format", "format_version", "tracesynth_version", "created", "config_hash", "input", "chunks",
              "runner", "resumed", "privacy", "timings"}
    if model == "doppelganger":   # the layout runs have always had: no "model" key, chunks and sizing
        assert set(written) == common | {"sizing"}
        assert set(written["chunks"][0]) == {"index", "window", "records", "flows", "records_per_flow", "epochs",
                                             "init_from", "weights", "selected_epoch", "selection_scores",
                                             "checkpoints", "train_s"}
    else:
        assert set(written) == common | {"model", "ar"} and written["model"] == "ar" and written["chunks"] == []
    assert written["input"] == {"name": "caida-1k", "fingerprint": written["input"]["fingerprint"],
                                "records": len(table), "kind": "packets"}
    loaded = Synthesizer.load(tmp_path / "run")
    assert loaded.manifest == written and type(loaded.model) is MODELS[model]
    assert len(loaded.sample(count=150, seed=2)) == 150
    # a manifest with keys this version does not know still loads, and keeps them when saved again
    written["from_a_later_version"] = {"kept": True}
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(written))
    Synthesizer.load(tmp_path / "run").save(tmp_path / "copy")
    again = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert again["from_a_later_version"] == {"kept": True} and again["chunks"] == written["chunks"]


def test_manifest_of_an_unknown_model_or_without_chunks_is_a_user_error(table, tmp_path):
    run = tmp_path / "run"
    Synthesizer(tiny("doppelganger")).fit(table, run_dir=run).save(run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "model": "gan"}))
    with pytest.raises(UserError, match=r"manifest.json: a run of the 'gan' model"):
        Synthesizer.load(run)
    del manifest["chunks"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"manifest.json: the doppelganger model's part of the manifest lacks or "
                                        r"garbles 'chunks'"):
        Synthesizer.load(run)


def _scratch_folders(root) -> list:
    return sorted(root.glob("tracesynth-run-*"))


def test_fit_without_run_folder_removes_it_once_saved_elsewhere(table, tmp_path, scratch_root):
    synth = Synthesizer(tiny("ar")).fit(table)
    assert _scratch_folders(scratch_root) == [synth.run.path] and (synth.run.path / "ar" / "weights.pt").exists()
    synth.save(tmp_path / "saved")
    assert _scratch_folders(scratch_root) == [] and synth.run.path == tmp_path / "saved"
    # sampling now reads the saved folder: the same records as a fresh load of it
    pd.testing.assert_frame_equal(synth.sample(count=300, seed=4),
                                  Synthesizer.load(tmp_path / "saved").sample(count=300, seed=4))


def test_fit_without_run_folder_removes_it_when_closed_or_collected(table, scratch_root):
    with Synthesizer(tiny("ar")) as synth:
        synth.fit(table)
        assert len(_scratch_folders(scratch_root)) == 1 and len(synth.sample(count=50, seed=0)) == 50
    assert _scratch_folders(scratch_root) == [] and synth.run is None
    with pytest.raises(UserError, match="not fitted"):
        synth.sample(count=10)
    synth = Synthesizer(tiny("ar")).fit(table)
    synth.fit(table)                                   # a second fit replaces the first one's folder
    assert _scratch_folders(scratch_root) == [synth.run.path]
    del synth
    gc.collect()
    assert _scratch_folders(scratch_root) == []


class Interrupt(Exception):
    pass


def test_interrupted_fit_without_run_folder_leaves_nothing(table, scratch_root):
    """Nobody can resume a fit in a folder whose name was never given out: it goes at once."""
    def stop_when_training(event):
        if event.stage == "train":
            assert len(_scratch_folders(scratch_root)) == 1
            raise Interrupt

    with pytest.raises(Interrupt):
        Synthesizer(tiny("doppelganger")).fit(table, stop_when_training)
    assert _scratch_folders(scratch_root) == []
