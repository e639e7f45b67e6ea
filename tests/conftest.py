"""Shared test fixtures (paths of real traces under ../shared/data; see tsdata.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Two shared cores make wall-clock deadlines meaningless: property tests check behaviour, not speed.
settings.register_profile("tracesynth", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tracesynth")

from tsdata import SHARED_DATA, shared  # noqa: F401  (re-exported for fixtures below)


@pytest.fixture
def shared_data():
    return shared


@pytest.fixture(scope="session")
def caida_10k() -> Path:
    return shared("caida/caida-10k.pcapng")


@pytest.fixture(scope="session")
def caida_1k() -> Path:
    return shared("caida/caida-1k.pcapng")


@pytest.fixture(scope="session")
def ugr16_1k() -> Path:
    return shared("ugr16/ugr16-1k.csv")
