"""Checkpoint selection on a held-out time slice of the real trace (NETSHARE.md section 6).

NetShare ranks checkpoints against the *training* records, which rewards memorisation. tracesynth
holds out the last `holdout_fraction` of each chunk's window (never trained on) and picks, per chunk,
the checkpoint whose generated records have the smallest sum of per-field distances to it: NetShare's
JSDs (SA, DA, SP, DP, PR) plus the scale-free EMD of every per-record field. Off in DP mode (selection
would read private data outside the privacy budget).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..evaluate.fidelity import netshare_jsd
from ..evaluate.metrics import categorical_jsd, scaled_emd

log = logging.getLogger(__name__)


def holdout_start(window: tuple[float, float], fraction: float) -> float:
    """First time of the held-out slice: the last `fraction` of the chunk window."""
    start, end = window
    return end - fraction * (end - start)


def field_distance(real: pd.DataFrame, synth: pd.DataFrame, feature_fields: list[str],
                   categorical: set[str]) -> float:
    """Sum of per-field distances (lower is closer). Empty synthetic output scores infinity."""
    if len(synth) == 0 or len(real) == 0:
        return float("inf")
    total = float(sum(v for v in netshare_jsd(real, synth).values() if np.isfinite(v)))
    for name in feature_fields:
        if name not in real.columns or name not in synth.columns:
            continue
        if name in categorical:
            total += categorical_jsd(real[name].to_numpy(), synth[name].to_numpy())
        else:
            value = scaled_emd(real[name].to_numpy(np.float64), synth[name].to_numpy(np.float64))
            if np.isfinite(value):
                total += value
    return total


def pick_checkpoint(scores: dict[int, float]) -> int:
    """Epoch with the lowest score; ties go to the later checkpoint (more training)."""
    best = min(scores.values())
    return max(epoch for epoch, score in scores.items() if score == best)
