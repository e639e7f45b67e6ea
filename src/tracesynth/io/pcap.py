"""Packet capture reader: classic pcap, pcapng and gzip-compressed captures -> canonical packet table.

The file is read with one `np.fromfile` (or decompressed once), the record walk (`_walk`) yields flat
arrays of record offsets, lengths and timestamps, and `decode` extracts IPv4 fields with vectorised
numpy. There is no per-packet Python code on the compiled path.
"""
from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .. import limits
from ..errors import TraceFormatError
from ..progress import ProgressCallback, emit
from ..schema import PACKET_COLUMNS
from . import ReadReport, Trace, sniff_format
from ._walk import WALK_OK, WALK_TRUNCATED, PacketRecords, walk_pcap
from .decode import SUPPORTED_LINKTYPES, decode_ipv4, distinct_counts

log = logging.getLogger(__name__)

#: magic number (as read little-endian) -> (big-endian file, nanosecond timestamps)
PCAP_MAGICS = {
    0xA1B2C3D4: (False, False), 0xD4C3B2A1: (True, False),
    0xA1B23C4D: (False, True), 0x4D3CB2A1: (True, True),
}
PCAP_HEADER_LEN = 24
GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_DEPTH = 3
_CHUNK = 64 << 20
#: Largest IPv4 packet: a record cut off at the end of a file may claim up to max(snaplen, this) bytes.
MAX_PACKET = 65535


def read_packets(path: str | Path, progress: ProgressCallback | None = None, *, salvage: bool = False) -> Trace:
    """Read a pcap / pcapng capture (optionally gzip-compressed, even twice) into the packet table.

    Non-IPv4 packets are counted in `report.skipped` by reason; a truncated last record becomes a
    warning; a damaged file raises `TraceFormatError` naming the file and byte offset, except that
    `salvage` keeps the packets before damage in the middle of the file (with a warning).
    """
    path = Path(path)
    fmt = sniff_format(path)
    total = path.stat().st_size
    emit(progress, "read", 0, total, "bytes")
    # Memory-mapped, read-only: the page cache holds the bytes once, no second copy on the heap.
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    report = ReadReport(str(path), fmt)
    if fmt == "gzip":
        buf = gunzip_capture(buf, path, report)
        fmt = report.notes["container"]
        report.format = f"{fmt}+gzip"
    if fmt == "pcap":
        records = classic_records(buf, path, report, salvage)
    elif fmt == "pcapng":
        from .pcapng import pcapng_records

        records = pcapng_records(buf, path, report, salvage)
    else:
        raise TraceFormatError(path, f"not a packet capture (looks like {fmt}); expected pcap or pcapng", 0)
    emit(progress, "read", total * 0.5, total, "bytes", packets=int(records.data_off.shape[0]))
    trace = build_trace(buf, records, report)
    emit(progress, "read", total, total, "bytes", packets=report.records_kept)
    return trace


def build_trace(buf: np.ndarray, records: PacketRecords, report: ReadReport) -> Trace:
    """Decode the records' IPv4 headers into the canonical table and report."""
    report.records_seen += int(records.data_off.shape[0])
    report.link_types = distinct_counts(records.linktype)
    keep, cols = decode_ipv4(buf, records.data_off, records.caplen, records.linktype, report)
    cols["time"] = records.time if keep.shape[0] == records.time.shape[0] else records.time[keep]
    table = pd.DataFrame({c: np.asarray(cols[c], dtype=dtype) for c, dtype in PACKET_COLUMNS.items()}, copy=False)
    report.records_kept = int(keep.shape[0])
    for msg in report.warnings:
        log.warning(msg)
    return Trace(table, "packets", report)


def check_walk(path: Path, status: int, stop: int, n_records: int, report: ReadReport, what: str, *,
               size: int, plausible_cut: bool = True, salvage: bool = False) -> None:
    """Turn a walk's end state into a warning or one TraceFormatError.

    A last record cut off by the end of the file (WALK_TRUNCATED with a `plausible_cut` header: a length
    a packet can have, a valid timestamp) is a truncated capture: the packets before it are kept with a
    warning. Damage anywhere else with more of the file after it than before it is an error naming the
    offset and the packets read before it, unless `salvage` keeps those packets (with a warning).
    """
    if status == WALK_OK:
        return
    where = " of the decompressed data" if report.notes.get("container") else ""
    cut_end = status == WALK_TRUNCATED and plausible_cut
    if cut_end:
        reason = f"{what} is cut short (file truncated)"
    else:
        reason = f"{what} header is corrupt (impossible length, timestamp or magic)"
    if n_records == 0:
        raise TraceFormatError(path, f"{reason}{where}; no packets could be read. Is the capture complete?",
                               stop)
    unread = size - stop
    if not cut_end and unread > stop and not salvage:
        raise TraceFormatError(path, f"{reason}{where}; {n_records:,} packet(s) were read before it and "
                               f"{unread:,} of {size:,} bytes after it are unread. Rerun with --salvage to keep "
                               f"the {n_records:,} packet(s) before it, or repair the capture (e.g. with pcapfix)",
                               stop)
    report.warnings.append(f"{path}: {reason} at byte offset {stop}{where}; kept the {n_records:,} packet(s) "
                           f"before it ({unread:,} bytes unread)")
    report.notes["stopped_at_offset"] = int(stop)
    report.notes["unread_bytes"] = int(unread)


