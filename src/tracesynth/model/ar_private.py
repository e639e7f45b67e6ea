"""DP-SGD for the autoregressive flow model (`model/ar.py`): per-flow-sample gradients, clipping, noise,
Poisson batches, and the ledger (docs/privacy.md, "The ar model").

Why a second forward pass: DP-SGD clips each flow sample's gradient, and torch.func's `vmap(grad(...))`
computes those gradients in one batched call, but `nn.GRU` and `pack_padded_sequence` have no vmap
rules. So the per-flow NLL is rebuilt here from the model's own modules with the GRU written out as a
scan of its cell over the padded steps (masked past each flow's length), reading the module's own
parameters (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`; gates r, z, n in PyTorch's
order), so `ARFlowModel` keeps one set of parameters and its fast packed path for everything else.
`functional_nll` equals `ARFlowModel.forward` (tests/model/test_ar_private.py). The NLL has no
gradient inside it, so no second derivatives are needed (unlike DoppelGANger's gradient penalty).

The mechanism is DoppelGANger's (`model/privacy.py`): Poisson batches at a public rate q, every flow
sample's whole gradient clipped to C, summed, N(0, (sigma C)^2) per coordinate, divided by the expected
batch size, then an AdamW step (post-processing of the noisy gradient, as DoppelGANger's Adam step).
An empty batch still adds noise and steps. One Poisson sample feeds one noisy update, so the
accountant composes epochs x ceil(1/q) sampled Gaussians at multiplier sigma (`plan_ar_privacy`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .ar import MAX_POSITION, ARFlowModel
from .privacy import FlowCounts, PrivacyLedger, clip_and_sum, plan_privacy

#: what the ar model's guarantee protects (the ledger's `unit`)
AR_UNIT = ("flow sample: one flow (5-tuple) with at most max_flow_len records; a longer flow is split into k "
           "samples and is protected only at group level (about k times epsilon)")
#: flow samples whose per-sample gradients are held at once (memory: micro_batch x parameters floats)
MICRO_BATCH = 32


# ---- the functional forward pass ----------------------------------------------------------------------

def gru_scan(gru: nn.GRU, x: torch.Tensor, h0: torch.Tensor | None = None,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-layer batch-first `nn.GRU` as a loop over steps: (outputs [B, T, d], last state [B, d]).

    Where `mask[:, t]` is False the state is carried unchanged, so with padding at the end of each
    sequence the last state is the state at its length (what `pack_padded_sequence` gives); outputs at
    masked steps are not meaningful (the caller ignores them)."""
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    gi = F.linear(x, w_ih, b_ih)                                     # [B, T, 3d], all steps at once
    h = x.new_zeros(x.shape[0], gru.hidden_size) if h0 is None else h0
    outs = []
    for t in range(x.shape[1]):
        i_r, i_z, i_n = gi[:, t].chunk(3, dim=-1)
        h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        new = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
        h = new if mask is None else torch.where(mask[:, t, None], new, h)
        outs.append(h)
    return torch.stack(outs, dim=1), h


def _nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per position, as log-softmax + gather (both have vmap rules)."""
    return -torch.log_softmax(logits, dim=-1).gather(-1, target[..., None])[..., 0]


def functional_nll(model: ARFlowModel, header: torch.Tensor, used: torch.Tensor, records: torch.Tensor,
                   lengths: torch.Tensor) -> torch.Tensor:
    """Per-flow NLL [B], the same as `model(header, used, records, lengths)`, written without packing
    and without boolean indexing (data-dependent shapes), so that it runs under vmap."""
    out, state = gru_scan(model.h_gru, model._header_inputs(header))
    out = model.drop(out)
    nll = out.new_zeros(header.shape[0])
    for k, head in enumerate(model.h_heads):
        nll = nll + _nll(head(out[:, k]), header[:, k]) * used[:, k]
    return nll + _record_nll(model, records, lengths, header, state)


def _record_nll(model: ARFlowModel, records, lengths, header, state) -> torch.Tensor:
    """`ARFlowModel.record_loss` on padded steps: heads run on every step, the NLL is masked."""
    b, t, n_fields = records.shape
    steps = torch.arange(t, device=records.device)
    mask = steps[None] < lengths[:, None]                                  # [B, T]
    weight = mask.to(state.dtype)
    emb = sum(model.r_embed[j](records[:, :, j]) for j in range(n_fields)) * weight[..., None]
    prev = torch.cat([model.r_start.expand(b, 1, -1), emb[:, :-1]], dim=1)
    left = (lengths[:, None] - steps[None, :]).clamp(0, MAX_POSITION - 1)
    context, head_context = model._contexts(header, state)
    inputs = prev + model.r_step(steps.clamp(max=MAX_POSITION - 1))[None] + model.r_left(left) + context[:, None]
    out, _ = gru_scan(model.r_gru, inputs, torch.tanh(model.r_init(state)), mask)
    x = model.drop(out) + head_context[:, None]
    nll = state.new_zeros(b)
    for j, head in enumerate(model.r_heads):
        nll = nll + (_nll(head(x), records[:, :, j]) * weight).sum(1)
        x = x + model.r_embed[j](records[:, :, j])
    return nll


class _FunctionalNLL(nn.Module):
    """`functional_nll` as a module over the model's parameters, for `torch.func.functional_call`."""

    def __init__(self, model: ARFlowModel):
        super().__init__()
        self.net = model

    def forward(self, header, used, records, lengths):
        return functional_nll(self.net, header, used, records, lengths)


