"""Where the tests find real traces. Real traces come from ../shared/data (never copied into the
repository); tests that need them skip with a clear reason when the folder is absent.

Import it as `from tsdata import shared` (tests/ is on sys.path through the root conftest)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRACESYNTH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared(relative: str) -> Path:
    """Path of a file under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real trace {relative} not found under {SHARED_DATA} (../shared/data is absent)")
    return path


def packets_table(rows):
    """A canonical packet table from hand-written rows (time, src, dst, sport, dport, proto, pkt_len);
    every other header field zero."""
    import pandas as pd

    from tracesynth.schema import PACKET_COLUMNS

    frame = pd.DataFrame(rows, columns=["time", "srcip", "dstip", "srcport", "dstport", "proto", "pkt_len"])
    for col in PACKET_COLUMNS:
        if col not in frame:
            frame[col] = 0
    return frame.astype(PACKET_COLUMNS)
