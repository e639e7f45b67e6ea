"""Shared test fixtures. Real traces come from ../shared/data (never copied into the repository);
tests that need them skip with a clear reason when the folder is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRACESYNTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE_DIR = ROOT / "src" / "tracesynth" / "data"


def shared(relative: str) -> Path:
    """Path of a file under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real trace {relative} not found under {SHARED_DATA} (../shared/data is absent)")
    return path


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
