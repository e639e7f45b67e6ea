"""TCP consistency of a packet trace: do flows open, talk and close the way TCP does?

Per TCP flow (5-tuple, proto 6, packets in time order): does its first packet carry SYN, does its last carry
FIN or RST, and which (flags, next flags) bigrams occur inside it. A generator that draws flags per packet
without regard to their order keeps the flag marginal but loses these. The shares are compared with the
held-out trace's own (a backbone capture sees many flows mid-way, so the real share of SYN-opened flows can
be far below 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import metrics as m
from .flowstats import flow_codes

SYN, FIN, RST = 0x02, 0x01, 0x04
TCP = 6


@dataclass(frozen=True)
class TcpFlows:
    """TCP packets sorted by (flow, time): flow id and flags per packet, first/last packet per flow."""

    flow: np.ndarray
    flags: np.ndarray
    first: np.ndarray  # bool: first packet of its flow
    last: np.ndarray   # bool: last packet of its flow


def tcp_flows(table: pd.DataFrame) -> TcpFlows:
    """Group the TCP packets of a packet table by flow, in time order (vectorised)."""
    tcp = table[table["proto"].to_numpy() == TCP]
    codes, _ = flow_codes(tcp)
    order = np.lexsort((tcp["time"].to_numpy(np.float64), codes))
    flow, flags = codes[order], tcp["tcp_flags"].to_numpy(np.int64)[order]
    change = flow[1:] != flow[:-1]
    first = np.r_[True, change] if len(flow) else np.zeros(0, bool)
    last = np.r_[change, True] if len(flow) else np.zeros(0, bool)
    return TcpFlows(flow, flags, first, last)


def syn_open_share(t: TcpFlows) -> float:
    """Share of TCP flows whose first packet has SYN set (NaN without TCP flows)."""
    return float(np.mean(t.flags[t.first] & SYN > 0)) if t.first.any() else float("nan")


def fin_rst_close_share(t: TcpFlows) -> float:
    """Share of TCP flows whose last packet has FIN or RST set (NaN without TCP flows)."""
    return float(np.mean(t.flags[t.last] & (FIN | RST) > 0)) if t.last.any() else float("nan")


def flag_bigrams(t: TcpFlows) -> np.ndarray:
    """Code prev_flags * 256 + next_flags of every consecutive packet pair inside a TCP flow."""
    inside = ~t.first[1:]
    return (t.flags[:-1] * 256 + t.flags[1:])[inside]


def bigram_jsd(reference: TcpFlows, candidate: TcpFlows) -> float:
    """JSD of the in-flow flag bigram distributions (0 = same; NaN when one side has no bigram)."""
    a, b = flag_bigrams(reference), flag_bigrams(candidate)
    if a.size == 0:
        return float("nan")
    if b.size == 0:
        return m.JSD_MAX
    return m.categorical_jsd(a, b)
