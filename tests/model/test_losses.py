"""WGAN-GP: interpolation weights a ~ U(0, 1) per sample, known penalty values, per-sample terms."""
from __future__ import annotations

import torch
from torch import nn

from tracesynth.model.losses import WassersteinGP, generator_loss, interpolate, sample_alpha

torch.set_num_threads(1)


def test_interpolates_lie_strictly_between_real_and_fake():
    n = 2000
    g = torch.Generator().manual_seed(0)
    real = (torch.zeros(n, 4, 3), torch.zeros(n, 5))
    fake = (torch.ones(n, 4, 3), torch.ones(n, 5))
    alpha = sample_alpha(n, g)
    x_records, x_attrs = interpolate(real, fake, alpha)
    # x_hat = a * 0 + (1 - a) * 1 = 1 - a: strictly inside (0, 1), never on the real side (NetShare's a == 1)
    assert torch.all((x_records > 0) & (x_records < 1)) and torch.all((x_attrs > 0) & (x_attrs < 1))
    # one weight per sample, shared by all of that sample's inputs
    assert torch.all(x_records == x_records[:, :1, :1]) and torch.allclose(x_records[:, 0, 0], x_attrs[:, 0])
    # uniform over (0, 1): mean ~ 1/2, spread over the whole interval
    assert abs(float(alpha.mean()) - 0.5) < 0.03
    assert float(alpha.min()) < 0.01 and float(alpha.max()) > 0.99
    assert torch.histc(alpha, bins=10, min=0, max=1).min() > 150


class _Linear(nn.Module):
    """D(x) = w . x on the flattened inputs: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.flatten(1) for x in inputs], 1) @ self.w


def test_penalty_and_wasserstein_known_values():
    w = torch.tensor([3.0, 0.0, 4.0])  # ||w|| = 5 -> penalty (5 - 1)^2 = 16 for every sample
    critic = _Linear(w)
    real = (torch.tensor([[1.0, 0.0, 1.0], [2.0, 2.0, 2.0]]),)
    fake = (torch.zeros(2, 3),)
    loss_fn = WassersteinGP(gp_lambda=10.0, generator=torch.Generator().manual_seed(1))
    per_sample, parts = loss_fn.per_sample(critic, real, fake, torch.tensor([0.3, 0.8]))
    torch.testing.assert_close(parts["gp"], torch.tensor([16.0, 16.0]))
    torch.testing.assert_close(parts["wasserstein"], torch.tensor([7.0, 14.0]))
    torch.testing.assert_close(per_sample, torch.tensor([-7.0 + 160.0, -14.0 + 160.0]))
    mean, stats = loss_fn(critic, real, fake)
    torch.testing.assert_close(mean, torch.tensor(149.5))
    mean.backward()  # d/dw of the penalty needs the double backward: the gradient exists and is finite
    assert critic.w.grad is not None and torch.all(torch.isfinite(critic.w.grad))
    unit = _Linear(torch.tensor([0.6, 0.0, 0.8]))  # a 1-Lipschitz critic pays no penalty
    _, parts = loss_fn.per_sample(unit, real, fake, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(parts["gp"], torch.zeros(2), atol=1e-6, rtol=0)


def test_generator_loss_weights_the_attribute_critic():
    d_fake, d_attr = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0])
    assert float(generator_loss(d_fake, d_attr, 1.0)) == -4.0
    assert float(generator_loss(d_fake, d_attr, 0.5)) == -3.0
