"""Classic pcap writer for the canonical packet table: header-only capture, every field kept.

Each packet becomes one record: [Ethernet II (optional)] + IPv4 header (20 bytes, no options, valid
checksum, total length = pkt_len) + TCP (20 bytes; SYNs up to 40 more of options) or UDP (8 bytes)
header when the packet is a first fragment (off == 0) of protocol 6 / 17; other protocols and later
fragments get the IP header only.
The payload is not captured: captured length = headers, wire length = pkt_len (+14 for Ethernet).

TCP sequence, acknowledgement and window numbers are synthesised per connection direction
(`tcp_state`, seeded) so that a protocol analyser reads each direction as a consistent byte stream.

ICMP (proto 1, first fragments) is the exception: an 8-byte header from the table's ICMP convention
(type = srcport, code = dstport; identifier and sequence number synthesised by `icmp.echo_fields`,
seeded) and its payload as zero bytes up to pkt_len, so the ICMP checksum (over header and payload, no
pseudo-header) is complete and verifiable. ICMPv6 (58) needs the IPv6 pseudo-header and IPv6 is not in
the canonical tables yet: proto 58 rows get the IP header only, like any other protocol.

TCP/UDP checksums follow one rule (docs/packet-formats.md): the standard Internet checksum over the
pseudo-header (L4 length = pkt_len - 20) and the full L4 header, with the uncaptured payload taken as
zero bytes, i.e. the checksum the packet would carry if its payload were all zeros.

All headers are built at once as a numpy structured array and written with one `write` per block of
rows, through `tracesynth._atomic` so an interrupted write never leaves a file that looks complete.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_open
from ..errors import UserError
from ..schema import ICMP_PROTOS, canonicalize
from .icmp import echo_fields
from .tcp_state import DEFAULT_SEED, SYN_OPTIONS, tcp_header_fields

log = logging.getLogger(__name__)

LINKTYPES = {"raw": 101, "ethernet": 1}
SNAPLEN = 262144
ETH_DST, ETH_SRC = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")
_BLOCK_ROWS = 1 << 20

_IP_FIELDS = [("ver_ihl", "u1", 0), ("tos", "u1", 1), ("len", ">u2", 2), ("id", ">u2", 4),
              ("frag", ">u2", 6), ("ttl", "u1", 8), ("p", "u1", 9), ("sum", ">u2", 10),
              ("src", ">u4", 12), ("dst", ">u4", 16)]
_L4_FIELDS = [("sport", ">u2", 0), ("dport", ">u2", 2), ("seq", ">u4", 4), ("ack", ">u4", 8),
              ("doff", "u1", 12), ("flags", "u1", 13), ("win", ">u2", 14), ("tsum", ">u2", 16),
              ("urp", ">u2", 18), ("opt", "V40", 20), ("ulen", ">u2", 4), ("usum", ">u2", 6)]
#: SYN option blocks by length / 4 (0, 4, ..., 40 bytes), zero-padded to 40, and their 16-bit word sums.
_OPTIONS = np.array([SYN_OPTIONS[:k] + bytes(40 - k) for k in range(0, 41, 4)], dtype="V40")
_OPTION_SUMS = np.r_[0, np.cumsum(np.frombuffer(SYN_OPTIONS, ">u2").astype(np.uint64))][::2]
#: ICMP header in the same L4 area (it shares bytes with the TCP/UDP fields: written for ICMP rows only).
_ICMP_FIELDS = [("itype", "u1", 0), ("icode", "u1", 1), ("isum", ">u2", 2), ("iid", ">u2", 4), ("iseq", ">u2", 6)]
ICMP_HEADER = 8


def _record_dtype(eth: bool) -> np.dtype:
    """One record as bytes: pcap record header, optional Ethernet, IPv4, a 60-byte L4 area (TCP with
    options / UDP)."""
    names, formats, offsets = ["ts_sec", "ts_frac", "incl_len", "orig_len"], ["<u4"] * 4, [0, 4, 8, 12]
    ip_at = 16
    if eth:
        names += ["eth_dst", "eth_src", "eth_type"]
        formats += ["V6", "V6", ">u2"]
        offsets += [16, 22, 28]
        ip_at = 30
    for name, fmt, at in _IP_FIELDS:
        names.append(name), formats.append(fmt), offsets.append(ip_at + at)
    for name, fmt, at in (*_L4_FIELDS, *_ICMP_FIELDS):
        names.append(name), formats.append(fmt), offsets.append(ip_at + 20 + at)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": ip_at + 80})


def _fold(total: np.ndarray) -> np.ndarray:
    """Ones'-complement checksum of a sum of 16-bit words."""
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF).astype(np.uint16)


