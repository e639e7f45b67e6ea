"""Robustness corpus: every file under fixtures/ (tcpdump, Wireshark, damaged pcapfix, double-gzip
libtrace, dpkt examples) yields packets or exactly one TraceFormatError naming the file."""
from __future__ import annotations

from pathlib import Path

import pytest

from tsdata import SHARED_DATA
from tracesynth.errors import TraceFormatError
from tracesynth.io.pcap import read_packets

FIXTURES = SHARED_DATA / "fixtures"
FILES = sorted(p for p in FIXTURES.rglob("*") if p.is_file()) if FIXTURES.is_dir() else []
GROUPS = sorted({p.relative_to(FIXTURES).parts[0] for p in FILES}) or ["absent"]


def _outcome(path: Path) -> str:
    try:
        trace = read_packets(path)
    except TraceFormatError as exc:
        assert str(path) in str(exc)
        assert exc.offset is not None, f"{path}: error without a byte offset: {exc}"
        return "error"
    report = trace.report
    assert report.records_kept == len(trace.table)
    assert report.records_kept <= report.records_seen
    return "packets"


@pytest.mark.parametrize("group", GROUPS)
def test_every_fixture_gives_packets_or_one_clear_error(group):
    files = [p for p in FILES if p.relative_to(FIXTURES).parts[0] == group]
    if not files:
        pytest.skip(f"fixtures not found under {FIXTURES}")
    outcomes = [_outcome(p) for p in files]
    assert "packets" in outcomes  # each corpus holds readable captures too


def test_pcapfix_damaged_capture_keeps_packets_before_the_damage():
    path = FIXTURES / "debian-examples" / "pcapfix" / "test_damaged.pcap"
    if not path.exists():
        pytest.skip(f"{path} not found")
    trace = read_packets(path)
    assert len(trace.table) >= 1 and "byte offset" in trace.report.warnings[0]
