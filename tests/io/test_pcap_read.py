"""Packet reader: field-by-field agreement with dpkt on real captures of every supported link type,
both byte orders, ns timestamps, pcapng sections/interfaces/block kinds, gzip, truncation, both walkers."""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest

from tsdata import shared
from tracesynth.errors import TraceFormatError
from tracesynth.io import read_trace
from tracesynth.io.pcap import read_packets
from tracesynth.schema import PACKET_COLUMNS

COLUMNS = list(PACKET_COLUMNS)


def _dpkt_ip(datalink: int, buf: bytes):
    """dpkt's view of the IPv4 packet inside one record, or None when dpkt sees no IPv4 packet."""
    try:
        if datalink == 1:
            ip = dpkt.ethernet.Ethernet(buf).data
        elif datalink == 113:
            ip = dpkt.sll.SLL(buf).data
        elif datalink in (0, 108):
            ip = dpkt.loopback.Loopback(buf).data
        elif datalink in (101, 12, 14):
            ip = dpkt.ip.IP(buf) if buf and buf[0] >> 4 == 4 else None
        else:
            raise AssertionError(f"no dpkt reference for link type {datalink}")
    except (dpkt.NeedData, dpkt.UnpackError):
        return None
    if not isinstance(ip, dpkt.ip.IP) or ip.v != 4 or ip.hl < 5:
        return None
    return ip


