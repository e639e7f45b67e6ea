"""Checkpoint selection on a held-out time slice of the real trace (NETSHARE.md section 6).

NetShare ranks checkpoints against the *training* records, which rewards memorisation. tracesynth
holds out the last `holdout_fraction` of each chunk's window (never trained on) and picks, per chunk,
the checkpoint whose generated records have the smallest sum of per-field distances to it: NetShare's
JSDs (SA, DA, SP, DP, PR) plus the scale-free EMD of every per-record field. Off in DP mode (selection
would read private data outside the privacy budget).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import TraceSynthConfig
from ..evaluate.fidelity import netshare_jsd
from ..evaluate.metrics import categorical_jsd, scaled_emd
from ..schema import TIME_COLUMN
from . import generation

log = logging.getLogger(__name__)


@dataclass
class Holdout:
    """A chunk's held-out slice: the records from `start` to the window's end (never trained on)."""

    start: float
    records: pd.DataFrame


def use_holdout(cfg: TraceSynthConfig) -> bool:
    """Hold out a slice only when selection will happen: on, not DP, and >1 checkpoint expected."""
    t = cfg.training
    return bool(t.checkpoint_selection and cfg.privacy is None and t.holdout_fraction > 0
                and t.epochs // t.checkpoint_every > 1)


def split_holdout(chunk, cfg: TraceSynthConfig, holdout: bool):
    """A chunk's (`flows.chunking.Chunk`) training flows (records before the held-out slice) and the
    slice, or (all flows, None) without one."""
    flows = chunk.flows
    if not holdout or flows.n_flows == 0:
        return flows, None
    start = holdout_start(chunk.window, cfg.training.holdout_fraction)
    series = flows.series
    times = generation.absolute_times(flows.attributes["flow_start"].to_numpy(np.float64),
                                      series["flow_id"].to_numpy(np.int64), series["iat"].to_numpy(np.float64))
    keep_flows = np.unique(series["flow_id"].to_numpy(np.int64)[times < start])
    train = flows.select(keep_flows)
    train_series = train.series
    t2 = generation.absolute_times(train.attributes["flow_start"].to_numpy(np.float64),
                                   train_series["flow_id"].to_numpy(np.int64), train_series["iat"].to_numpy(np.float64))
    train.series = train_series[t2 < start].reset_index(drop=True)
    time_col = TIME_COLUMN[cfg.kind]
    return train, Holdout(float(start), chunk.records[chunk.records[time_col] >= start])


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


def config_distance(real: pd.DataFrame, synth: pd.DataFrame, cfg: TraceSynthConfig) -> float:
    """`field_distance` over the config's feature fields (categorical ones by JSD)."""
    features = [f.name for f in cfg.fields if f.role == "feature"]
    return field_distance(real, synth, features, {f.name for f in cfg.fields if f.encoding == "categorical"})


def pick_checkpoint(scores: dict[int, float]) -> int:
    """Epoch with the lowest score; ties go to the later checkpoint (more training)."""
    best = min(scores.values())
    return max(epoch for epoch, score in scores.items() if score == best)
