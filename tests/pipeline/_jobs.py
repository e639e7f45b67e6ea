"""Module-level job functions for runner tests (spawned workers must be able to import them)."""
from __future__ import annotations

import numpy as np


def seeded_sum(job: tuple[int, int]) -> float:
    seed, n = job
    return float(np.random.default_rng(seed).standard_normal(n).sum())
