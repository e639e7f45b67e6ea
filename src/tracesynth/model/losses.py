"""WGAN-GP losses for both critics and the generator.

The gradient penalty interpolates x_hat = a * real + (1 - a) * fake with a ~ U(0, 1) drawn per sample
(one `a` per flow, shared by all of that flow's input tensors). NetShare's PyTorch port draws a from
U(1, 1), which puts the penalty on the real samples only; tracesynth does not repeat that.

Every loss is also available per sample (`per_sample`), so a DP-SGD critic update can clip each
flow's gradient on its own: the terms of sample i depend only on real[i] and fake[i].
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

Batch = Sequence[torch.Tensor]


def sample_alpha(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """Interpolation weights a ~ U(0, 1), one per sample: [n]."""
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def interpolate(real: Batch, fake: Batch, alpha: torch.Tensor) -> list[torch.Tensor]:
    """x_hat = a * real + (1 - a) * fake for each input tensor; `alpha` [n] broadcasts per sample."""
    out = []
    for r, f in zip(real, fake):
        a = alpha.reshape(-1, *([1] * (r.dim() - 1))).to(r.dtype)
        out.append(a * r + (1.0 - a) * f)
    return out


class WassersteinGP:
    """Critic loss D(fake) - D(real) + lambda * (||grad D(x_hat)|| - 1)^2, averaged over the batch.

    Call it as `loss_fn(critic, real, fake) -> (loss, stats)`; `real` and `fake` are tuples of the
    critic's inputs (records, attributes) or (attributes,). `stats` holds detached scalar tensors.
    Interpolation weights come from `self.generator` (a torch.Generator), so runs are reproducible.
    """

    def __init__(self, gp_lambda: float = 10.0, generator: torch.Generator | None = None):
        self.gp_lambda = float(gp_lambda)
        #: source of the interpolation weights; the trainer sets its noise generator here
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def per_sample(self, critic: nn.Module, real: Batch, fake: Batch, alpha: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-sample critic loss [n] and its parts (each [n]); graph kept for backward."""
        n = real[0].shape[0]
        x_hat = [x.detach().requires_grad_(True) for x in interpolate(real, fake, alpha)]
        # one critic pass over [real; fake; x_hat] (3n rows): fewer, larger matmuls than three passes
        scores = critic(*[torch.cat([r, f, h]) for r, f, h in zip(real, fake, x_hat)])
        d_real, d_fake, d_hat = scores[:n], scores[n:2 * n], scores[2 * n:]  # [n] each
        grads = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=True)
        # the critic has no cross-sample layers, so grad of the sum gives each sample's own gradient
        sq = sum(g.flatten(1).pow(2).sum(dim=1) for g in grads)
        penalty = (torch.sqrt(sq + 1e-12) - 1.0).pow(2)  # [n]
        loss = d_fake - d_real + self.gp_lambda * penalty
        return loss, {"wasserstein": (d_real - d_fake).detach(), "gp": penalty.detach()}

    def sample_alpha(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Interpolation weights for n samples from this loss's generator (see `sample_alpha`)."""
        return sample_alpha(n, self.generator, device)

    def __call__(self, critic: nn.Module, real: Batch, fake: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        alpha = self.sample_alpha(real[0].shape[0], real[0].device)
        loss, parts = self.per_sample(critic, real, fake, alpha)
        stats = {k: v.mean() for k, v in parts.items()}
        mean = loss.mean()
        stats["loss"] = mean.detach()
        return mean, stats


def generator_loss(d_fake: torch.Tensor, d_attr_fake: torch.Tensor, attr_weight: float) -> torch.Tensor:
    """-D(fake) - w * D_attr(fake attributes), averaged over the batch."""
    return -d_fake.mean() - attr_weight * d_attr_fake.mean()