_PREFIX = "net."


def per_flow_gradients(model: ARFlowModel, batch: tuple) -> dict[str, torch.Tensor]:
    """{parameter name: [B, *shape]}: the gradient of each flow sample's own NLL (vmap over grad).

    Dropout draws independently per sample (`randomness="different"`), as in the batched model."""
    from torch.func import functional_call, grad, vmap

    wrapper = _FunctionalNLL(model)
    params = {k: v.detach() for k, v in wrapper.named_parameters() if v.requires_grad}

    def flow_loss(p, header, used, records, length):
        one = (header[None], used[None], records[None], length[None])
        return functional_call(wrapper, p, one).sum()

    grads = vmap(grad(flow_loss), in_dims=(None, 0, 0, 0, 0), randomness="different")(params, *batch)
    return {k[len(_PREFIX):]: g for k, g in grads.items()}


# ---- the DP-SGD step ------------------------------------------------------------------------------------

class DPFlowStep:
    """A `train_ar` `step_fn`: one DP-SGD step on a Poisson batch of flow samples.

    Each sample's gradient (`per_flow_gradients`, in micro-batches) is clipped to `clip_norm`, the sum
    gets N(0, (noise_multiplier * clip_norm)^2) per coordinate and is divided by the expected batch size
    (the drawn size is private), then the optimiser steps. The noise comes from torch's global
    generator, which `train_ar` seeds per epoch, so a resumed fit continues exactly. Returns NaN: the
    loss on the private batch is not privatised, so it is not reported (the history says NaN)."""

    def __init__(self, clip_norm: float, noise_multiplier: float, expected_batch_size: float,
                 micro_batch: int = MICRO_BATCH):
        self.clip_norm, self.noise_multiplier = float(clip_norm), float(noise_multiplier)
        self.expected_batch_size, self.micro_batch = float(expected_batch_size), int(micro_batch)
        self.releases = 0

    def noisy_gradient(self, model: ARFlowModel, batch: tuple) -> dict[str, torch.Tensor]:
        params = {k: p for k, p in model.named_parameters() if p.requires_grad}
        total = {k: torch.zeros_like(p) for k, p in params.items()}
        n = int(batch[0].shape[0])
        for start in range(0, n, self.micro_batch):
            part = tuple(x[start:start + self.micro_batch] for x in batch)
            summed, _ = clip_and_sum(per_flow_gradients(model, part), self.clip_norm)
            for k in total:
                total[k] += summed[k]
        std = self.noise_multiplier * self.clip_norm
        for k, p in params.items():
            if std > 0:
                total[k] += torch.normal(0.0, std, size=p.shape, device=p.device)
            total[k] /= self.expected_batch_size
        self.releases += 1
        return total

    def __call__(self, model: ARFlowModel, batch: tuple, optimizer: torch.optim.Optimizer) -> float:
        gradient = self.noisy_gradient(model, batch)
        optimizer.zero_grad(set_to_none=True)
        for k, p in model.named_parameters():
            if k in gradient:
                p.grad = gradient[k].to(p.dtype)
        optimizer.step()
        return math.nan


def poisson_batches(n_samples: int, sample_rate: float, steps: int):
    """A `train_ar` `batches_fn`: `steps` batches per epoch, each flow sample in each independently with
    probability `sample_rate` (both public: from the released count); batches may be empty."""

    def batches(rng: np.random.Generator) -> list[np.ndarray]:
        return [np.flatnonzero(rng.random(n_samples) < sample_rate) for _ in range(steps)]

    return batches


# ---- the plan ------------------------------------------------------------------------------------------

def plan_ar_privacy(privacy, distinct_flows: int, flow_samples: int, public_samples_per_flow: float,
                    batch_size: int, epochs: int, rng: np.random.Generator) -> PrivacyLedger:
    """Release the flow count and calibrate sigma for `epochs` DP epochs (`model.privacy.plan_privacy`).

    The count released is the private trace's distinct flows (sensitivity 1); the flow samples the
    schedule assumes are that x the public trace's samples per flow (public, free). From them q =
    batch_size / samples and ceil(1/q) steps per epoch, one noisy update per Poisson sample."""
    counts = FlowCounts(distinct=int(distinct_flows), per_chunk=(int(flow_samples),),
                        public_ratios=(float(public_samples_per_flow),))
    ledger = plan_privacy(privacy, counts, batch_size, [int(epochs)], critic_steps=1, rng=rng, updates_per_sample=1)
    ledger.unit = AR_UNIT
    return ledger


def dp_hooks(ledger: PrivacyLedger, n_samples: int, micro_batch: int = MICRO_BATCH) -> dict:
    """`train_ar` keyword arguments that make it DP-SGD under `ledger` over `n_samples` private samples."""
    q = ledger.sample_rate[0]
    steps = int(math.ceil(1.0 / q))
    return {"step_fn": DPFlowStep(ledger.clip, ledger.sigma, ledger.noisy_flow_counts[0] * q, micro_batch),
            "batches_fn": poisson_batches(n_samples, q, steps)}
