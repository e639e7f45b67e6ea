"""Record walks: hop over pcap record headers / pcapng block headers and return flat offset arrays.

This is the only per-record loop in packet reading, so it is compiled with numba (`@njit(cache=True)`).
When numba is missing, or `TRACESYNTH_NO_NUMBA=1` is set, the very same functions run as plain Python
(slower, same results), which lets the tests cover both paths. Everything after the walk (link layers,
IPv4 fields, timestamps) is vectorised numpy in `decode.py`, `pcap.py` and `pcapng.py`.

Each walk runs twice: a counting pass, then a filling pass into exactly-sized arrays, so memory never
depends on a guess (a 1 M-packet file costs 1 M entries per array, not file_size / 16).

Walk status codes (returned with the stop offset):
  WALK_OK         every byte was consumed by whole records
  WALK_TRUNCATED  the last record is cut short (header or data runs past the end of the file)
  WALK_GARBAGE    a record header is impossible (length beyond any snap length, block length < 12 or
                  not a multiple of 4, trailer length mismatch, bad byte-order magic)
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

WALK_OK, WALK_TRUNCATED, WALK_GARBAGE = 0, 1, 2

#: Largest caplen accepted in a classic pcap record when the header's snaplen is smaller (Wireshark's).
MAX_CAPLEN = 262144


def _identity(fn):
    return fn


def _choose_jit():
    """numba's njit when available and not disabled by TRACESYNTH_NO_NUMBA=1, else run as Python."""
    if os.environ.get("TRACESYNTH_NO_NUMBA", "") not in ("", "0"):
        return _identity, False
    try:
        from numba import njit
    except ImportError:  # numba is a dependency, but keep reading working without it
        log.info("numba not available; using the pure-Python record walk")
        return _identity, False
    return njit(cache=True, nogil=True), True


_jit, HAVE_NUMBA = _choose_jit()


@_jit
def _u32(buf, pos, big):
    """Unsigned 32-bit integer at `pos` in the given byte order."""
    b0, b1, b2, b3 = int(buf[pos]), int(buf[pos + 1]), int(buf[pos + 2]), int(buf[pos + 3])
    if big:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)


@_jit
def _pcap_pass(buf, start, big, snaplen, fill, rec_off, caplen, wirelen, ts_sec, ts_frac):
    """Walk classic pcap records from `start`; fill the arrays when `fill`. Returns (n, stop, status)."""
    size = buf.shape[0]
    limit = max(snaplen, MAX_CAPLEN)
    pos = start
    n = 0
    while pos < size:
        if pos + 16 > size:
            return n, pos, WALK_TRUNCATED
        cap = _u32(buf, pos + 8, big)
        if cap > limit:
            return n, pos, WALK_GARBAGE
        if pos + 16 + cap > size:
            return n, pos, WALK_TRUNCATED
        if fill:
            rec_off[n] = pos + 16
            caplen[n] = cap
            wirelen[n] = _u32(buf, pos + 12, big)
            ts_sec[n] = _u32(buf, pos, big)
            ts_frac[n] = _u32(buf, pos + 4, big)
        n += 1
        pos += 16 + cap
    return n, pos, WALK_OK


def walk_pcap(buf: np.ndarray, start: int, big: bool, snaplen: int):
    """Record table of a classic pcap: data offsets, caplen, wire length, seconds, fraction; stop, status."""
    buf = _walkable(buf)
    none64 = np.empty(0, np.int64)
    none32 = np.empty(0, np.uint32)
    n, stop, status = _pcap_pass(buf, start, big, snaplen, False, none64, none32, none32, none32, none32)
    rec_off = np.empty(n, np.int64)
    caplen, wirelen = np.empty(n, np.uint32), np.empty(n, np.uint32)
    ts_sec, ts_frac = np.empty(n, np.uint32), np.empty(n, np.uint32)
    _pcap_pass(buf, start, big, snaplen, True, rec_off, caplen, wirelen, ts_sec, ts_frac)
    return rec_off, caplen, wirelen, ts_sec, ts_frac, stop, status


def _walkable(buf: np.ndarray):
    """The compiled walk takes the array; plain Python indexes a memoryview far faster than numpy."""
    return buf if HAVE_NUMBA else buf.data


SHB_TYPE = 0x0A0D0D0A
BYTE_ORDER_MAGIC = 0x1A2B3C4D


@_jit
def _pcapng_pass(buf, fill, blk_off, blk_type, blk_len, blk_big):
    """Walk pcapng blocks from offset 0, switching byte order at each section header block.

    Returns (n_blocks, stop_offset, status).
    """
    size = buf.shape[0]
    pos = 0
    n = 0
    big = False
    while pos < size:
        if pos + 12 > size:
            return n, pos, WALK_TRUNCATED
        btype = _u32(buf, pos, False)
        if btype == SHB_TYPE:
            if _u32(buf, pos + 8, False) == BYTE_ORDER_MAGIC:
                big = False
            elif _u32(buf, pos + 8, True) == BYTE_ORDER_MAGIC:
                big = True
            else:
                return n, pos, WALK_GARBAGE
        elif n == 0:
            return n, pos, WALK_GARBAGE  # a pcapng file must open with a section header block
        btype = _u32(buf, pos, big)
        blen = _u32(buf, pos + 4, big)
        if blen < 12 or blen % 4 != 0:
            return n, pos, WALK_GARBAGE
        if pos + blen > size:
            return n, pos, WALK_TRUNCATED
        if _u32(buf, pos + blen - 4, big) != blen:
            return n, pos, WALK_GARBAGE
        if fill:
            blk_off[n] = pos
            blk_type[n] = btype
            blk_len[n] = blen
            blk_big[n] = big
        n += 1
        pos += blen
    return n, pos, WALK_OK


def walk_pcapng(buf: np.ndarray):
    """Block table of a pcapng file: offsets, types, total lengths, big-endian flags; stop, status."""
    buf = _walkable(buf)
    n, stop, status = _pcapng_pass(buf, False, np.empty(0, np.int64), np.empty(0, np.uint32),
                                   np.empty(0, np.uint32), np.empty(0, np.bool_))
    blk_off, blk_type = np.empty(n, np.int64), np.empty(n, np.uint32)
    blk_len, blk_big = np.empty(n, np.uint32), np.empty(n, np.bool_)
    _pcapng_pass(buf, True, blk_off, blk_type, blk_len, blk_big)
    return blk_off, blk_type, blk_len, blk_big, stop, status


@dataclass
class PacketRecords:
    """What a capture container says about each packet, before any protocol is decoded.

    `data_off` is the captured data's offset in the buffer, `linktype` the packet's interface link
    type, `time` epoch seconds.
    """

    data_off: np.ndarray  # int64
    caplen: np.ndarray    # uint32
    wirelen: np.ndarray   # uint32
    linktype: np.ndarray  # int64
    time: np.ndarray      # float64
