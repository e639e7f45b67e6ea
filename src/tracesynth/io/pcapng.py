"""pcapng container: sections, interfaces and packet blocks -> flat per-packet record arrays.

The compiled block walk (`_walk.walk_pcapng`) returns every block's offset, type, length and byte
order. Section header and interface description blocks are few and parsed in Python (link type,
snap length, `if_tsresol`, `if_tsoffset`); enhanced, simple and obsolete packet blocks are gathered
with vectorised numpy. Other block types (name resolution, statistics, custom, ...) are skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TraceFormatError
from . import ReadReport
from ._walk import SHB_TYPE, PacketRecords, walk_pcapng
from .decode import SUPPORTED_LINKTYPES, _view

IDB_TYPE, OPB_TYPE, SPB_TYPE, EPB_TYPE = 1, 2, 3, 6
PACKET_BLOCKS = (EPB_TYPE, SPB_TYPE, OPB_TYPE)
OPT_END, OPT_TSRESOL, OPT_TSOFFSET = 0, 9, 14
#: Longest block a cut-off last block may claim: an enhanced packet block's 32 fixed bytes, the largest
#: IPv4 packet and 4 KiB of options. A longer claim is a corrupt length, not a truncated file.
MAX_CUT_BLOCK = 32 + 65535 + 4096


@dataclass
class Interface:
    """One interface description block: its link type, snap length and timestamp units."""

    linktype: int
    snaplen: int
    units_per_second: int = 1_000_000  # default if_tsresol is 6 (microseconds)
    offset_seconds: int = 0


def _int(buf: np.ndarray, pos: int, size: int, big: bool, signed: bool = False) -> int:
    return int.from_bytes(buf[pos:pos + size].tobytes(), "big" if big else "little", signed=signed)


def parse_interface(buf: np.ndarray, off: int, blen: int, big: bool, report: ReadReport) -> Interface:
    """Read an IDB's link type, snap length and the timestamp options among its options."""
    if blen < 20:
        report.warnings.append(f"{report.path}: interface block at byte offset {off} is too short; "
                               "its packets are skipped")
        return Interface(-1, 0)
    iface = Interface(_int(buf, off + 8, 2, big), _int(buf, off + 12, 4, big))
    pos, end = off + 16, off + blen - 4
    while pos + 4 <= end:
        code, olen = _int(buf, pos, 2, big), _int(buf, pos + 2, 2, big)
        if code == OPT_END or pos + 4 + olen > end:
            break
        if code == OPT_TSRESOL and olen >= 1:
            v = int(buf[pos + 4])
            iface.units_per_second = 2 ** (v & 0x7F) if v & 0x80 else 10 ** v
        elif code == OPT_TSOFFSET and olen >= 8:
            iface.offset_seconds = _int(buf, pos + 4, 8, big, signed=True)
        pos += 4 + (olen + 3) // 4 * 4
    return iface


def _read(buf: np.ndarray, size: int, pos: np.ndarray, big: np.ndarray) -> np.ndarray:
    """Vectorised unsigned read of `size` bytes at `pos`, each in its own section's byte order.

    Positions are clipped into the buffer: a block too short for the field yields junk that the
    caller discards (it checks block lengths), never an IndexError.
    """
    pos = np.clip(pos, 0, buf.shape[0] - size)
    le, be = _view(buf, f"<u{size}"), _view(buf, f">u{size}")
    if not big.any():
        return le[pos].astype(np.uint32)
    if big.all():
        return be[pos].astype(np.uint32)
    return np.where(big, be[pos], le[pos]).astype(np.uint32)


def _u32(buf: np.ndarray, pos: np.ndarray, big: np.ndarray) -> np.ndarray:
    return _read(buf, 4, pos, big)


def _u16(buf: np.ndarray, pos: np.ndarray, big: np.ndarray) -> np.ndarray:
    return _read(buf, 2, pos, big)


def _interfaces(buf, blk_off, blk_type, blk_len, blk_big, report) -> tuple[list[Interface], np.ndarray]:
    """All interfaces in file order and, per section, the global index of its first interface."""
    interfaces: list[Interface] = []
    section_base: list[int] = []
    for i in np.flatnonzero((blk_type == SHB_TYPE) | (blk_type == IDB_TYPE)).tolist():
        if blk_type[i] == SHB_TYPE:
            section_base.append(len(interfaces))
        else:
            interfaces.append(parse_interface(buf, int(blk_off[i]), int(blk_len[i]), bool(blk_big[i]), report))
    return interfaces, np.asarray(section_base + [len(interfaces)], np.int64)


