"""Link layers and IPv4/TCP/UDP/ICMP field extraction, vectorised over a flat byte buffer (ICMP type and
code go into the port columns, the schema's convention).

Input: the whole capture as one uint8 array, plus per-packet arrays of the captured data's offset,
captured length and link type (from the record walk). Every field is a numpy gather at `offset + k`,
guarded so that nothing past a packet's captured length is ever read: a field that was not captured
is 0 and counted, never garbage. Packets that are not IPv4 are counted in `ReadReport.skipped` by
reason and never parsed as IPv4.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..schema import ICMP_PROTOS
from . import ReadReport

# Per-packet network-layer status codes; a packet is decoded only when its status is IPV4.
IPV4, IPV6, NON_IP_ETHERTYPE, LINK_TRUNCATED, BAD_IP_VERSION, UNSUPPORTED_LINK, NON_IP_FAMILY, \
    LLC_FRAME, IPV4_TRUNCATED, BAD_IHL = range(10)

_REASONS = {
    IPV6: "ipv6",
    NON_IP_ETHERTYPE: "non-ip ethertype 0x{:04x}",
    LINK_TRUNCATED: "link header truncated",
    BAD_IP_VERSION: "bad ip version",
    UNSUPPORTED_LINK: "unsupported link type {}",
    NON_IP_FAMILY: "non-ip address family {}",
    LLC_FRAME: "802.3/llc frame (no ethertype)",
    IPV4_TRUNCATED: "ipv4 header truncated",
    BAD_IHL: "bad ipv4 header length",
}

#: Link types with an IP packet straight after the record header (no link header).
RAW_IP_LINKTYPES = (101, 12, 14)
LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229
LINKTYPE_ETHERNET, LINKTYPE_SLL, LINKTYPE_SLL2 = 1, 113, 276
LINKTYPE_NULL, LINKTYPE_LOOP = 0, 108
SUPPORTED_LINKTYPES = frozenset((*RAW_IP_LINKTYPES, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_ETHERNET,
                                 LINKTYPE_SLL, LINKTYPE_SLL2, LINKTYPE_NULL, LINKTYPE_LOOP))

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
#: BSD address families for IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30).
AF_INET, AF_INET6 = 2, (24, 28, 30)
MAX_VLAN_TAGS = 4


@dataclass
class NetworkLayer:
    """Where each packet's network header starts, how many bytes of it were captured, and its status."""

    offset: np.ndarray   # int64 absolute offset into the buffer
    captured: np.ndarray  # int32 captured bytes from `offset` on
    status: np.ndarray   # int8 status code (IPV4 or a skip reason)
    value: np.ndarray    # int32 detail for the reason (ethertype, link type, family)


def _view(buf: np.ndarray, dtype: str) -> np.ndarray:
    """`buf` seen as `dtype` values starting at every byte offset (stride 1), for one-step gathers."""
    dt = np.dtype(dtype)
    n = max(buf.shape[0] - dt.itemsize + 1, 0)
    return np.ndarray((n,), dtype=dt, buffer=buf, offset=0, strides=(1,))


def _gather(buf: np.ndarray, dtype: str, pos: np.ndarray, ok: np.ndarray | None) -> np.ndarray:
    """Values of `dtype` (big-endian for multi-byte) at byte offsets `pos` where `ok`, 0 elsewhere.

    Masked positions read offset 0 instead of their own, so nothing out of range is ever touched.
    """
    view = _view(buf, dtype)
    if ok is None:
        return view[pos].astype(view.dtype.newbyteorder("="))
    out = view[np.where(ok, pos, 0)].astype(view.dtype.newbyteorder("="))
    out[~ok] = 0
    return out


