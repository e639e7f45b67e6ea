"""pcap writer: real captures round-trip exactly through tracesynth, dpkt validates every header and
checksum, tshark/tcpdump open the files without complaint."""
from __future__ import annotations

import shutil
import struct
import subprocess

import dpkt
import numpy as np
import pandas as pd
import pytest

from tsdata import shared
from tracesynth.errors import UserError
from tracesynth.io import read_trace, write_trace
from tracesynth.io.pcap import read_packets
from tracesynth.io.pcap_writer import write_pcap
from tracesynth.schema import PACKET_COLUMNS

CAPTURES = ["caida/caida-10k.pcapng", "iot23/honeypot-4-1.pcap", "ndpi/KakaoTalk_talk.pcap"]


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("linktype,nano", [("raw", False), ("ethernet", True)])
def test_round_trip_keeps_every_canonical_column(tmp_path, name, linktype, nano):
    table = read_packets(shared(name)).table
    out = write_pcap(table, tmp_path / "out.pcap", linktype=linktype, nanosecond=nano)
    back = read_packets(out)
    assert back.report.records_seen == back.report.records_kept == len(table)
    assert back.report.link_types == {101 if linktype == "raw" else 1: len(table)}
    for col in PACKET_COLUMNS:
        if col == "time":
            np.testing.assert_allclose(back.table[col], table[col], rtol=0, atol=1e-7)
        else:
            np.testing.assert_array_equal(back.table[col], table[col], err_msg=col)


def _checksum_ok(ip: dpkt.ip.IP, l4: bytes) -> bool:
    """The documented rule: pseudo-header (L4 length = pkt_len - 20) + header, payload taken as zeros."""
    pseudo = ip.src + ip.dst + struct.pack(">BBH", 0, ip.p, ip.len - 20)
    return dpkt.in_cksum(pseudo + l4) == 0


@pytest.mark.parametrize("linktype", ["raw", "ethernet"])
def test_dpkt_parses_every_record_with_valid_checksums(tmp_path, linktype):
    table = read_packets(shared("iot23/honeypot-4-1.pcap")).table.iloc[:4000]
    out = write_pcap(table, tmp_path / "out.pcap", linktype=linktype)
    counts = {"tcp": 0, "udp": 0}
    with open(out, "rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        for (ts, buf), row in zip(reader, table.itertuples(index=False)):
            raw = buf[14:] if linktype == "ethernet" else buf
            ip = dpkt.ip.IP(raw)
            assert dpkt.in_cksum(raw[:20]) == 0
            assert (ip.len, ip.ttl, ip.id, ip.p, ip.tos) == (row.pkt_len, row.ttl, row.id, row.proto, row.tos)
            if row.off == 0 and row.proto == 6 and row.pkt_len >= 40:
                assert isinstance(ip.data, dpkt.tcp.TCP) and ip.data.flags == row.tcp_flags
                assert _checksum_ok(ip, raw[20:20 + 4 * ip.data.off])  # SYNs carry options
                counts["tcp"] += 1
            elif row.off == 0 and row.proto == 17 and row.pkt_len >= 28:
                assert isinstance(ip.data, dpkt.udp.UDP) and ip.data.ulen == row.pkt_len - 20
                assert _checksum_ok(ip, raw[20:28])
                counts["udp"] += 1
    assert counts["tcp"] > 100 and counts["udp"] > 100


def test_tiny_pkt_len_writes_what_fits_and_wire_length_covers_caplen(tmp_path):
    table = read_packets(shared("caida/caida-1k.pcapng")).table.iloc[:50].copy()
    table["proto"], table["off"] = 6, 0
    table["pkt_len"] = np.arange(50, dtype=np.uint16) % 45  # 0..44: below, inside and past the headers
    out = write_pcap(table, tmp_path / "tiny.pcap")
    data = out.read_bytes()
    pos, seen = 24, 0
    while pos < len(data):
        ts, frac, incl, orig = struct.unpack_from("<IIII", data, pos)
        k = int(table["pkt_len"].iloc[seen])
        assert incl == 20 + min(max(k - 20, 0), 20) and orig >= incl
        pos += 16 + incl
        seen += 1
    assert seen == 50
    back = read_packets(out).table
    np.testing.assert_array_equal(back["pkt_len"], table["pkt_len"])


@pytest.mark.parametrize("tool", [["tshark", "-n", "-r"], ["tcpdump", "-n", "-r"]])
def test_tshark_and_tcpdump_read_without_errors(tmp_path, tool):
    if shutil.which(tool[0]) is None:
        pytest.skip(f"{tool[0]} is not installed (apt-get install -y {tool[0]})")
    table = read_packets(shared("iot23/honeypot-4-1.pcap")).table.iloc[:2000]
    for linktype in ("raw", "ethernet"):
        out = write_pcap(table, tmp_path / f"{linktype}.pcap", linktype=linktype, nanosecond=True)
        done = subprocess.run([*tool, str(out)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        assert len(lines) == len(table)
        assert "malformed" not in done.stdout.lower() and "bogus" not in done.stdout.lower()


def test_write_trace_dispatches_and_is_atomic(tmp_path):
    table = read_packets(shared("caida/caida-1k.pcapng")).table
    out = write_trace(table, tmp_path / "out.pcap", linktype="ethernet")
    pd.testing.assert_frame_equal(read_trace(out).table[list(PACKET_COLUMNS)], table[list(PACKET_COLUMNS)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pcap"]


def test_bad_tables_are_user_errors_and_leave_no_file(tmp_path):
    table = read_packets(shared("caida/caida-1k.pcapng")).table
    with pytest.raises(UserError, match="ttl"):
        write_pcap(table.drop(columns="ttl"), tmp_path / "a.pcap")
    bad = table.copy()
    bad.loc[3, "time"] = np.nan
    with pytest.raises(UserError, match="time"):
        write_pcap(bad, tmp_path / "b.pcap")
    with pytest.raises(UserError, match="link type"):
        write_pcap(table, tmp_path / "c.pcap", linktype="ppp")
    assert list(tmp_path.iterdir()) == []
