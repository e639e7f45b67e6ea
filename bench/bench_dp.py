"""DP-SGD cost and calibration figures (2-core CPU friendly, about a minute).

1. Calibrated noise multiplier per target epsilon for a CAIDA-10k-sized schedule (3,149 flows, batch 100,
   5 critic steps, 2 critics per Poisson sample, 10 chunks: chunk 0 for E epochs, 9 fine-tunes for E/4),
   with the RDP accountant, and what NetShare's accounting (each batch counted twice, no composition
   over chunks) would have claimed for the same sigma.
2. Seconds per critic update, DP-SGD (torch.func per-sample gradients with the gradient penalty) vs the
   ordinary batch update, on the DoppelGANger critic at NetShare's PCAP sizes.

Run: .venv/bin/python bench/bench_dp.py
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from tracesynth.config import PrivacyConfig
from tracesynth.model.losses import WassersteinGP
from tracesynth.model.networks import Critic
from tracesynth.model.privacy import DPCriticUpdate, plan_privacy, spent_epsilon
from tracesynth.model.trainer import critic_step

logging.basicConfig(level=logging.WARNING)


def calibration_table() -> None:
    n_flows, batch, critic_steps, epochs, chunks = 3149, 100, 5, 8, 10
    per_chunk = [n_flows // chunks] * chunks
    schedule = [epochs] + [max(1, epochs // 4)] * (chunks - 1)
    print(f"schedule: {chunks} chunks of ~{per_chunk[0]} flows, batch {batch}, critic_steps {critic_steps}, "
          f"epochs {schedule[0]} + {chunks - 1} x {schedule[1]}")
    print(f"{'epsilon':>8} {'acct':>4} {'sigma':>8} {'count_sigma':>11} {'achieved':>9} {'NetShare-style claim':>21}")
    for eps in (1, 2, 4, 8, 16):
        for acct in ("rdp",):  # opacus' PRV accountant is far slower on the q = 1 count release
            t0 = time.perf_counter()
            ledger = plan_privacy(PrivacyConfig(epsilon=eps, accountant=acct), per_chunk, batch, schedule,
                                  critic_steps, np.random.default_rng(0))
            # NetShare: 2 releases per batch instead of 10, and only chunk 0 counted
            naive = spent_epsilon(sigma=ledger.sigma, sample_rate=ledger.sample_rate[0],
                                  steps=2 * ledger.steps[0] // (2 * critic_steps), delta=ledger.delta,
                                  accountant="rdp")
            print(f"{eps:>8} {acct:>4} {ledger.sigma:>8.3f} {ledger.count_sigma:>11.2f} {ledger.epsilon:>9.3f} "
                  f"{naive:>21.3f}   ({time.perf_counter() - t0:.1f} s)")


def update_cost(repeats: int = 3) -> None:
    torch.manual_seed(0)
    max_len, record_dim, attr_dim, batch = 100, 12, 158, 100
    g = torch.Generator().manual_seed(0)
    real = (torch.rand(batch, max_len, record_dim, generator=g), torch.rand(batch, attr_dim, generator=g))
    fake = (torch.rand(batch, max_len, record_dim, generator=g), torch.rand(batch, attr_dim, generator=g))
    times = {}
    for name in ("plain", "dp"):
        critic = Critic(attr_dim, record_dim, max_len, 4, 512)
        opt = torch.optim.Adam(critic.parameters(), lr=1e-4)
        loss_fn = WassersteinGP(10.0, torch.Generator().manual_seed(1))
        dp = DPCriticUpdate(1.0, 1.0, batch, 10.0, micro_batch=25)
        step = (lambda: critic_step(critic, opt, real, fake, loss_fn)) if name == "plain" else \
            (lambda: dp(critic, opt, real, fake, loss_fn))
        step()  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            step()
        times[name] = (time.perf_counter() - t0) / repeats
    n_params = sum(p.numel() for p in Critic(attr_dim, record_dim, max_len, 4, 512).parameters())
    print(f"critic update, batch {batch}, critic 4x512 on L={max_len} x {record_dim} + {attr_dim} "
          f"({n_params / 1e6:.2f} M params), {torch.get_num_threads()} threads:")
    print(f"  plain WGAN-GP step {times['plain'] * 1e3:8.1f} ms")
    print(f"  DP-SGD step        {times['dp'] * 1e3:8.1f} ms   ratio {times['dp'] / times['plain']:.1f}x")


if __name__ == "__main__":
    calibration_table()
    update_cost()
