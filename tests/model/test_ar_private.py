"""DP-SGD for the autoregressive model (model/ar_private.py) on a real slice (caida-1k), tiny sizes: the
functional forward equals the module's, per-flow gradients equal single-flow autograd, each flow's
contribution is clipped to C, noise and empty batches, Poisson batches, and the plan's epsilon."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tracesynth.config import PrivacyConfig
from tracesynth.model.ar import MAX_POSITION, ARFlowModel, ARSizes
from tracesynth.model.ar_private import (AR_UNIT, DPFlowStep, functional_nll, per_flow_gradients,
                                         plan_ar_privacy, poisson_batches)
from tracesynth.model.ar_trainer import pad_batch
from tracesynth.model.privacy import spent_epsilon


def _model(tok, seed=0, dropout=0.1):
    torch.manual_seed(seed)
    return ARFlowModel(tok.header_vocab, tok.record_vocab, ARSizes(hidden=16, dropout=dropout))


def _batches(data, n=3, size=48):
    """Random batches plus one holding the longest flows (past MAX_POSITION) and length-1 flows."""
    rng = np.random.default_rng(0)
    order = np.argsort(data.lengths)
    yield np.r_[order[-8:], order[:8]]
    for _ in range(n):
        yield rng.choice(len(data), size, replace=False)


def test_functional_forward_equals_the_module(tokens):
    tok, data = tokens
    assert data.lengths.max() > MAX_POSITION  # the saturated step and remaining-records embeddings are covered
    model = _model(tok).eval()
    with torch.no_grad():
        for idx in _batches(data):
            batch = pad_batch(data, idx)
            # float32: the two differ only by summation order (NLLs reach ~1000 nats for 100-record flows)
            torch.testing.assert_close(functional_nll(model, *batch), model(*batch), atol=1e-5, rtol=2e-6)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model64 = _model(tok).double().eval()
        with torch.no_grad():
            for idx in _batches(data):
                header, used, records, lengths = pad_batch(data, idx)
                batch = (header, used.double(), records, lengths)
                torch.testing.assert_close(functional_nll(model64, *batch), model64(*batch), atol=1e-5, rtol=0)
    finally:
        torch.set_default_dtype(old)


def test_per_flow_gradients_equal_single_flow_autograd(tokens):
    tok, data = tokens
    model = _model(tok).eval()
    idx = np.r_[np.argmax(data.lengths), np.argmin(data.lengths), np.arange(6)]
    grads = per_flow_gradients(model, pad_batch(data, idx))  # padded to the longest flow of the batch
    params = dict(model.named_parameters())
    assert set(grads) == set(params)
    for i, flow in enumerate(idx):
        model.zero_grad()
        model(*pad_batch(data, np.array([flow]))).sum().backward()  # the module's packed path, alone
        for name, p in params.items():   # a head no row of this flow is scored on gets no gradient at all
            expected = p.grad if p.grad is not None else torch.zeros_like(p)
            torch.testing.assert_close(grads[name][i], expected, atol=1e-5, rtol=1e-4, msg=name)


def _single_grads(model, data, idx):
    out = []
    for flow in idx:
        model.zero_grad()
        model(*pad_batch(data, np.array([flow]))).sum().backward()
        out.append({k: torch.zeros_like(p) if p.grad is None else p.grad.clone() for k, p in model.named_parameters()})
    return out


def test_each_flow_is_clipped_to_c(tokens):
    """Without noise, the step's gradient x expected batch size is the sum of each flow's gradient scaled
    to norm <= C; a flow's norm here is far above C, so each one contributes exactly C."""
    tok, data = tokens
    model = _model(tok).eval()
    idx = np.arange(10)
    clip = 0.5
    step = DPFlowStep(clip, 0.0, expected_batch_size=4.0, micro_batch=3)   # micro-batches of 3, 3, 3, 1
    noisy = step.noisy_gradient(model, pad_batch(data, idx))
    expected = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for g in _single_grads(model, data, idx):
        norm = math.sqrt(sum(float(v.pow(2).sum()) for v in g.values()))
        assert norm > clip
        for k in expected:
            expected[k] += g[k] * min(1.0, clip / (norm + 1e-6))
    for k in expected:
        torch.testing.assert_close(noisy[k] * 4.0, expected[k], atol=1e-5, rtol=1e-4)
    one = step.noisy_gradient(model, pad_batch(data, idx[:1]))
    norm_one = math.sqrt(sum(float(v.pow(2).sum()) for v in one.values())) * 4.0
    assert norm_one == pytest.approx(clip, rel=1e-4)


def test_noise_and_empty_batches(tokens):
    """An empty Poisson batch still releases noise of std sigma C / expected batch and steps the model."""
    tok, data = tokens
    model = _model(tok)
    empty = pad_batch(data, np.array([], dtype=np.int64))
    step = DPFlowStep(clip_norm=2.0, noise_multiplier=3.0, expected_batch_size=10.0)
    torch.manual_seed(1)
    noise = torch.cat([g.flatten() for g in step.noisy_gradient(model, empty).values()])
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.01) and float(noise.std()) == pytest.approx(0.6, rel=0.02)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    assert math.isnan(step(model, empty, opt))  # the private loss is never reported
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert step.releases == 2


def test_poisson_batches_keep_each_sample_independently():
    make = poisson_batches(2000, 0.05, steps=40)
    batches = make(np.random.default_rng(3))
    assert len(batches) == 40
    sizes = np.array([len(b) for b in batches])
    assert sizes.mean() == pytest.approx(100, rel=0.1) and sizes.std() > 0
    assert all(np.all(np.diff(b) > 0) and (b.size == 0 or b.max() < 2000) for b in batches)
    assert all(np.array_equal(a, b) for a, b in zip(batches, make(np.random.default_rng(3))))


def test_plan_meets_the_target_and_counts_every_step():
    privacy = PrivacyConfig(epsilon=2.0)
    ledger = plan_ar_privacy(privacy, distinct_flows=400, flow_samples=420, public_samples_per_flow=1.1,
                             batch_size=64, epochs=3, rng=np.random.default_rng(0))
    q = ledger.sample_rate[0]
    assert ledger.epsilon <= 2.0 + 1e-9 and ledger.sigma > 0 and ledger.updates_per_sample == 1
    assert q == pytest.approx(64 / ledger.noisy_flow_counts[0])
    assert ledger.steps == [3 * math.ceil(1 / q)] and ledger.epochs == [3]
    assert ledger.size_shares == "public trace" and ledger.count_releases == 1 and ledger.unit == AR_UNIT
    # the noisy count is the released distinct flows x the public samples per flow (post-processing)
    assert ledger.noisy_flow_counts[0] == max(1, round(ledger.noisy_flow_total * 1.1))
    again = spent_epsilon(sigma=ledger.sigma, sample_rate=ledger.sample_rate, steps=ledger.steps, delta=1e-5,
                          count_sigma=ledger.count_sigma)
    assert again == pytest.approx(ledger.epsilon)
