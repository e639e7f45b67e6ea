"""Flow meter: packets -> unidirectional flow records with idle and active timeouts.

Rules (nfstream's, per packet of a 5-tuple in time order; for ICMP the "ports" are type and code, so
echo requests A -> B and echo replies B -> A are two records, and each ICMP type/code between two
hosts its own record, as in NetFlow): the packet starts a new flow record when it is
the first of its key, when the gap since the previous packet of the key is greater than `idle_timeout`,
or when the time since the first packet of the current record is greater than `active_timeout`
(strictly greater, as nfstream compares). A record's `ts` is its first packet's time, `td` the last
minus the first, `pkt` its packet count and `byt` the sum of `pkt_len` (IP total length).

Vectorised: one sort by (key, time), then segment boundaries from `np.diff`. The idle rule is a pure
numpy comparison; the active rule depends on where the previous record started, so a numba kernel walks
the sorted times once (a numpy fallback iterates only over records still longer than the timeout).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import UserError
from ..schema import FLOW_COLUMNS, FLOW_KEY, PACKET_COLUMNS, pack_flow_key
from . import icmp

log = logging.getLogger(__name__)

try:  # numba is a dependency, but keep a pure-numpy path for platforms without a wheel
    from numba import njit
except ImportError:  # pragma: no cover - exercised only without numba
    njit = None


def meter_flows(packets: pd.DataFrame, idle_timeout: float = 120.0, active_timeout: float = 1800.0,
                *, bidirectional: bool = False) -> pd.DataFrame:
    """Group a packet table into flow records (canonical flow table, sorted by start time).

    `bidirectional=True` keys flows on the unordered pair of endpoints, like nfstream's default output,
    with the record's direction (and ICMP type/code) taken from its first packet; it exists to compare
    with such tools. ICMP requests and their replies (echo 8/0, timestamp 13/14, ...) then share one
    record; one-way messages (unreachable, time exceeded, ...) are keyed by their type and code.
    """
    _check(packets, idle_timeout, active_timeout)
    if not len(packets):
        return pd.DataFrame({c: np.empty(0, dtype=d) for c, d in FLOW_COLUMNS.items()})
    time = packets["time"].to_numpy(np.float64)
    hi, lo = _key_words(packets, bidirectional)
    order = np.lexsort((time, lo, hi))
    t, hi, lo = time[order], hi[order], lo[order]
    new_key = np.empty(len(t), dtype=bool)
    new_key[0] = True
    np.not_equal(hi[1:], hi[:-1], out=new_key[1:])
    new_key[1:] |= lo[1:] != lo[:-1]
    starts = _flow_starts(t, new_key, float(idle_timeout), float(active_timeout))
    return _records(packets, order, t, starts)


def _check(packets: pd.DataFrame, idle_timeout: float, active_timeout: float) -> None:
    missing = [c for c in ("time", *FLOW_KEY, "pkt_len") if c not in packets.columns]
    if missing:
        raise UserError(f"flow meter needs a packet table; missing column(s) {missing}")
    if not idle_timeout > 0 or not active_timeout > 0:
        raise UserError(f"flow meter: timeouts must be positive seconds (idle {idle_timeout}, "
                        f"active {active_timeout})")


def _key_words(packets: pd.DataFrame, bidirectional: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pack the 5-tuple into two uint64 words: (srcip, dstip) and (srcport, dstport, proto).

    ICMP's ports are its type and code (schema), so a unidirectional key separates ICMP messages by type
    and code with no special case; the bidirectional key pairs requests with their replies."""
    src = packets["srcip"].to_numpy(np.uint64)
    dst = packets["dstip"].to_numpy(np.uint64)
    sport = packets["srcport"].to_numpy(np.uint64)
    dport = packets["dstport"].to_numpy(np.uint64)
    proto = packets["proto"].to_numpy(np.uint64)
    if bidirectional:
        is_icmp = icmp.is_icmp(proto)
        if is_icmp.any():  # a request and its reply are one session: key both on the pair, symmetrically
            both = icmp.bidirectional_ports(proto[is_icmp], sport[is_icmp], dport[is_icmp])
            sport, dport = sport.copy(), dport.copy()
            sport[is_icmp], dport[is_icmp] = both, both
        a, b = (src << np.uint64(16)) | sport, (dst << np.uint64(16)) | dport  # endpoints (48 bits each)
        swap = a > b
        src, dst = np.where(swap, dst, src), np.where(swap, src, dst)
        sport, dport = np.where(swap, dport, sport), np.where(swap, sport, dport)
    return pack_flow_key(src, dst, sport, dport, proto)


def _flow_starts(t: np.ndarray, new_key: np.ndarray, idle: float, active: float) -> np.ndarray:
    """Indices (into the key/time-sorted packets) where a flow record begins."""
    gap = np.empty(len(t))
    gap[0] = 0.0
    np.subtract(t[1:], t[:-1], out=gap[1:])
    new = new_key | (gap > idle)
    seg = np.flatnonzero(new)
    seg_len = np.diff(np.append(seg, len(t)))
    span = t[seg + seg_len - 1] - t[seg]
    if not (span > active).any():
        return seg
    if _active_kernel is not None:
        return np.flatnonzero(_active_kernel(t, new, active))
    return _active_numpy(t, new, active)


def _active_numpy(t: np.ndarray, new: np.ndarray, active: float) -> np.ndarray:
    """Fallback: repeatedly cut every record at its first packet past the active timeout."""
    new = new.copy()
    while True:
        seg_id = np.cumsum(new) - 1
        first_t = t[np.flatnonzero(new)][seg_id]
        over = (t - first_t) > active
        if not over.any():
            return np.flatnonzero(new)
        over_idx = np.flatnonzero(over)
        first_over = over_idx[np.r_[True, seg_id[over_idx][1:] != seg_id[over_idx][:-1]]]
        new[first_over] = True


def _active_loop(t, new, active):  # compiled by numba below: one pass, O(n)
    out = new.copy()
    first = t[0]
    for i in range(len(t)):
        if out[i]:
            first = t[i]
        elif t[i] - first > active:
            out[i] = True
            first = t[i]
    return out


_active_kernel = njit(cache=True, nogil=True)(_active_loop) if njit is not None else None


def _records(packets: pd.DataFrame, order: np.ndarray, t: np.ndarray, starts: np.ndarray) -> pd.DataFrame:
    """One row per record: key of its first packet, ts, td, packet and byte counts; sorted by ts."""
    ends = np.append(starts[1:], len(t)) - 1
    first_pkt = order[starts]
    length = packets["pkt_len"].to_numpy()[order].astype(np.uint64)
    table = {
        "ts": t[starts],
        "td": t[ends] - t[starts],
        **{c: packets[c].to_numpy()[first_pkt].astype(PACKET_COLUMNS[c]) for c in FLOW_KEY},
        "pkt": (ends - starts + 1).astype(np.uint64),
        "byt": np.add.reduceat(length, starts),
    }
    out = pd.DataFrame(table)[list(FLOW_COLUMNS)]
    out = out.sort_values(["ts", *FLOW_KEY], kind="stable", ignore_index=True)
    log.info("flow meter: %d packets -> %d flow records", len(t), len(out))
    return out


__all__ = ["meter_flows"]
