"""Hypothesis: real captures mutated byte by byte, or truncated anywhere, either read or raise the
project's own TraceFormatError (a UserError) -- never another exception."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdata import SHARED_DATA
from tracesynth.errors import TraceFormatError
from tracesynth.io.pcap import read_packets

SOURCES = ["caida/caida-1k.pcapng", "ndpi/rdp.pcap"]


def _head(name: str, n_bytes: int = 6000) -> bytes:
    path = SHARED_DATA / name
    return path.read_bytes()[:n_bytes] if path.exists() else b""


SEEDS = {name: _head(name) for name in SOURCES}
SEEDS = {k: v for k, v in SEEDS.items() if v}


def _read(data: bytes, tmp: Path) -> None:
    path = tmp / "mutant.cap"
    path.write_bytes(data)
    try:
        trace = read_packets(path)
    except TraceFormatError as exc:
        assert str(path) in str(exc)
        return
    assert trace.report.records_kept == len(trace.table) <= trace.report.records_seen


mutation = st.lists(st.tuples(st.integers(0, 5999), st.integers(0, 255)), min_size=1, max_size=8)
_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_settings
@given(source=st.sampled_from(sorted(SEEDS) or ["none"]), edits=mutation, cut=st.integers(0, 6000),
       compress=st.booleans())
def test_mutated_captures_read_or_raise_trace_format_error(tmp_path_factory, source, edits, cut, compress):
    if source not in SEEDS:
        pytest.skip(f"real captures not found under {SHARED_DATA}")
    data = bytearray(SEEDS[source])
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    data = bytes(data[:cut]) if cut < len(data) and cut % 3 == 0 else bytes(data)
    if compress:
        data = gzip.compress(data)
        if cut % 5 == 0:
            data = data[: max(2, len(data) - cut % 40)]
    _read(data, tmp_path_factory.mktemp("mut"))


@_settings
@given(source=st.sampled_from(sorted(SEEDS) or ["none"]), cut=st.integers(0, 6000))
def test_truncated_captures_keep_a_prefix(tmp_path_factory, source, cut):
    if source not in SEEDS:
        pytest.skip(f"real captures not found under {SHARED_DATA}")
    _read(SEEDS[source][:cut], tmp_path_factory.mktemp("cut"))
