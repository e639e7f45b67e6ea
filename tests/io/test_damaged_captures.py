"""Damage in the middle of a capture vs a cut-off end, `--salvage`, and files with no records (issue 14).

Captures are made in the test from the bundled sample (2,000 packets) or written by hand."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tracesynth.cli import main
from tracesynth.data import sample_path
from tracesynth.errors import TraceFormatError, UserError
from tracesynth.io import read_trace

PCAP_HEADER = 24


def _record_offsets(data: bytes) -> list[int]:
    """Offsets of every classic pcap record header (little-endian file)."""
    offsets, pos = [], PCAP_HEADER
    while pos + 16 <= len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return offsets


def _corrupt_sample(tmp_path: Path, record: int, incl_len: int = 0xFFFFFFFF) -> tuple[Path, int]:
    data = bytearray(Path(sample_path()).read_bytes())
    offset = _record_offsets(bytes(data))[record]
    struct.pack_into("<I", data, offset + 8, incl_len)
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    return path, offset


def test_corrupt_length_at_record_6_of_2000_is_an_error_naming_offset_and_packets(tmp_path):
    path, offset = _corrupt_sample(tmp_path, 5)
    with pytest.raises(TraceFormatError) as info:
        read_trace(path)
    msg = str(info.value)
    assert info.value.offset == offset and f"at byte offset {offset}" in msg
    assert "5 packet(s) were read before it" in msg and "--salvage" in msg and "\n" not in msg


def test_salvage_keeps_what_precedes_the_damage_with_a_warning(tmp_path):
    path, offset = _corrupt_sample(tmp_path, 5)
    trace = read_trace(path, salvage=True)
    assert len(trace.table) == 5
    assert any(f"byte offset {offset}" in w and "kept the 5 packet(s)" in w for w in trace.report.warnings)


def test_damage_near_the_end_stays_a_warning(tmp_path):
    path, offset = _corrupt_sample(tmp_path, 1990)
    trace = read_trace(path)
    assert len(trace.table) == 1990 and f"byte offset {offset}" in trace.report.warnings[0]


def test_cut_off_last_record_stays_a_warning(tmp_path):
    data = Path(sample_path()).read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-10])
    trace = read_trace(path)
    assert len(trace.table) == 1999 and "cut short" in trace.report.warnings[0]


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _pcapng(n_packets: int) -> tuple[bytes, list[int]]:
    """A little-endian pcapng (raw IP) with `n_packets` 40-byte IPv4/TCP packets; block offsets too."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 101, 0, 0))
    ip = bytes.fromhex("45000028000040004006") + b"\x00\x00" + bytes([10, 0, 0, 1, 10, 0, 0, 2]) \
        + struct.pack(">HHIIBBHHH", 1234, 80, 0, 0, 0x50, 0x10, 0, 0, 0)
    out, offsets = [shb, idb], []
    pos = len(shb) + len(idb)
    for i in range(n_packets):
        ticks = 1_500_000_000_000_000 + i
        epb = _block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(ip), len(ip)) + ip)
        offsets.append(pos)
        out.append(epb)
        pos += len(epb)
    return b"".join(out), offsets


def test_pcapng_bad_block_length_early_is_an_error_unless_salvaged(tmp_path):
    data, offsets = _pcapng(1000)
    assert len(read_trace(_write(tmp_path / "ok.pcapng", data)).table) == 1000
    for bad_len in (0x7FFFFFF0, 0x10001):  # too long for any packet block; not a multiple of 4
        broken = bytearray(data)
        struct.pack_into("<I", broken, offsets[1] + 4, bad_len)
        path = _write(tmp_path / "bad.pcapng", bytes(broken))
        with pytest.raises(TraceFormatError, match=r"1 packet\(s\) were read before it") as info:
            read_trace(path)
        assert info.value.offset == offsets[1]
        assert len(read_trace(path, salvage=True).table) == 1


def test_pcapng_cut_in_its_last_block_keeps_the_rest(tmp_path):
    data, _ = _pcapng(1000)
    trace = read_trace(_write(tmp_path / "cut.pcapng", data[:-30]))
    assert len(trace.table) == 999 and "cut short" in trace.report.warnings[0]


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --- files without records -----------------------------------------------------------------------------

def _empty_files(tmp_path: Path) -> dict[str, Path]:
    data = Path(sample_path()).read_bytes()
    zeek = ("#separator \\x09\n#set_separator\t,\n#path\tconn\n"
            "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\t"
            "orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\n"
            "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\tcount\tcount\tcount\tcount\n")
    return {"pcap": _write(tmp_path / "header-only.pcap", data[:PCAP_HEADER]),
            "csv": _write(tmp_path / "header-only.csv", "ts,td,srcip,dstip,srcport,dstport,proto,pkt,byt\n"),
            "zeek": _write(tmp_path / "conn.log", zeek)}


@pytest.mark.parametrize("kind", ["pcap", "csv", "zeek"])
def test_header_only_files_read_as_empty_with_a_warning(tmp_path, kind):
    trace = read_trace(_empty_files(tmp_path)[kind])
    assert len(trace.table) == 0 and trace.report.records_seen == 0
    assert "holds no" in trace.report.warnings[-1] and "only a header" in trace.report.warnings[-1]


@pytest.mark.parametrize("kind", ["pcap", "csv", "zeek"])
def test_inspect_says_so_and_exits_0(tmp_path, kind, capsys):
    path = _empty_files(tmp_path)[kind]
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 0 and "only a header" in summary["warnings"][-1]
    assert main(["inspect", str(path)]) == 0
    assert "only a header" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["pcap", "csv", "zeek"])
def test_fit_refuses_a_file_without_records_naming_it(tmp_path, kind, capsys):
    path = _empty_files(tmp_path)[kind]
    assert main(["fit", str(path), "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path.name) in err and "nothing to fit" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_cli_salvage_on_every_reading_command(tmp_path, capsys):
    path, offset = _corrupt_sample(tmp_path, 5)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"byte offset {offset}" in err and "--salvage" in err and len(err.strip().splitlines()) == 1
    assert main(["inspect", str(path), "--salvage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 5
    assert main(["convert", str(path), str(tmp_path / "out.csv"), "--salvage"]) == 0
    assert main(["flows", str(path), str(tmp_path / "flows.csv"), "--salvage"]) == 0
    assert main(["convert", str(path), str(tmp_path / "out2.csv")]) == 2
    capsys.readouterr()
    for command in (["evaluate", str(path), str(path), "--no-downstream"],
                    ["report", str(path), str(path), "--no-downstream", "--out", str(tmp_path / "r.html")]):
        assert main(command) == 2
        assert "--salvage" in capsys.readouterr().err
    with pytest.raises(UserError):
        read_trace(path)