def _u8(buf: np.ndarray, pos: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
    return _gather(buf, "u1", pos, ok)


def _be16(buf: np.ndarray, pos: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
    return _gather(buf, ">u2", pos, ok)


def _be32(buf: np.ndarray, pos: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
    return _gather(buf, ">u4", pos, ok)


def _le32(buf: np.ndarray, pos: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
    return _gather(buf, "<u4", pos, ok)


def distinct_counts(values: np.ndarray) -> dict[int, int]:
    """{value: count}; the common single-valued case (one link type) without sorting."""
    if values.shape[0] and (values == values[0]).all():
        return {int(values[0]): int(values.shape[0])}
    uniq, counts = np.unique(values, return_counts=True)
    return {int(u): int(c) for u, c in zip(uniq, counts)}


def _by_ethertype(etype: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Status and detail value from an EtherType (or SLL protocol) field."""
    status = np.full(etype.shape, NON_IP_ETHERTYPE, np.int8)
    status[etype == ETH_IPV4] = IPV4
    status[etype == ETH_IPV6] = IPV6
    status[etype <= 1500] = LLC_FRAME
    status[~ok] = LINK_TRUNCATED
    return status, etype.astype(np.int64)


def _ethernet(buf, off, cap):
    """Ethernet II with any stack of 802.1Q / 802.1ad / QinQ tags (up to MAX_VLAN_TAGS)."""
    hdr = np.full(off.shape, 14, np.int64)
    ok = cap >= 14
    etype = _be16(buf, off + 12, ok)
    for _ in range(MAX_VLAN_TAGS):
        tagged = ok & np.isin(etype, VLAN_TPIDS)
        if not tagged.any():
            break
        ok &= ~tagged | (cap >= hdr + 4)
        etype = np.where(tagged, _be16(buf, off + hdr + 2, tagged & ok), etype)
        hdr = np.where(tagged, hdr + 4, hdr)
    status, value = _by_ethertype(etype, ok)
    return hdr, status, value


def _sll(buf, off, cap, header: int, proto_at: int):
    """Linux cooked capture v1 (16-byte header, protocol at 14) or v2 (20 bytes, protocol at 0)."""
    ok = cap >= header
    status, value = _by_ethertype(_be16(buf, off + proto_at, ok), ok)
    return np.full(off.shape, header, np.int64), status, value


def _bsd_null(buf, off, cap):
    """BSD NULL/LOOP: a 4-byte address family in host (NULL) or network (LOOP) byte order; accept both."""
    ok = cap >= 4
    le, be = _le32(buf, off, ok).astype(np.int64), _be32(buf, off, ok).astype(np.int64)
    status = np.full(off.shape, NON_IP_FAMILY, np.int8)
    status[np.isin(le, AF_INET6) | np.isin(be, AF_INET6)] = IPV6
    status[(le == AF_INET) | (be == AF_INET)] = IPV4
    status[~ok] = LINK_TRUNCATED
    return np.full(off.shape, 4, np.int64), status, np.minimum(le, be)


def _raw_ip(buf, off, cap, linktype: int):
    """Raw IP: the version nibble says v4 or v6 (228 / 229 fix the version)."""
    ok = cap >= 1
    version = _u8(buf, off, ok) >> 4
    status = np.full(off.shape, BAD_IP_VERSION, np.int8)
    if linktype == LINKTYPE_IPV6:
        status[:] = IPV6
    else:
        status[version == 4] = IPV4
        if linktype != LINKTYPE_IPV4:
            status[version == 6] = IPV6
    status[~ok] = IPV4_TRUNCATED
    return np.zeros(off.shape, np.int64), status, np.zeros(off.shape, np.int64)


def locate_network_layer(buf: np.ndarray, data_off: np.ndarray, caplen: np.ndarray,
                         linktype: np.ndarray) -> NetworkLayer:
    """Strip each packet's link header; one vectorised pass per distinct link type."""
    n = data_off.shape[0]
    hdr = np.zeros(n, np.int32)
    status = np.full(n, UNSUPPORTED_LINK, np.int8)
    value = linktype.astype(np.int32)
    cap = caplen.astype(np.int32)
    single = len(distinct_counts(linktype)) == 1
    for lt in distinct_counts(linktype):
        idx = slice(None) if single else np.flatnonzero(linktype == lt)
        off, c = data_off[idx], cap[idx]
        if lt == LINKTYPE_ETHERNET:
            h, s, v = _ethernet(buf, off, c)
        elif lt == LINKTYPE_SLL:
            h, s, v = _sll(buf, off, c, 16, 14)
        elif lt == LINKTYPE_SLL2:
            h, s, v = _sll(buf, off, c, 20, 0)
        elif lt in (LINKTYPE_NULL, LINKTYPE_LOOP):
            h, s, v = _bsd_null(buf, off, c)
        elif lt in RAW_IP_LINKTYPES or lt in (LINKTYPE_IPV4, LINKTYPE_IPV6):
            h, s, v = _raw_ip(buf, off, c, lt)
        else:
            continue
        hdr[idx], status[idx], value[idx] = h, s, v
    return NetworkLayer(data_off + hdr, np.maximum(cap - hdr, 0), status, value)


def _check_ipv4(buf: np.ndarray, net: NetworkLayer) -> None:
    """Demote IPv4 candidates whose header is truncated, not version 4, or shorter than 20 bytes."""
    cand = net.status == IPV4
    short = cand & (net.captured < 20)
    net.status[short] = IPV4_TRUNCATED
    cand &= ~short
    vihl = _u8(buf, net.offset, cand)
    net.status[cand & ((vihl >> 4) != 4)] = BAD_IP_VERSION
    net.status[cand & ((vihl >> 4) == 4) & ((vihl & 0x0F) < 5)] = BAD_IHL


def count_skipped(net: NetworkLayer, report: ReadReport) -> None:
    """Add every non-IPv4 packet to `report.skipped` under its reason."""
    skipped = net.status != IPV4
    if not skipped.any():
        return
    pairs = np.stack([net.status[skipped].astype(np.int64), net.value[skipped]], axis=1)
    for (code, val), count in zip(*np.unique(pairs, axis=0, return_counts=True)):
        template = _REASONS[int(code)]
        report.skip(template.format(int(val)) if "{" in template else template, int(count))


def _ports(buf: np.ndarray, l4: np.ndarray, has_ports: np.ndarray, icmp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """srcport, dstport: TCP/UDP ports where `has_ports`; ICMP type and code where `icmp` (the schema's
    convention); 0 elsewhere. The type and code bytes are the 16-bit word a port gather reads anyway."""
    src = _be16(buf, l4, has_ports | icmp)
    dst = _be16(buf, l4 + 2, has_ports)
    if icmp.any():
        dst[icmp] = src[icmp] & 0xFF
        src[icmp] >>= 8
    return src, dst


def decode_ipv4(buf: np.ndarray, data_off: np.ndarray, caplen: np.ndarray, linktype: np.ndarray,
                report: ReadReport) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Decode every IPv4 packet. Returns (indices of the kept packets, column arrays for them).

    Ports, ICMP type/code (in the port columns) and TCP flags come only from first fragments (off == 0)
    and only when captured within the IP total length; the count of TCP/UDP/ICMP packets missing them
    goes to `report.notes["l4_truncated"]`.
    """
    net = locate_network_layer(buf, data_off, caplen, linktype)
    _check_ipv4(buf, net)
    count_skipped(net, report)
    is_v4 = net.status == IPV4
    keep = np.flatnonzero(is_v4)
    o, cap = (net.offset, net.captured) if is_v4.all() else (net.offset[keep], net.captured[keep])
    yes = None  # every kept packet has 20 captured header bytes
    cols: dict[str, np.ndarray] = {}
    cols["srcip"] = _be32(buf, o + 12, yes)
    cols["dstip"] = _be32(buf, o + 16, yes)
    proto = _u8(buf, o + 9, yes)
    pkt_len = _be16(buf, o + 2, yes)
    frag = _be16(buf, o + 6, yes)
    off = frag & 0x1FFF
    ihl = (_u8(buf, o, yes) & 0x0F).astype(np.int32) * 4
    ip_end = np.minimum(cap, pkt_len.astype(np.int32))
    tso = pkt_len == 0  # total length 0: segmentation offload, the capture decides
    ip_end[tso] = cap[tso]
    l4, l4_cap = o + ihl, ip_end - ihl
    first = off == 0
    tcp, udp = first & (proto == 6), first & (proto == 17)
    icmp_proto = first & ((proto == ICMP_PROTOS[0]) | (proto == ICMP_PROTOS[1]))
    has_ports = (tcp | udp) & (l4_cap >= 4)
    has_flags = tcp & (l4_cap >= 14)
    icmp = icmp_proto & (l4_cap >= 2)
    cols["srcport"], cols["dstport"] = _ports(buf, l4, has_ports, icmp)
    cols["proto"] = proto
    cols["pkt_len"] = pkt_len
    cols["tos"] = _u8(buf, o + 1, yes)
    cols["id"] = _be16(buf, o + 4, yes)
    cols["flag"] = (frag >> 13).astype(np.uint8)
    cols["off"] = off
    cols["ttl"] = _u8(buf, o + 8, yes)
    cols["tcp_flags"] = _u8(buf, l4 + 13, has_flags)
    truncated = int(((tcp | udp) & ~has_ports).sum() + (tcp & has_ports & ~has_flags).sum()
                    + (icmp_proto & ~icmp).sum())
    report.notes["l4_truncated"] = report.notes.get("l4_truncated", 0) + truncated
    return keep, cols
