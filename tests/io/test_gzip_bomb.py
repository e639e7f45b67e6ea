"""Decompression bombs (issue 14, item 5a): a gzip capture may inflate to a bounded multiple of its size.

The bomb is made here (a pcap header and 20 MB of zeros, about 20 kB compressed); the limit's floor is
lowered by monkeypatching `limits.MIN_GZIP_LIMIT`, so the test stays small and fast.
"""
from __future__ import annotations

import gzip
import struct

import pytest

from tracesynth import limits
from tracesynth.cli import main
from tracesynth.errors import TraceFormatError
from tracesynth.io import read_trace

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def _bomb(tmp_path, inflated: int = 20 << 20, layers: int = 1):
    data = PCAP_HEADER + bytes(inflated)
    for _ in range(layers):
        data = gzip.compress(data, 9)
    path = tmp_path / "bomb.pcap.gz"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("layers", [1, 2])
def test_gzip_bomb_is_refused_naming_the_file(tmp_path, monkeypatch, layers):
    monkeypatch.setattr(limits, "MIN_GZIP_LIMIT", 1 << 20)
    path = _bomb(tmp_path, layers=layers)
    assert path.stat().st_size * limits.MAX_GZIP_RATIO < 20 << 20
    with pytest.raises(TraceFormatError) as info:
        read_trace(path)
    msg = str(info.value)
    assert msg.startswith(f"{path} at byte offset 0: gzip data inflates to more than ")
    assert "decompression bomb" in msg and "\n" not in msg


def test_inspect_on_a_gzip_bomb_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(limits, "MIN_GZIP_LIMIT", 1 << 20)
    path = _bomb(tmp_path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bomb.pcap.gz" in err and "decompression bomb" in err and "internal error" not in err


def test_gzip_within_the_ratio_is_read(tmp_path, monkeypatch):
    """A capture that inflates to less than MAX_GZIP_RATIO x its size is read as before."""
    from tsdata import shared

    monkeypatch.setattr(limits, "MIN_GZIP_LIMIT", 1)
    raw = shared("ndpi/ethereum.pcap").read_bytes()
    path = tmp_path / "ok.pcap.gz"
    path.write_bytes(gzip.compress(raw))
    assert len(raw) < limits.gzip_limit(path.stat().st_size)
    assert len(read_trace(path).table) == 2000


def test_gzip_limit_is_the_ratio_between_a_floor_and_a_cap():
    assert limits.gzip_limit(1000) == limits.MIN_GZIP_LIMIT
    assert limits.gzip_limit(10 << 20) == limits.MAX_GZIP_RATIO * (10 << 20)
    assert limits.gzip_limit(1 << 40) == limits.MAX_GUNZIPPED


def test_parquet_bomb_is_refused_from_its_footer(tmp_path, monkeypatch):
    """Parquet compresses too: 2M constant rows are a few kB on disk."""
    import pandas as pd

    monkeypatch.setattr(limits, "MIN_GZIP_LIMIT", 1 << 20)
    n = 2_000_000
    table = pd.DataFrame({"ts": [1.0] * n, "td": 0.5, "srcip": 1, "dstip": 2, "srcport": 3, "dstport": 4,
                          "proto": 6, "pkt": 1, "byt": 40})
    path = tmp_path / "bomb.parquet"
    table.to_parquet(path, index=False)
    assert path.stat().st_size * limits.MAX_GZIP_RATIO < n * 9 * 8
    with pytest.raises(TraceFormatError, match="refused as a decompression bomb"):
        read_trace(path)
    small = tmp_path / "ok.parquet"
    table.head(1000).to_parquet(small, index=False)
    assert len(read_trace(small).table) == 1000
