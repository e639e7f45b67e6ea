"""Held-out protocol: split a trace's flows at random into a training part and a held-out part.

Scoring a synthetic trace against the table the model was trained on rewards copying; scoring it against
held-out *flows* does not. The split is by whole 5-tuple flows (no flow has records on both sides), so a
classifier or a nearest-neighbour test cannot win by recognising a flow it has seen. Vectorised: one
factorisation of the packed 5-tuple (`schema.flow_key_words` via `flowstats.flow_codes`), one permutation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError
from ..schema import TraceKind, table_kind
from .flowstats import flow_codes

#: Each side of a split needs at least this many flows: fewer make every flow-level metric noise.
MIN_FLOWS_PER_SIDE = 10


@dataclass(frozen=True)
class Split:
    """A flow-disjoint train / held-out split of one trace (both tables keep the original row order)."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    kind: TraceKind
    seed: int
    holdout_fraction: float


def split_flows(table: pd.DataFrame, kind: TraceKind | None = None, *, holdout: float = 0.2,
                seed: int = 0) -> Split:
    """Put a seeded random `holdout` share of the 5-tuple flows (all their records) in the held-out part.

    The held-out part gets round(flows * holdout) flows, and each side at least MIN_FLOWS_PER_SIDE;
    a trace that cannot give both is a UserError naming its flow count.
    """
    if not 0.0 < holdout < 1.0:
        raise UserError(f"holdout fraction must be between 0 and 1 (exclusive), got {holdout}; try 0.2")
    actual = _kind_of(table)
    if kind is not None and kind != actual:
        raise UserError(f"expected a {kind} table to split, got a {actual} table")
    codes, n_flows = flow_codes(table)
    n_hold = int(round(n_flows * holdout))
    if min(n_hold, n_flows - n_hold) < MIN_FLOWS_PER_SIDE:
        raise UserError(f"the trace has {n_flows} flow(s) (5-tuples); a train/held-out split at holdout={holdout} "
                        f"needs at least {MIN_FLOWS_PER_SIDE} flows on each side: use a longer trace or change "
                        "--holdout")
    rng = np.random.default_rng(seed)
    held = np.zeros(n_flows, dtype=bool)
    held[rng.permutation(n_flows)[:n_hold]] = True
    mask = held[codes]
    return Split(train=table[~mask].reset_index(drop=True), holdout=table[mask].reset_index(drop=True),
                 kind=actual, seed=seed, holdout_fraction=holdout)


def _kind_of(table: pd.DataFrame) -> TraceKind:
    try:
        return table_kind(table)
    except ValueError as exc:
        raise UserError(f"cannot split: {exc}") from None
