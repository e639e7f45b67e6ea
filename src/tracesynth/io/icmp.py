"""ICMP type and code in the port columns: how foreign flow formats encode them, and the echo fields the
pcap writer synthesises.

The convention (`tracesynth.schema`, docs/packet-formats.md "ICMP"): for proto 1 (ICMP) and 58
(ICMPv6), `srcport` holds the ICMP type and `dstport` the ICMP code, in packet and flow tables alike.
The models then learn type/code exactly as they learn ports, and the flow meter's 5-tuple key separates
ICMP messages by type and code (as NetFlow does), with no special case.

Foreign flow formats put type/code elsewhere; the functions here translate (all vectorised):
- NetFlow v5/v9 / IPFIX exporters (and nfdump, hence UGR16): srcport 0, dstport = type * 256 + code.
- Zeek conn.log: orig_p = type; resp_p = the *counterpart* type (echo request 8 <-> reply 0, ...) for
  request/reply messages and the code for one-way messages (Zeek's ICMP4_counterpart/ICMP6_counterpart).
- Argus: Sport = the type and code bytes read as one little-endian 16-bit number (0x0008: echo
  request, type 8 code 0; 0x0303: port unreachable); Dport is not the code (the ICMP identifier).
A bidirectional session's responder side answers a request with its counterpart type (echo request ->
echo reply) and repeats the type/code of a one-way message (`responder_type_code`).
"""
from __future__ import annotations

import numpy as np

from ..schema import ICMP_PROTOS

ICMP, ICMPV6 = ICMP_PROTOS

#: Request/reply pairs, as Zeek pairs them: ICMP echo, timestamp, information, address mask, router
#: solicitation/advertisement; ICMPv6 echo, MLD query/report, router/neighbour discovery, node
#: information, home agent address discovery. Other types are one-way messages.
COUNTERPARTS = {
    ICMP: ((8, 0), (13, 14), (15, 16), (17, 18), (10, 9)),
    ICMPV6: ((128, 129), (130, 131), (133, 134), (135, 136), (139, 140), (144, 145)),
}
#: ICMP types whose 4 bytes after the checksum are identifier + sequence number (RFC 792, RFC 950).
ID_SEQ_TYPES = (0, 8, 13, 14, 15, 16, 17, 18)


def _counterpart_table() -> np.ndarray:
    """[is_v6, type] -> counterpart type, or -1 for a one-way message."""
    table = np.full((2, 256), -1, np.int16)
    for row, proto in enumerate(ICMP_PROTOS):
        for a, b in COUNTERPARTS[proto]:
            table[row, a], table[row, b] = b, a
    return table


_COUNTERPART = _counterpart_table()


def is_icmp(proto: np.ndarray) -> np.ndarray:
    """Rows whose protocol carries ICMP type/code in its port columns."""
    proto = np.asarray(proto)
    return (proto == ICMP) | (proto == ICMPV6)


def counterpart(proto: np.ndarray, icmp_type: np.ndarray) -> np.ndarray:
    """The paired type of each request/reply type (int16), -1 for one-way types; `proto` 1 or 58."""
    row = (np.asarray(proto) == ICMPV6).astype(np.intp)
    return _COUNTERPART[row, np.asarray(icmp_type).astype(np.intp) & 0xFF]