def header_u32(buf: np.ndarray, pos: int, big: bool) -> int | None:
    """The u32 at `pos` (a field of the record header where a walk stopped), None past the end."""
    if pos + 4 > buf.shape[0]:
        return None
    return int.from_bytes(buf[pos:pos + 4].tobytes(), "big" if big else "little")


def _plausible_cut(buf: np.ndarray, stop: int, big: bool, nano: bool, snaplen: int) -> bool:
    """Whether the record header where the walk stopped could be a real, cut-off last record: a length
    a packet can have (<= max(snaplen, 65535)) and a valid sub-second timestamp."""
    cap, frac = header_u32(buf, stop + 8, big), header_u32(buf, stop + 4, big)
    if cap is not None and cap > max(snaplen, MAX_PACKET):
        return False
    return frac is None or frac < (10**9 if nano else 10**6)


def classic_records(buf: np.ndarray, path: Path, report: ReadReport, salvage: bool = False) -> PacketRecords:
    """Walk a classic pcap: global header, then 16-byte record headers, in either byte order."""
    if buf.shape[0] < PCAP_HEADER_LEN:
        raise TraceFormatError(path, f"pcap global header is cut short ({buf.shape[0]} of 24 bytes)", 0)
    head = buf[:PCAP_HEADER_LEN].tobytes()
    magic = int.from_bytes(head[:4], "little")
    if magic not in PCAP_MAGICS:
        raise TraceFormatError(path, f"bad pcap magic 0x{magic:08x}", 0)
    big, nano = PCAP_MAGICS[magic]
    order = "big" if big else "little"
    snaplen = int.from_bytes(head[16:20], order)
    linktype = int.from_bytes(head[20:24], order) & 0xFFFF
    if linktype not in SUPPORTED_LINKTYPES:
        raise TraceFormatError(path, f"link type {linktype} is not supported (supported: "
                               f"{', '.join(map(str, sorted(SUPPORTED_LINKTYPES)))}); convert the capture "
                               "to Ethernet or raw IP (e.g. with tcprewrite or editcap -T)", 20)
    report.notes["byte_order"] = order
    report.notes["timestamp_resolution"] = "ns" if nano else "us"
    rec_off, caplen, wirelen, ts_sec, ts_frac, stop, status = walk_pcap(buf, PCAP_HEADER_LEN, big, snaplen)
    check_walk(path, status, stop, rec_off.shape[0], report, "pcap record", size=int(buf.shape[0]),
               plausible_cut=_plausible_cut(buf, stop, big, nano, snaplen), salvage=salvage)
    time = ts_sec.astype(np.float64) + ts_frac.astype(np.float64) * (1e-9 if nano else 1e-6)
    return PacketRecords(rec_off, caplen, wirelen, np.full(rec_off.shape, linktype, np.int64), time)


def _inflate_members(data: bytes, path: Path, report: ReadReport, limit: int) -> bytes:
    """Inflate every gzip member of `data` up to `limit` bytes in all (more is refused as a decompression
    bomb before it is held in memory); a truncated stream keeps what inflated, with a warning."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits=31)
        pending = data
        try:
            while not inflater.eof:
                chunk = inflater.decompress(pending, min(_CHUNK, limit - size + 1))
                pending = inflater.unconsumed_tail
                out.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise TraceFormatError(path, _bomb_message(limit), 0)
                if not chunk and not pending:
                    break
        except zlib.error as exc:
            if not out:
                raise TraceFormatError(path, f"corrupt gzip data ({exc})", 0) from None
            report.warnings.append(f"{path}: gzip data is corrupt after {size} decompressed bytes ({exc}); "
                                   "reading what came before")
            break
        if not inflater.eof:
            report.warnings.append(f"{path}: gzip stream is truncated after {size} decompressed bytes")
            break
        data = inflater.unused_data
        if not data.strip(b"\x00"):
            break
        if not data.startswith(GZIP_MAGIC):
            report.warnings.append(f"{path}: ignored {len(data)} bytes of trailing garbage after the gzip data")
            break
    return b"".join(out)


def _bomb_message(limit: int) -> str:
    return (f"gzip data inflates to more than {limit / 2**20:.0f} MiB ({limits.MAX_GZIP_RATIO}x its compressed "
            f"size, at least {limits.MIN_GZIP_LIMIT >> 20} MiB); refused as a decompression bomb. If it "
            "really is a capture, decompress it yourself (gunzip) and read the result")


def gunzip_capture(buf: np.ndarray, path: Path, report: ReadReport) -> np.ndarray:
    """Inflate a gzip-compressed capture (up to MAX_GZIP_DEPTH times) and check that it is pcap/pcapng.

    Every layer together may inflate to `limits.gzip_limit(compressed size)` bytes (docs/cli.md, "Limits")."""
    data = buf.tobytes()
    limit = limits.gzip_limit(len(data))
    depth = 0
    while data[:2] == GZIP_MAGIC and depth < MAX_GZIP_DEPTH:
        data = _inflate_members(data, path, report, limit)
        depth += 1
    report.notes["gzip_layers"] = depth
    magic = int.from_bytes(data[:4], "little") if len(data) >= 4 else None
    if magic in PCAP_MAGICS:
        report.notes["container"] = "pcap"
    elif data[:4] == b"\x0a\x0d\x0d\x0a":
        report.notes["container"] = "pcapng"
    else:
        raise TraceFormatError(path, "gzip-compressed file does not contain a pcap or pcapng capture "
                               f"(decompressed data starts with {data[:8]!r})", 0)
    return np.frombuffer(data, dtype=np.uint8)
