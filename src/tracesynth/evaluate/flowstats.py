"""Group a canonical table by 5-tuple and summarise each flow, vectorised (no Python loop per flow).

Works on both kinds of table: for packets a record is one packet of `pkt_len` bytes; for flow records a
record carries `pkt` packets and `byt` bytes and lasts `td` seconds. Several flow records can share a
5-tuple (a long flow exported in pieces); they form one flow here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import FLOW_KEY, flow_codes, table_kind  # noqa: F401 (flow_codes re-exported)


@dataclass
class FlowView:
    """Records sorted by (flow, time) with per-record flow id, time, bytes, packets and end time."""

    flow: np.ndarray      # int64 flow id per record, sorted ascending
    time: np.ndarray      # float64 record time (packet time or flow-record start)
    end: np.ndarray       # float64 record end (== time for packets, ts + td for flow records)
    size: np.ndarray      # float64 bytes per record
    packets: np.ndarray   # float64 packets per record
    first_row: np.ndarray  # int64 original row of each flow's first record (for the 5-tuple)
    n_flows: int

    @property
    def starts(self) -> np.ndarray:
        """Index of the first sorted record of each flow."""
        return np.searchsorted(self.flow, np.arange(self.n_flows))

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.flow, minlength=self.n_flows)


def flow_view(table: pd.DataFrame) -> FlowView:
    """Sort the records of `table` by flow then time (stable) and keep what flow statistics need."""
    codes, n = flow_codes(table)
    if table_kind(table) == "packets":
        time = table["time"].to_numpy(np.float64)
        end, size, packets = time, table["pkt_len"].to_numpy(np.float64), np.ones(len(table))
    else:
        time = table["ts"].to_numpy(np.float64)
        end = time + table["td"].to_numpy(np.float64)
        size, packets = table["byt"].to_numpy(np.float64), table["pkt"].to_numpy(np.float64)
    order = np.lexsort((time, codes))
    first_row = np.full(n, -1, dtype=np.int64)
    sorted_codes = codes[order]
    is_first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]] if len(order) else np.zeros(0, bool)
    first_row[sorted_codes[is_first]] = order[is_first]
    return FlowView(sorted_codes, time[order], end[order], size[order], packets[order], first_row, n)


def within_flow_gaps(view: FlowView) -> np.ndarray:
    """Inter-arrival times between consecutive records of the same flow (first record of a flow has none)."""
    if len(view.flow) < 2:
        return np.zeros(0)
    same = view.flow[1:] == view.flow[:-1]
    return np.diff(view.time)[same]


def flow_summary(table: pd.DataFrame, view: FlowView | None = None) -> pd.DataFrame:
    """One row per 5-tuple flow: key fields, records, packets, bytes, start, duration, mean gap."""
    view = view or flow_view(table)
    n = view.n_flows
    records = view.counts.astype(np.float64)
    packets = np.bincount(view.flow, weights=view.packets, minlength=n)
    size = np.bincount(view.flow, weights=view.size, minlength=n)
    if n:
        starts = view.starts
        start = view.time[starts]  # records are time-sorted within each flow
        duration = np.maximum.reduceat(view.end, starts) - start
    else:
        start = duration = np.zeros(0)
    mean_gap = np.divide(duration, records - 1, out=np.zeros(n), where=records > 1)
    key = table.iloc[view.first_row][list(FLOW_KEY)].reset_index(drop=True) if n else \
        table[list(FLOW_KEY)].iloc[:0].reset_index(drop=True)
    out = key.assign(records=records, packets=packets, bytes=size, start=start, duration=duration,
                     mean_gap=mean_gap)
    return out