def _words(v: np.ndarray) -> np.ndarray:
    """Sum of the two 16-bit halves of 32-bit values (for checksums over addresses)."""
    v = v.astype(np.uint64)
    return (v >> 16) + (v & 0xFFFF)


def _timestamps(time: np.ndarray, nanosecond: bool, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Split epoch seconds into whole seconds and micro/nanoseconds, rounding with carry."""
    if not np.isfinite(time).all() or (time < 0).any() or (time >= 2**32).any():
        raise UserError(f"{path}: column 'time' must hold epoch seconds in [0, 2^32) to fit a pcap")
    scale = 10**9 if nanosecond else 10**6
    sec = np.floor(time)
    frac = np.rint((time - sec) * scale).astype(np.int64)
    carry = frac >= scale
    sec, frac = sec.astype(np.int64) + carry, np.where(carry, frac - scale, frac)
    return sec.astype(np.uint32), frac.astype(np.uint32)


def _records(t: dict[str, np.ndarray], eth: bool, nanosecond: bool, path: Path) -> np.ndarray:
    """The bytes of every record of one block of rows, concatenated."""
    n = t["time"].shape[0]
    dt = _record_dtype(eth)
    rec = np.zeros(n, dt)
    pkt_len = t["pkt_len"].astype(np.int64)
    first = t["off"] == 0
    tcp, udp = first & (t["proto"] == 6), first & (t["proto"] == 17)
    opt_len = t["opt_len"].astype(np.int64)
    l4_len = np.where(tcp, 20 + opt_len, np.where(udp, 8, 0))
    icmp = first & (t["proto"] == ICMP_PROTOS[0])
    l4_len = np.where(icmp, ICMP_HEADER, l4_len)
    l4_cap = np.clip(pkt_len - 20, 0, l4_len)  # what fits inside pkt_len
    link = 14 if eth else 0
    payload = np.where(icmp, np.maximum(pkt_len - 20 - ICMP_HEADER, 0), 0)  # ICMP only: zero bytes, captured
    caplen = link + 20 + l4_cap + payload
    rec["ts_sec"], rec["ts_frac"] = _timestamps(t["time"], nanosecond, path)
    rec["incl_len"] = caplen
    rec["orig_len"] = np.maximum(pkt_len + link, caplen)
    if eth:
        rec["eth_dst"], rec["eth_src"], rec["eth_type"] = ETH_DST, ETH_SRC, 0x0800
    frag = (t["flag"].astype(np.uint16) << 13) | (t["off"].astype(np.uint16) & 0x1FFF)
    rec["ver_ihl"], rec["tos"], rec["len"], rec["id"] = 0x45, t["tos"], t["pkt_len"], t["id"]
    rec["frag"], rec["ttl"], rec["p"], rec["src"], rec["dst"] = frag, t["ttl"], t["proto"], t["srcip"], t["dstip"]
    addr = _words(t["srcip"]) + _words(t["dstip"])
    rec["sum"] = _fold(addr + (0x4500 | t["tos"].astype(np.uint64)) + t["pkt_len"] + t["id"] + frag
                       + (t["ttl"].astype(np.uint64) << 8) + t["proto"])
    ports = t["srcport"].astype(np.uint64) + t["dstport"]
    seg_len = np.clip(pkt_len - 20, 0, 0xFFFF).astype(np.uint64)
    rec["sport"] = np.where(tcp | udp, t["srcport"], 0)
    rec["dport"] = np.where(tcp | udp, t["dstport"], 0)
    doff = np.where(tcp, (5 + opt_len // 4) << 4, 0).astype(np.uint64)
    rec["doff"], rec["opt"] = doff, _OPTIONS[opt_len // 4]
    rec["flags"] = np.where(tcp, t["tcp_flags"], 0)
    rec["seq"], rec["ack"], rec["win"] = t["seq"], t["ack"], t["win"]
    tsum = _fold(addr + 6 + seg_len + ports + _words(t["seq"]) + _words(t["ack"]) + _OPTION_SUMS[opt_len // 4]
                 + ((doff << 8) | t["tcp_flags"].astype(np.uint64)) + t["win"])
    rec["tsum"] = np.where(tcp, tsum, 0)
    usum = _fold(addr + 17 + 2 * seg_len + ports)  # UDP length appears in pseudo-header and header
    rec["ulen"][udp] = seg_len[udp]  # UDP length and checksum share bytes with TCP's seq: UDP rows only
    rec["usum"][udp] = np.where(usum == 0, 0xFFFF, usum)[udp]
    if icmp.any():
        _icmp_header(rec, t, icmp)
    head = 16 + link + 20 + l4_cap
    keep = np.arange(dt.itemsize)[None, :] < head[:, None]
    return _append_zeros(rec.view(np.uint8).reshape(n, dt.itemsize)[keep], head, payload)


def _icmp_header(rec: np.ndarray, t: dict[str, np.ndarray], icmp: np.ndarray) -> None:
    """ICMP type, code, checksum, identifier, sequence number of the `icmp` rows, written over the TCP/UDP
    fields they share bytes with. The checksum covers the header and the zero payload (which adds 0)."""
    itype, code = t["srcport"][icmp].astype(np.uint64), t["dstport"][icmp].astype(np.uint64)
    ident, seq = t["icmp_id"][icmp].astype(np.uint64), t["icmp_seq"][icmp].astype(np.uint64)
    rec["itype"][icmp], rec["icode"][icmp] = itype & 0xFF, code & 0xFF
    rec["iid"][icmp], rec["iseq"][icmp] = ident, seq
    rec["isum"][icmp] = _fold((((itype & 0xFF) << 8) | (code & 0xFF)) + ident + seq)


def _append_zeros(head: np.ndarray, head_len: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """Concatenated record headers (`head_len` bytes each) with `pad` zero bytes after each record's."""
    if not pad.any():
        return head
    runs = np.stack([head_len, pad], axis=1).ravel()  # header, zeros, header, zeros, ...
    is_head = np.repeat(np.tile(np.array([True, False]), head_len.shape[0]), runs)
    out = np.zeros(is_head.shape[0], np.uint8)
    out[is_head] = head
    return out


def _icmp_fields(cols: dict[str, np.ndarray], seed: int, path: Path) -> dict[str, np.ndarray]:
    """Identifier and sequence number of every ICMP first fragment over the whole table (so numbering
    runs across write blocks); type/code beyond a byte (a table not in the ICMP convention) are warned."""
    icmp = (cols["proto"] == ICMP_PROTOS[0]) & (cols["off"] == 0)
    wide = int((icmp & ((cols["srcport"] > 255) | (cols["dstport"] > 255))).sum())
    if wide:
        log.warning("%s: %d ICMP packet(s) have srcport/dstport above 255, which cannot be an ICMP type/code; "
                    "written modulo 256", path, wide)
    ident, seq = echo_fields(cols["srcip"], cols["dstip"], cols["srcport"], icmp, seed)
    return {"icmp_id": ident, "icmp_seq": seq}


def write_pcap(table: pd.DataFrame, path: str | Path, *, linktype: str = "raw",
               nanosecond: bool = False, seed: int = DEFAULT_SEED) -> Path:
    """Write the packet table as a classic pcap (little-endian, µs or ns timestamps). Atomic.

    `linktype` "raw" (LINKTYPE_RAW, 101) or "ethernet" (1, fixed locally administered MACs).
    `seed` draws the TCP initial sequence numbers and windows (`tcp_state`) and the ICMP identifiers:
    same table and seed, same bytes.
    """
    path = Path(path)
    if linktype not in LINKTYPES:
        raise UserError(f"{path}: unknown pcap link type {linktype!r}; use 'raw' or 'ethernet'")
    try:
        table = canonicalize(table, "packets")
    except KeyError as exc:
        raise UserError(f"{path}: cannot write a pcap: {exc.args[0]}") from None
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    header = np.array([(magic, 2, 4, 0, 0, SNAPLEN, LINKTYPES[linktype])],
                      dtype=[("magic", "<u4"), ("major", "<u2"), ("minor", "<u2"), ("zone", "<i4"),
                             ("sigfigs", "<u4"), ("snaplen", "<u4"), ("linktype", "<u4")])
    cols = {c: table[c].to_numpy() for c in ("time", "srcip", "dstip", "srcport", "dstport", "proto",
                                             "pkt_len", "tos", "id", "flag", "off", "ttl", "tcp_flags")}
    fields = tcp_header_fields(cols, (cols["proto"] == 6) & (cols["off"] == 0), seed=seed)
    cols.update(seq=fields.seq, ack=fields.ack, win=fields.win, opt_len=fields.opt_len)
    cols.update(_icmp_fields(cols, seed, path))
    with atomic_open(path) as fh:
        fh.write(header.tobytes())
        for start in range(0, len(table), _BLOCK_ROWS):
            block = {c: v[start:start + _BLOCK_ROWS] for c, v in cols.items()}
            fh.write(_records(block, linktype == "ethernet", nanosecond, path).tobytes())
    return path
