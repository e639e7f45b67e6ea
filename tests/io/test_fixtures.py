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


def test_pcapfix_damaged_capture_is_refused_unless_salvaged():
    """Record 2 of this deliberately damaged file has a 16,896-byte length and 72,084,305 microseconds, with
    8,772 of its 8,886 bytes after it: corruption in the middle, not a cut-off end."""
    path = FIXTURES / "debian-examples" / "pcapfix" / "test_damaged.pcap"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with pytest.raises(TraceFormatError, match=r"at byte offset 114: .*1 packet\(s\) were read before it.*--salvage"):
        read_packets(path)
    trace = read_packets(path, salvage=True)
    assert len(trace.table) == 1 and "byte offset 114" in trace.report.warnings[0]
