"""The autoregressive flow model on a real slice, tiny settings: shapes, finite losses, learning, early
stopping per part, resume, reproducible sampling."""
from __future__ import annotations

import numpy as np
import torch

from tracesynth.model.ar import ARFlowModel, ARSizes
from tracesynth.model.ar_trainer import ARSchedule, mean_nll, pad_batch, train_ar


def _model(tok, seed=0):
    torch.manual_seed(seed)
    return ARFlowModel(tok.header_vocab, tok.record_vocab, ARSizes(hidden=16, dropout=0.0))


def test_loss_shapes_and_values(tokens):
    tok, data = tokens
    model = _model(tok)
    idx = np.arange(min(32, len(data)))
    h, r = model.nll_parts(*pad_batch(data, idx))
    assert h.shape == r.shape == (len(idx),)
    assert torch.isfinite(h).all() and torch.isfinite(r).all() and (h > 0).all() and (r > 0).all()
    # an untrained model's header NLL is close to uniform over every used slot
    header, used, _, _ = pad_batch(data, idx)
    uniform = (used * torch.log(torch.tensor(tok.header_vocab, dtype=torch.float32))).sum(1)
    assert torch.allclose(h, uniform, rtol=0.3)


def test_padding_does_not_change_a_flows_loss(tokens):
    """The records are packed: a flow's NLL is the same alone and in a batch with a longer flow."""
    tok, data = tokens
    model = _model(tok).eval()
    longest, short = int(np.argmax(data.lengths)), int(np.argmin(data.lengths))
    alone = model(*pad_batch(data, np.array([short])))
    together = model(*pad_batch(data, np.array([short, longest])))
    assert torch.allclose(alone[0], together[0], atol=1e-4)


def test_training_lowers_held_out_loss_and_resumes(tokens, tmp_path):
    tok, data = tokens
    train, val = data.subset(np.arange(0, len(data), 2)), data.subset(np.arange(1, len(data), 2))
    schedule = ARSchedule(max_epochs=4, patience=10, batch_size=32, lr=3e-3)
    model = _model(tok)
    before = sum(mean_nll(model, val))
    result = train_ar(model, train, val, schedule, seed=0, checkpoint_dir=tmp_path / "a")
    assert result.epochs == 4 and len(result.history) == 4
    assert sum(mean_nll(model, val)) < before
    # stop after 2 epochs, then resume to 4: same weights as the uninterrupted run
    two = _model(tok)
    train_ar(two, train, val, ARSchedule(max_epochs=2, patience=10, batch_size=32), seed=0, checkpoint_dir=tmp_path / "b")
    resumed = _model(tok)
    again = train_ar(resumed, train, val, schedule, seed=0, checkpoint_dir=tmp_path / "b")
    assert again.epochs == 4
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_header_freezes_then_records_stop(tokens):
    """Patience 1 on held-out data that the model overfits: the header freezes first, training then stops."""
    tok, data = tokens
    train, val = data.subset(np.arange(0, len(data), 2)), data.subset(np.arange(1, len(data), 2))
    result = train_ar(_model(tok), train, val, ARSchedule(max_epochs=60, patience=1, batch_size=16, lr=1e-2), seed=0)
    assert result.epochs < 60
    frozen = [h["header_frozen"] for h in result.history]
    assert frozen[-1] and not frozen[0]


def test_sampling_is_reproducible_and_valid(tokens):
    tok, data = tokens
    model = _model(tok).eval()
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    h1, s1 = model.sample_header(50, g(1))
    h2, _ = model.sample_header(50, g(1))
    assert torch.equal(h1, h2) and (h1 < torch.tensor(tok.header_vocab)).all()
    lengths = torch.tensor([1, 3, 7] * 10)
    recs = model.sample_records(h1[:30], s1[:30], lengths, g(2))
    assert recs.shape == (30, 7, len(tok.record_vocab))
    assert (recs < torch.tensor(tok.record_vocab)).all()
    assert torch.equal(recs, model.sample_records(h1[:30], s1[:30], lengths, g(2)))
    # temperature 0 is the mode: the same whatever the generator
    assert torch.equal(model.sample_header(5, g(3), 0.0)[0], model.sample_header(5, g(4), 0.0)[0])