def _seconds(ticks: np.ndarray, iface_idx: np.ndarray, interfaces: list[Interface]) -> np.ndarray:
    """Epoch seconds from 64-bit ticks, per interface resolution; integer split keeps sub-µs digits."""
    time = np.zeros(ticks.shape, np.float64)
    units = [i.units_per_second for i in interfaces]
    distinct = sorted(set(units))
    per_packet = np.asarray([distinct.index(u) for u in units], np.int64)[iface_idx]
    for k, u in enumerate(distinct):
        sel = slice(None) if len(distinct) == 1 else per_packet == k
        t = ticks[sel]
        if t.shape[0] and t.max() < 2**53:  # exact in float64: one division is enough
            time[sel] = t.astype(np.float64) / u
        elif u < 2**63:
            whole, frac = np.divmod(t, np.uint64(u))
            time[sel] = whole.astype(np.float64) + frac.astype(np.float64) / u
        else:
            time[sel] = t.astype(np.float64) / float(u)
    shifts = np.asarray([i.offset_seconds for i in interfaces], np.float64)
    if shifts.any():
        time += shifts[iface_idx]
    return time


def pcapng_records(buf: np.ndarray, path: Path, report: ReadReport, salvage: bool = False) -> PacketRecords:
    """Per-packet offsets, lengths, link types and times of every EPB / SPB / OPB in the file."""
    from .pcap import check_walk, header_u32

    blk_off, blk_type, blk_len, blk_big, stop, status = walk_pcapng(buf)
    is_pkt = np.isin(blk_type, PACKET_BLOCKS)
    big = bool(blk_big[-1]) if blk_big.shape[0] else False
    claimed = header_u32(buf, stop + 4, big)
    check_walk(path, status, stop, int(is_pkt.sum()), report, "pcapng block", size=int(buf.shape[0]),
               plausible_cut=claimed is None or claimed <= MAX_CUT_BLOCK, salvage=salvage)
    interfaces, section_base = _interfaces(buf, blk_off, blk_type, blk_len, blk_big, report)
    if interfaces and all(i.linktype not in SUPPORTED_LINKTYPES for i in interfaces):
        first_idb = int(blk_off[np.flatnonzero(blk_type == IDB_TYPE)[0]])
        raise TraceFormatError(path, f"link type {interfaces[0].linktype} is not supported (supported: "
                               f"{', '.join(map(str, sorted(SUPPORTED_LINKTYPES)))}); convert the capture "
                               "to Ethernet or raw IP (e.g. with editcap -T)", first_idb)
    report.notes["sections"] = int(section_base.shape[0] - 1)
    report.notes["interfaces"] = len(interfaces)
    pkt = np.flatnonzero(is_pkt)
    off, btype, blen, big = blk_off[pkt], blk_type[pkt], blk_len[pkt].astype(np.int64), blk_big[pkt]
    section = np.cumsum(blk_type == SHB_TYPE)[pkt] - 1
    spb = btype == SPB_TYPE
    local = np.where(btype == OPB_TYPE, _u16(buf, off + 8, big), _u32(buf, off + 8, big)).astype(np.int64)
    local[spb] = 0
    header = np.where(spb, 16, 32)
    pos_len = np.where(spb, off + 8, off + 20)
    caplen = _u32(buf, pos_len, big).astype(np.int64)
    wirelen = np.where(spb, caplen, _u32(buf, off + 24, big).astype(np.int64))
    known = local < (section_base[section + 1] - section_base[section])
    gidx = np.where(known, section_base[section] + local, 0)
    if interfaces:
        snap = np.asarray([i.snaplen for i in interfaces], np.int64)[gidx]
        spb_cap = np.minimum(caplen, blen - header)
        caplen = np.where(spb & (snap > 0), np.minimum(spb_cap, snap), np.where(spb, spb_cap, caplen))
    sane = (blen >= header) & (caplen + header <= blen)
    report.skip("unknown interface id", int((~known).sum()))
    report.skip("malformed packet block", int((known & ~sane).sum()))
    good = known & sane
    report.records_seen += int((~good).sum())
    linktype = np.asarray([i.linktype for i in interfaces] or [-1], np.int64)[gidx]
    ticks = (_u32(buf, off + 12, big).astype(np.uint64) << np.uint64(32)) | _u32(buf, off + 16, big)
    time = _seconds(ticks, gidx, interfaces) if interfaces else np.zeros(pkt.shape, np.float64)
    time = _fill_spb_times(time, spb, report)
    return PacketRecords(np.where(spb, off + 12, off + 28)[good], caplen[good].astype(np.uint32),
                         wirelen[good].astype(np.uint32), linktype[good], time[good])


def _fill_spb_times(time: np.ndarray, spb: np.ndarray, report: ReadReport) -> np.ndarray:
    """Simple packet blocks carry no timestamp: use the previous packet's time (0 before any)."""
    if not spb.any():
        return time
    stamped = ~spb
    last = np.maximum.accumulate(np.where(stamped, np.arange(spb.shape[0]), -1))
    filled = np.where(last >= 0, time[np.maximum(last, 0)], 0.0)
    report.notes["spb_without_timestamp"] = int(spb.sum())
    report.warnings.append(f"{report.path}: {int(spb.sum())} simple packet blocks carry no timestamp; "
                           "they got the previous packet's time (0 before any timestamped packet)")
    return np.where(spb, filled, time)
