"""Trivial generators that every model is judged beside: independent columns, and copying.

- `marginals`: each column drawn independently from the training table. Every per-field marginal is kept
  (per-field JSD ~ 0) while flows and the links between fields are destroyed: a model that does not beat it
  on the joint metrics (2-way marginals, classifier AUC, flow shapes) has learnt nothing.
- `copy`: training rows resampled with replacement. Perfect on fidelity; only the privacy metrics
  (exact copies, membership inference) tell it from a generator that generalises.
- `column_shuffle`: the marginals baseline without replacement (each column permuted), used by `evaluate`.
Each keeps the dtypes and returns a table sorted by time, so it reads as a trace.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..schema import TIME_COLUMN, table_kind


def _independent_columns(table: pd.DataFrame, n: int, rng: np.random.Generator, *, replace: bool) -> pd.DataFrame:
    """Draw every column on its own (with or without replacement), then sort the time column."""
    m = len(table)
    if m == 0 and n > 0:
        raise ValueError("cannot draw rows from an empty table")
    pick = (lambda: rng.integers(0, m, n)) if replace else (lambda: rng.permutation(m)[:n])
    out = pd.DataFrame({c: table[c].to_numpy()[pick()] for c in table.columns}, columns=table.columns)
    time_col = _time_column(out)
    if time_col is not None:
        out[time_col] = np.sort(out[time_col].to_numpy())
    return out


def _time_column(table: pd.DataFrame) -> str | None:
    try:
        return TIME_COLUMN[table_kind(table)]
    except ValueError:
        return None


def column_shuffle(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Return a copy of `table` whose columns are independently permuted (dtypes kept, time sorted)."""
    return _independent_columns(table, len(table), np.random.default_rng(seed), replace=False)


def marginals(train: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """`n` rows, each column drawn independently with replacement from `train` (sorted by time)."""
    return _independent_columns(train, n, np.random.default_rng(seed), replace=True)


def copy(train: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """`n` rows of `train` resampled with replacement (whole rows), sorted by time (stable)."""
    if len(train) == 0 and n > 0:
        raise ValueError("cannot draw rows from an empty table")
    rows = np.random.default_rng(seed).integers(0, len(train), n)
    out = train.iloc[rows].reset_index(drop=True)
    time_col = _time_column(out)
    if time_col is not None:
        out = out.iloc[np.argsort(out[time_col].to_numpy(), kind="stable")].reset_index(drop=True)
    return out


#: The built-in baseline rows of a benchmark: name -> generator(train, n, seed).
BASELINES: dict[str, Callable[[pd.DataFrame, int, int], pd.DataFrame]] = {"marginals": marginals, "copy": copy}
