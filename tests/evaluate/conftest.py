"""Fixtures for evaluation tests: real tables read through tracesynth.io.read_trace (skip when absent)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracesynth.io import read_trace


@pytest.fixture(scope="session")
def caida_table(caida_10k) -> pd.DataFrame:
    return read_trace(caida_10k).table


@pytest.fixture(scope="session")
def caida_small(caida_1k) -> pd.DataFrame:
    return read_trace(caida_1k).table


@pytest.fixture(scope="session")
def ugr_table(ugr16_1k) -> pd.DataFrame:
    return read_trace(ugr16_1k).table


@pytest.fixture(scope="session")
def perturb():
    """The `perturbed` function, as a fixture (test folders are not packages)."""
    return perturbed


def perturbed(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A stand-in "synthetic" table: sizes jittered, ports of a tenth of the records redrawn."""
    rng = np.random.default_rng(seed)
    out = table.copy()
    size = "pkt_len" if "pkt_len" in out.columns else "byt"
    upper = 1500 if size == "pkt_len" else None
    out[size] = np.clip(out[size].astype(np.int64) + rng.integers(-20, 21, len(out)), 40, upper).astype(out[size].dtype)
    pick = rng.random(len(out)) < 0.1
    out.loc[pick, "dstport"] = rng.integers(1024, 65536, int(pick.sum())).astype(np.uint16)
    return out
