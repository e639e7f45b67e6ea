"""The configured seed reaches every model initialisation: the same config and data give identical
weights whatever torch's global RNG held before, and another training.seed starts from other weights."""
from __future__ import annotations

import pytest
import torch

from tracesynth import read_trace
from tracesynth.pipeline import chunked
from tracesynth.pipeline.synthesizer import Synthesizer
from tsdata import shared

from .test_synthesizer import tiny_config


@pytest.fixture(scope="module")
def caida_table():
    return read_trace(shared("caida/caida-1k.pcapng")).table


def _fit_weights(table, run, seed: int, global_seed: int) -> list[dict[str, torch.Tensor]]:
    """Every chunk's final weights of a 1-epoch fit (chunk 0 from scratch, chunk 1 fine-tuned), after
    putting torch's global RNG in the state `global_seed` gives (what earlier work would leave)."""
    torch.manual_seed(global_seed)
    synth = Synthesizer(tiny_config(epochs=1, seed=seed)).fit(table, run_dir=run)
    return [torch.load(run / c["weights"], weights_only=True) for c in synth.manifest["chunks"]]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_fits_of_one_config_give_identical_weights_and_another_seed_differs(caida_table, tmp_path):
    first = _fit_weights(caida_table, tmp_path / "a", seed=3, global_seed=0)
    again = _fit_weights(caida_table, tmp_path / "b", seed=3, global_seed=12345)
    other = _fit_weights(caida_table, tmp_path / "c", seed=4, global_seed=0)
    assert len(first) == 2
    assert all(_same(x, y) for x, y in zip(first, again))
    assert not any(_same(x, y) for x, y in zip(first, other))


def test_initial_weights_come_from_training_seed(caida_table):
    """Before any training: built from the run's config, the weights follow training.seed alone (the
    path every fit, fine-tune, DP fit, benchmark and service job takes), and building a model leaves
    the caller's RNG stream where it was."""
    from tracesynth.encoders.flow_encoder import FlowEncoder
    from tracesynth.flows.chunking import split_chunks

    cfg = tiny_config(seed=3)
    encoder = FlowEncoder(cfg).fit(split_chunks(caida_table, cfg))

    def initial(seed: int) -> dict[str, torch.Tensor]:
        config = tiny_config(seed=seed)
        return chunked.build_model(config, encoder.attribute_spans, encoder.feature_spans).state_dict()

    torch.manual_seed(0)
    a = initial(3)
    after_build = torch.rand(1)
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(99)
    assert _same(a, initial(3)) and not _same(a, initial(4))
    assert torch.equal(after_build, expected)