def from_netflow_ports(proto: np.ndarray, srcport: np.ndarray,
                       dstport: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """NetFlow's `dstport = type * 256 + code` (srcport 0) -> (type, code) in (srcport, dstport).

    Only ICMP rows with dstport > 255 are translated: a code fits in a byte, so such a value can only be
    NetFlow's encoding, while a table already in the convention (tracesynth's own) never has one. The
    common 0/0 reads the same both ways: type 0 code 0, echo reply (also what an exporter that fills in
    no ICMP field writes, which no reader can tell apart). Returns (srcport, dstport, rows translated).
    """
    srcport, dstport = np.asarray(srcport).copy(), np.asarray(dstport).copy()
    encoded = is_icmp(proto) & (dstport > 255)
    srcport[encoded] = dstport[encoded] >> 8
    dstport[encoded] = dstport[encoded] & 0xFF
    return srcport, dstport, int(encoded.sum())


def from_zeek_ports(proto: np.ndarray, orig_p: np.ndarray, resp_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zeek's (orig_p, resp_p) of ICMP rows -> the originator's (type, code); other rows unchanged.

    resp_p is the counterpart type when orig_p has one (its code is 0, RFC 792) and the code otherwise.
    """
    orig_p, resp_p = np.asarray(orig_p).copy(), np.asarray(resp_p).copy()
    icmp = is_icmp(proto)
    paired = icmp & (counterpart(proto, orig_p) >= 0) & (orig_p <= 255)
    resp_p[paired] = 0
    return orig_p, resp_p


def from_argus_ports(proto: np.ndarray, sport: np.ndarray, dport: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argus's ICMP Sport (type in the low byte, code in the high byte) -> (type, code); others unchanged."""
    sport, dport = np.asarray(sport).copy(), np.asarray(dport).copy()
    icmp = is_icmp(proto)
    dport[icmp] = sport[icmp] >> 8
    sport[icmp] = sport[icmp] & 0xFF
    return sport, dport


def responder_type_code(proto: np.ndarray, icmp_type: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(type, code) of the responder side of an ICMP session: the counterpart type with code 0 for a
    request or reply, the same type and code for a one-way message."""
    pair = counterpart(proto, icmp_type)
    paired = pair >= 0
    return np.where(paired, pair, icmp_type), np.where(paired, 0, code)


def bidirectional_ports(proto: np.ndarray, icmp_type: np.ndarray, code: np.ndarray) -> np.ndarray:
    """A symmetric ICMP key part (uint64, < 2^16) for bidirectional flow metering, used as both ports: a
    request and its reply get the same value (the pair's smaller type * 256), a one-way message its
    type * 256 + code."""
    pair = counterpart(proto, icmp_type).astype(np.int64)
    paired = pair >= 0
    icmp_type = np.asarray(icmp_type).astype(np.int64) & 0xFF
    base = np.where(paired, np.minimum(icmp_type, pair), icmp_type)
    return ((base << 8) | np.where(paired, 0, np.asarray(code).astype(np.int64) & 0xFF)).astype(np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of each value (wrapping uint64 arithmetic)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def echo_fields(srcip: np.ndarray, dstip: np.ndarray, icmp_type: np.ndarray, mask: np.ndarray,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Identifier and sequence number (uint16 each) of every row in `mask` with an id/seq type; 0 elsewhere.

    The identifier is a seeded hash of the unordered address pair, so a request and its reply carry the
    same one (as `ping` does: one identifier per run). The sequence number counts the packets of each
    (srcip, dstip, type) from 1 in table order (the order an analyser reads the file in), so the k-th
    echo reply answers the k-th request.
    """
    n = mask.shape[0]
    ident, seq = np.zeros(n, np.uint16), np.zeros(n, np.uint16)
    rows = np.flatnonzero(mask & np.isin(icmp_type, ID_SEQ_TYPES))
    if not rows.shape[0]:
        return ident, seq
    src, dst = srcip[rows].astype(np.uint64), dstip[rows].astype(np.uint64)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    with np.errstate(over="ignore"):
        key = _mix(_mix((hi << np.uint64(32)) | lo) + np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    ident[rows] = (key & np.uint64(0xFFFF)).astype(np.uint16)
    kind = icmp_type[rows].astype(np.uint64)
    order = np.lexsort((kind, dst, src))  # stable: table order within a group
    s, d, k = src[order], dst[order], kind[order]
    start = np.r_[True, (s[1:] != s[:-1]) | (d[1:] != d[:-1]) | (k[1:] != k[:-1])]
    first = np.maximum.accumulate(np.where(start, np.arange(rows.shape[0]), 0))
    seq[rows[order]] = ((np.arange(rows.shape[0]) - first + 1) & 0xFFFF).astype(np.uint16)
    return ident, seq


__all__ = ["COUNTERPARTS", "ID_SEQ_TYPES", "is_icmp", "counterpart", "from_netflow_ports", "from_zeek_ports",
           "from_argus_ports", "responder_type_code", "bidirectional_ports", "echo_fields"]