def dpkt_table(path: Path) -> pd.DataFrame:
    """Reference packet table built with dpkt's parsers, one Python object per packet."""
    rows = []
    with open(path, "rb") as fh:
        reader = dpkt.pcap.UniversalReader(fh)
        datalink = reader.datalink()
        for ts, buf in reader:
            ip = _dpkt_ip(datalink, buf)
            if ip is None:
                continue
            off = ip._flags_offset & 0x1FFF
            payload = bytes(ip.data)
            sport = dport = flags = 0
            if off == 0 and ip.p in (6, 17) and len(payload) >= 4:
                sport, dport = struct.unpack(">HH", payload[:4])
                if isinstance(ip.data, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                    assert (ip.data.sport, ip.data.dport) == (sport, dport)
            if off == 0 and ip.p == 6 and len(payload) >= 14:
                flags = payload[13]
            if off == 0 and ip.p == 1 and len(payload) >= 2:  # the ICMP convention: type, code as the ports
                sport, dport = payload[0], payload[1]
                if isinstance(ip.data, dpkt.icmp.ICMP):
                    assert (ip.data.type, ip.data.code) == (sport, dport)
            rows.append((float(ts), int.from_bytes(ip.src, "big"), int.from_bytes(ip.dst, "big"), sport, dport,
                         ip.p, ip.len, ip.tos, ip.id, ip._flags_offset >> 13, off, ip.ttl, flags))
    return pd.DataFrame(rows, columns=COLUMNS)


def assert_same_packets(ours: pd.DataFrame, ref: pd.DataFrame, time_atol: float = 1e-6) -> None:
    assert len(ours) == len(ref)
    for col in COLUMNS:
        if col == "time":
            np.testing.assert_allclose(ours[col].to_numpy(), ref[col].to_numpy(), rtol=0, atol=time_atol)
        else:
            np.testing.assert_array_equal(ours[col].to_numpy().astype(np.int64),
                                          ref[col].to_numpy().astype(np.int64), err_msg=col)


REAL = ["caida/caida-10k.pcapng", "ndpi/1kxun.pcap", "ndpi/KakaoTalk_talk.pcap", "ndpi/rdp.pcap",
        "iot23/honeypot-4-1.pcap", "ndpi/synscan.pcap", "ndpi/alexa-app.pcapng"]


@pytest.mark.parametrize("name", REAL)
def test_agrees_with_dpkt_on_every_ipv4_packet(name):
    path = shared(name)
    trace = read_packets(path)
    assert list(trace.table.columns) == COLUMNS
    for col, dtype in PACKET_COLUMNS.items():
        assert trace.table[col].dtype == dtype
    assert_same_packets(trace.table, dpkt_table(path))
    report = trace.report
    assert report.records_kept == len(trace.table) > 0
    assert report.records_seen == report.records_kept + sum(report.skipped.values())
    assert sum(report.link_types.values()) == report.records_seen


def test_link_types_and_skip_reasons_are_reported():
    caida = read_packets(shared("caida/caida-10k.pcapng")).report
    assert caida.link_types == {101: 10000} and caida.records_kept == 10000 and not caida.skipped
    honeypot = read_packets(shared("iot23/honeypot-4-1.pcap")).report
    assert honeypot.link_types == {1: 21664}
    assert honeypot.skipped["non-ip ethertype 0x0806"] > 1000  # ARP is about a fifth of this capture
    reddit = read_packets(shared("ndpi/reddit.pcap"))
    assert len(reddit.table) == 0
    assert reddit.report.skipped == {"ipv6": reddit.report.records_seen}


def _records(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    with open(path, "rb") as fh:
        reader = dpkt.pcap.UniversalReader(fh)
        return reader.datalink(), [(ts, bytes(buf)) for ts, buf in reader]


def write_classic(path: Path, linktype: int, records, *, big=False, nano=False) -> Path:
    """A classic pcap written by hand (any byte order / resolution) from (time, bytes) records."""
    e = ">" if big else "<"
    scale = 10**9 if nano else 10**6
    out = [struct.pack(e + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for ts, data in records:
        ticks = round(ts * 10**6) * (scale // 10**6)
        out.append(struct.pack(e + "IIII", ticks // scale, ticks % scale, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_byte_orders_and_nanosecond_resolution(tmp_path, big, nano):
    src = shared("ndpi/KakaoTalk_talk.pcap")
    linktype, records = _records(src)
    copy = write_classic(tmp_path / "copy.pcap", linktype, records, big=big, nano=nano)
    trace = read_packets(copy)
    assert trace.report.notes["byte_order"] == ("big" if big else "little")
    assert trace.report.notes["timestamp_resolution"] == ("ns" if nano else "us")
    assert_same_packets(trace.table, dpkt_table(src))


def _wrap(records, header: bytes):
    return [(ts, header + data) for ts, data in records]


@pytest.mark.parametrize("linktype,header", [
    (12, b""), (14, b""), (228, b""),
    (0, struct.pack("<I", 2)), (0, struct.pack(">I", 2)), (108, struct.pack(">I", 2)),
    (276, struct.pack(">HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, b"\x02" * 8)),
    (113, struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800)),
    (1, b"\x02" * 12 + b"\x81\x00\x00\x05" + b"\x08\x00"),                       # 802.1Q
    (1, b"\x02" * 12 + b"\x88\xa8\x00\x07" + b"\x81\x00\x00\x05" + b"\x08\x00"),  # 802.1ad QinQ
])
def test_every_link_layer_yields_the_same_ipv4_fields(tmp_path, linktype, header):
    src = shared("caida/caida-1k.pcapng")
    _, records = _records(src)
    trace = read_packets(write_classic(tmp_path / "lt.pcap", linktype, _wrap(records, header)))
    assert trace.report.link_types == {linktype: len(records)}
    assert_same_packets(trace.table, dpkt_table(src))


@pytest.mark.parametrize("linktype,header", [
    (229, b""), (0, struct.pack("<I", 24)), (0, struct.pack("<I", 28)), (108, struct.pack(">I", 30)),
    (1, b"\x02" * 12 + b"\x86\xdd"),
])
def test_ipv6_link_layers_are_skipped_as_ipv6(tmp_path, linktype, header):
    _, records = _records(shared("caida/caida-1k.pcapng"))
    trace = read_packets(write_classic(tmp_path / "v6.pcap", linktype, _wrap(records, header)))
    assert len(trace.table) == 0 and trace.report.skipped == {"ipv6": len(records)}


def test_captured_length_shorter_than_headers_gives_zeros_never_garbage(tmp_path):
    src = shared("caida/caida-1k.pcapng")
    full = read_packets(src).table
    _, records = _records(src)
    rng = np.random.default_rng(7)
    cut = rng.integers(0, 45, len(records))
    trace = read_packets(write_classic(tmp_path / "cut.pcap", 101, [(ts, d[:k]) for (ts, d), k
                                                                       in zip(records, cut)]))
    kept = cut >= 20
    assert trace.report.skipped.get("ipv4 header truncated", 0) == int((~kept).sum())
    ours, ref = trace.table, full[kept].reset_index(drop=True)
    k = cut[kept]
    for col in ("srcip", "dstip", "proto", "pkt_len", "ttl", "id", "off"):
        np.testing.assert_array_equal(ours[col], ref[col])
    ports_in = k >= 24  # caida has no IP options
    np.testing.assert_array_equal(ours["srcport"], np.where(ports_in, ref["srcport"], 0))
    np.testing.assert_array_equal(ours["dstport"], np.where(ports_in, ref["dstport"], 0))
    flags_in = k >= 34
    np.testing.assert_array_equal(ours["tcp_flags"], np.where(flags_in, ref["tcp_flags"], 0))
    tcpudp = ref["proto"].isin([6, 17]).to_numpy() & (ref["off"].to_numpy() == 0)
    missing = (tcpudp & ~ports_in) | ((ref["proto"].to_numpy() == 6) & (ref["off"].to_numpy() == 0)
                                      & ports_in & ~flags_in)
    assert trace.report.notes["l4_truncated"] == int(missing.sum())


# --- pcapng written by hand: several sections, byte orders, interfaces, resolutions, block kinds -----

def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack(e + "II", btype, len(body) + 12) + body + struct.pack(e + "I", len(body) + 12)


def _shb(e: str) -> bytes:
    return _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(e: str, linktype: int, tsresol: int | None = None, tsoffset: int | None = None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\x00" * 3
    if tsoffset is not None:
        opts += struct.pack(e + "HHq", 14, 8, tsoffset)
    if opts:
        opts += struct.pack(e + "HH", 0, 0)
    return _block(e, 1, struct.pack(e + "HHI", linktype, 0, 0) + opts)


def _epb(e: str, iface: int, ticks: int, data: bytes, opb: bool = False) -> bytes:
    head = struct.pack(e + "HH", iface, 0) if opb else struct.pack(e + "I", iface)
    body = head + struct.pack(e + "IIII", ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + data
    return _block(e, 2 if opb else 6, body)


def test_pcapng_sections_interfaces_resolutions_and_block_kinds(tmp_path):
    src = shared("caida/caida-1k.pcapng")
    _, records = _records(src)
    ref = dpkt_table(src)
    eth = b"\x02" * 12 + b"\x08\x00"
    parts, expect_time = [_shb("<"), _idb("<", 101, tsresol=9), _idb("<", 1, tsresol=0x80 | 20, tsoffset=-100),
                          _idb("<", 147)], []
    blocks = []
    for i, (ts, data) in enumerate(records[:400]):
        if i % 3 == 0:
            blocks.append(_epb("<", 0, round(ts * 10**6) * 1000, data))
        elif i % 3 == 1:
            blocks.append(_epb("<", 1, round(ts * 10**6) * 2**20 // 10**6, eth + data))
        else:
            blocks.append(_epb("<", 1, round(ts * 10**6) * 2**20 // 10**6, eth + data, opb=True))
    parts += blocks + [_epb("<", 2, 0, b"\x00" * 40), _block("<", 4, b"\x00" * 4), _epb("<", 9, 0, eth)]
    parts += [_shb(">"), _idb(">", 113), _block(">", 5, b"\x00" * 8)]
    sll = struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800)
    parts += [_epb(">", 0, round(ts * 10**6), sll + data) for ts, data in records[400:999]]
    parts += [_block(">", 3, struct.pack(">I", 44 + len(sll)) + sll + records[999][1])]
    path = tmp_path / "multi.pcapng"
    path.write_bytes(b"".join(parts))
    trace = read_packets(path)
    report = trace.report
    assert report.notes["sections"] == 2 and report.notes["interfaces"] == 4
    assert report.skipped == {"unsupported link type 147": 1, "unknown interface id": 1}
    assert report.link_types == {101: 134, 1: 266, 147: 1, 113: 600}
    assert report.notes["spb_without_timestamp"] == 1
    ours = trace.table.copy()
    is_eth_iface = (np.arange(len(ours)) < 400) & (np.arange(len(ours)) % 3 != 0)
    ours.loc[is_eth_iface, "time"] += 100  # if_tsoffset of -100 s on interface 1
    ref.loc[999, "time"] = ref.loc[998, "time"]  # the SPB takes the previous packet's time
    assert_same_packets(ours, ref, time_atol=2e-6)  # 2^-20 s ticks


def test_gzip_and_double_gzip_read_transparently(tmp_path):
    src = shared("caida/caida-1k.pcapng")
    plain = read_packets(src).table
    once = tmp_path / "c.pcapng.gz"
    once.write_bytes(gzip.compress(src.read_bytes()))
    twice = tmp_path / "c.pcapng.gz.gz"
    twice.write_bytes(gzip.compress(once.read_bytes()))
    for path, layers in ((once, 1), (twice, 2)):
        trace = read_trace(path)
        pd.testing.assert_frame_equal(trace.table, plain)
        assert trace.report.notes["gzip_layers"] == layers and trace.report.format == "pcapng+gzip"


def test_libtrace_double_gzip_fixtures_read():
    folder = shared("fixtures/debian-examples/python3-libtrace")
    v4 = [p for p in folder.rglob("*.gz") if "v4" in p.name]
    assert v4, "expected the libtrace anon-v4 fixture"
    for path in v4:
        trace = read_packets(path)
        assert trace.report.notes["gzip_layers"] == 2 and len(trace.table) > 0


def test_gzip_of_a_text_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.gz"
    path.write_bytes(gzip.compress(b"srcip,dstip\n1.2.3.4,5.6.7.8\n"))
    with pytest.raises(TraceFormatError, match="does not contain a pcap"):
        read_packets(path)


def test_truncated_last_record_keeps_earlier_packets_with_a_warning(tmp_path):
    src = shared("ndpi/rdp.pcap")
    full = read_packets(src).table
    data = src.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-7])
    trace = read_packets(cut)
    assert len(trace.table) == len(full) - 1
    pd.testing.assert_frame_equal(trace.table, full.iloc[:-1])
    assert len(trace.report.warnings) == 1 and "byte offset" in trace.report.warnings[0]
    assert str(cut) in trace.report.warnings[0]


def test_garbage_record_length_stops_at_that_offset(tmp_path):
    src = shared("ndpi/rdp.pcap")
    data = bytearray(src.read_bytes())
    first_len = struct.unpack_from("<I", data, 24 + 8)[0]
    second = 24 + 16 + first_len
    struct.pack_into("<I", data, second + 8, 0x7FFFFFF0)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    with pytest.raises(TraceFormatError, match=r"1 packet\(s\) were read before it.*--salvage") as info:
        read_packets(bad)  # most of the file lies after the damage: refused unless salvaged
    assert info.value.offset == second
    trace = read_packets(bad, salvage=True)
    assert len(trace.table) == 1 and f"byte offset {second}" in trace.report.warnings[0]
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFF0)  # now the very first record is garbage
    bad.write_bytes(bytes(data))
    with pytest.raises(TraceFormatError) as info:
        read_packets(bad)
    assert info.value.offset == 24 and str(bad) in str(info.value)


def test_unknown_link_type_names_file_and_number(tmp_path):
    _, records = _records(shared("caida/caida-1k.pcapng"))
    path = write_classic(tmp_path / "lt147.pcap", 147, records[:5])
    with pytest.raises(TraceFormatError, match="link type 147") as info:
        read_packets(path)
    assert str(path) in str(info.value)


_DUMP = """
import json, sys
from tracesynth.io import _walk
from tracesynth.io.pcap import read_packets
out = {"numba": _walk.HAVE_NUMBA}
for p in sys.argv[1:]:
    t = read_packets(p)
    out[p] = [t.table.to_numpy().tolist(), t.report.to_dict()]
print(json.dumps(out))
"""


def test_python_fallback_walk_matches_numba_walk(tmp_path):
    paths = [str(shared(n)) for n in ("caida/caida-1k.pcapng", "ndpi/rdp.pcap", "ndpi/1kxun.pcap")]
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(Path(paths[0]).read_bytes()[:-9])
    paths.append(str(cut))
    results = {}
    for flag in ("1", "0"):
        env = {**os.environ, "TRACESYNTH_NO_NUMBA": flag}
        done = subprocess.run([sys.executable, "-c", _DUMP, *paths], env=env, capture_output=True, text=True,
                              check=True, timeout=120)
        results[flag] = json.loads(done.stdout)
    assert results["1"].pop("numba") is False
    assert results["0"].pop("numba") is True
    assert results["1"] == results["0"]
