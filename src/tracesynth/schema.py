"""Canonical tables: the one shape every reader produces and every writer, model and metric consumes.

Packets (one row per IPv4 packet) and flow records (one row per unidirectional flow record) are pandas
DataFrames with exactly these columns and dtypes; readers may add extra columns after them (for example
a flow file's `detailed_label`), which writers ignore unless asked.

Ports: `srcport`/`dstport` are the TCP/UDP ports for proto 6 and 17. For ICMP (1) and ICMPv6 (58) they
carry the ICMP type (`srcport`) and code (`dstport`), in packet and flow tables alike, so models learn
type/code as they learn ports and the 5-tuple separates ICMP messages by type and code (as NetFlow
does). Every other protocol has 0 in both. Readers translate other tools' ICMP encodings into this one
(`tracesynth.io.icmp`); the pcap writer writes ICMP headers from it (docs/packet-formats.md, "ICMP").
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

TraceKind = Literal["packets", "flows"]

#: Packet table: `time` is epoch seconds (float64 keeps microseconds at today's epoch).
PACKET_COLUMNS: dict[str, np.dtype] = {
    "time": np.dtype("float64"),
    "srcip": np.dtype("uint32"),
    "dstip": np.dtype("uint32"),
    "srcport": np.dtype("uint16"),
    "dstport": np.dtype("uint16"),
    "proto": np.dtype("uint8"),
    "pkt_len": np.dtype("uint16"),
    "tos": np.dtype("uint8"),
    "id": np.dtype("uint16"),
    "flag": np.dtype("uint8"),
    "off": np.dtype("uint16"),
    "ttl": np.dtype("uint8"),
    "tcp_flags": np.dtype("uint8"),
}

#: Protocols whose port columns hold the ICMP type (srcport) and code (dstport): ICMP and ICMPv6.
ICMP_PROTOS: tuple[int, int] = (1, 58)

#: Flow-record table: `ts` flow start (epoch s), `td` duration (s), `label` optional (string).
FLOW_COLUMNS: dict[str, np.dtype] = {
    "ts": np.dtype("float64"),
    "td": np.dtype("float64"),
    "srcip": np.dtype("uint32"),
    "dstip": np.dtype("uint32"),
    "srcport": np.dtype("uint16"),
    "dstport": np.dtype("uint16"),
    "proto": np.dtype("uint8"),
    "pkt": np.dtype("uint64"),
    "byt": np.dtype("uint64"),
}
FLOW_LABEL = "label"

#: The 5-tuple that defines a (unidirectional) flow.
FLOW_KEY: tuple[str, ...] = ("srcip", "dstip", "srcport", "dstport", "proto")


def pack_flow_key(srcip, dstip, srcport, dstport, proto) -> tuple[np.ndarray, np.ndarray]:
    """The 104-bit 5-tuple packed into two uint64 words: (srcip|dstip, srcport|dstport|proto).

    Sorting or factorising the pair groups records by flow without building Python tuples."""
    u = np.uint64
    hi = (np.asarray(srcip, dtype=u) << u(32)) | np.asarray(dstip, dtype=u)
    lo = (np.asarray(srcport, dtype=u) << u(24)) | (np.asarray(dstport, dtype=u) << u(8)) | np.asarray(proto, dtype=u)
    return hi, lo


def flow_key_words(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """`pack_flow_key` over a table's 5-tuple columns."""
    return pack_flow_key(*(table[c].to_numpy() for c in FLOW_KEY))


def flow_codes(table: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Dense flow ids (0..n-1, in order of first appearance) of every record's 5-tuple, and the flow count."""
    hosts, service = flow_key_words(table)
    host_code, _ = pd.factorize(hosts)
    key = (host_code.astype(np.uint64) << np.uint64(40)) | service
    codes, uniques = pd.factorize(key)
    return codes.astype(np.int64), len(uniques)


#: Name of the time column of each kind of table.
TIME_COLUMN: dict[str, str] = {"packets": "time", "flows": "ts"}

PROTO_NAMES: dict[str, int] = {
    "HOPOPT": 0, "ICMP": 1, "IGMP": 2, "IPIP": 4, "IPV4": 4, "TCP": 6, "EGP": 8, "IGP": 9, "UDP": 17,
    "IPV6": 41, "RSVP": 46, "GRE": 47, "ESP": 50, "AH": 51, "ICMPV6": 58, "IPV6-ICMP": 58, "EIGRP": 88,
    "OSPF": 89, "OSPFIGP": 89, "PIM": 103, "VRRP": 112, "L2TP": 115, "SCTP": 132, "UDPLITE": 136,
}


def columns_for(kind: TraceKind) -> dict[str, np.dtype]:
    """The canonical columns of a packet or flow table."""
    if kind == "packets":
        return PACKET_COLUMNS
    if kind == "flows":
        return FLOW_COLUMNS
    raise ValueError(f"unknown table kind {kind!r}")


def table_kind(table: pd.DataFrame) -> TraceKind:
    """Tell a packet table from a flow-record table by its time column."""
    if "time" in table.columns:
        return "packets"
    if "ts" in table.columns:
        return "flows"
    raise ValueError("table has neither a 'time' (packets) nor a 'ts' (flow records) column")


def empty_table(kind: TraceKind) -> pd.DataFrame:
    """A table of the given kind with no rows and the canonical dtypes."""
    return pd.DataFrame({c: np.empty(0, dtype=d) for c, d in columns_for(kind).items()})


def canonicalize(table: pd.DataFrame, kind: TraceKind | None = None) -> pd.DataFrame:
    """Return `table` with canonical columns first, cast to canonical dtypes, extra columns kept after.

    Raises KeyError naming the missing column; callers turn it into a UserError with the file name.
    """
    kind = kind or table_kind(table)
    cols = columns_for(kind)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise KeyError(f"missing column(s) {', '.join(missing)} for a {kind} table")
    out = {c: table[c].to_numpy(dtype=d, copy=False) for c, d in cols.items()}
    for c in table.columns:
        if c not in cols:
            out[c] = table[c].to_numpy(copy=False)
    return pd.DataFrame(out, copy=False)
