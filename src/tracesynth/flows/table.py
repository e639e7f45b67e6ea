"""FlowTable: a trace as flow samples, the shape the encoders and the model work on.

A flow is the records of one unidirectional 5-tuple. Each flow *sample* has attributes (its 5-tuple, its
start time) and a time series (inter-arrival time within the flow, then every per-record field), kept in
long format: one row per record, `flow_id` pointing into `attributes`, `step` counting from 0.

Flows longer than the cap `max_flow_len` are split into consecutive segments so that no record is lost:
a continuation segment is a flow sample of its own whose first `iat` carries the gap since the previous
record of the same 5-tuple (its `segment` attribute counts 1, 2, ...).

`FlowTable.to_records` is the exact inverse of `FlowTable.from_records` on real timestamps: times are
rebuilt by adding inter-arrivals one step at a time, and because two epoch timestamps of the same trace
lie within a factor of two of each other, every difference and every partial sum is exact in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError
from ..schema import FLOW_KEY, TIME_COLUMN, TraceKind, canonicalize, columns_for, flow_key_words, table_kind

#: Series columns that are bookkeeping, not per-record fields.
SERIES_INDEX = ("flow_id", "step", "iat")


@dataclass
class FlowTable:
    """Flow samples of one trace (or one chunk). See the module docstring for the layout."""

    kind: TraceKind
    attributes: pd.DataFrame
    series: pd.DataFrame
    #: flows (5-tuples) that the length cap split into more than one sample
    flows_split: int = 0

    @property
    def n_flows(self) -> int:
        """Number of flow samples (segments count separately)."""
        return len(self.attributes)

    @property
    def lengths(self) -> np.ndarray:
        """Records per flow sample, aligned with `attributes` (int64)."""
        counts = np.bincount(self.series["flow_id"].to_numpy(np.int64), minlength=self.n_flows)
        return counts[: self.n_flows].astype(np.int64)

    @property
    def record_fields(self) -> list[str]:
        """The per-record fields carried in `series` (everything after flow_id, step, iat)."""
        return [c for c in self.series.columns if c not in SERIES_INDEX and c != TIME_COLUMN[self.kind]]

    @classmethod
    def from_records(cls, table: pd.DataFrame, max_flow_len: int | None = None) -> "FlowTable":
        """Group a canonical packet or flow-record table into flow samples (vectorised)."""
        return _group(table, max_flow_len)

    def to_records(self) -> pd.DataFrame:
        """The canonical records, sorted by time (stable over flow_id, step)."""
        return _ungroup(self)

    def select(self, flow_ids: np.ndarray) -> "FlowTable":
        """A FlowTable with the given samples only, renumbered 0..k-1 in the given order."""
        flow_ids = np.asarray(flow_ids, dtype=np.int64)
        remap = np.full(self.n_flows, -1, dtype=np.int64)
        remap[flow_ids] = np.arange(len(flow_ids))
        attrs = self.attributes.iloc[flow_ids].reset_index(drop=True)
        attrs["flow_id"] = np.arange(len(flow_ids), dtype=np.int64)
        new_ids = remap[self.series["flow_id"].to_numpy(np.int64)]
        keep = new_ids >= 0
        series = self.series.loc[keep].copy()
        series["flow_id"] = new_ids[keep]
        series = series.sort_values(["flow_id", "step"], kind="stable").reset_index(drop=True)
        split = int((attrs["segment"] > 0).sum()) if "segment" in attrs else 0
        return FlowTable(self.kind, attrs, series, flows_split=split)



def _group(table: pd.DataFrame, max_flow_len: int | None) -> FlowTable:
    kind = table_kind(table)
    time_col = TIME_COLUMN[kind]
    try:
        table = canonicalize(table, kind)
    except KeyError as exc:
        raise UserError(f"cannot group records into flows: {exc.args[0]}") from None
    if max_flow_len is not None and max_flow_len < 1:
        raise UserError(f"max_flow_len must be >= 1, got {max_flow_len}")
    times = table[time_col].to_numpy(np.float64)
    hi, lo = flow_key_words(table)
    # records grouped by 5-tuple, in time order inside each group (both sorts are stable)
    by_time = np.argsort(times, kind="stable")
    order = by_time[np.lexsort((lo[by_time], hi[by_time]))]
    t = times[order]
    h, l = hi[order], lo[order]
    n = len(order)
    new_key = np.ones(n, dtype=bool)
    new_key[1:] = (h[1:] != h[:-1]) | (l[1:] != l[:-1])
    key_start = np.flatnonzero(new_key)
    key_id = np.cumsum(new_key) - 1
    pos = np.arange(n) - key_start[key_id]
    iat = np.zeros(n, dtype=np.float64)
    iat[1:] = t[1:] - t[:-1]
    iat[new_key] = 0.0
    segment = pos // max_flow_len if max_flow_len else np.zeros(n, dtype=np.int64)
    new_sample = new_key | (pos % max_flow_len == 0 if max_flow_len else False)
    sample_of_record = np.cumsum(new_sample) - 1
    first = np.flatnonzero(new_sample)
    # number samples by start time (ties: 5-tuple order, then segment)
    sample_order = np.argsort(t[first], kind="stable")
    rank = np.empty_like(sample_order)
    rank[sample_order] = np.arange(len(first))
    flow_id = rank[sample_of_record]
    step = (np.arange(n) - first[sample_of_record]).astype(np.int64)
    rec_order = np.lexsort((step, flow_id))
    src = order[rec_order]

    attr_rows = order[first[sample_order]]
    attributes = pd.DataFrame({c: table[c].to_numpy()[attr_rows] for c in FLOW_KEY})
    attributes["flow_start"] = t[first[sample_order]]
    attributes["segment"] = segment[first[sample_order]].astype(np.int64)
    attributes["flow_id"] = np.arange(len(first), dtype=np.int64)

    series = {"flow_id": flow_id[rec_order].astype(np.int64), "step": step[rec_order], "iat": iat[rec_order]}
    for c in table.columns:
        if c not in FLOW_KEY and c != time_col:
            series[c] = table[c].to_numpy()[src]
    split = int(np.unique(key_id[segment > 0]).size) if max_flow_len else 0
    return FlowTable(kind, attributes, pd.DataFrame(series), flows_split=split)


def _ungroup(flows: FlowTable) -> pd.DataFrame:
    kind, time_col = flows.kind, TIME_COLUMN[flows.kind]
    series = flows.series
    fid = series["flow_id"].to_numpy(np.int64)
    step = series["step"].to_numpy(np.int64)
    if len(fid) and (np.any(np.diff(fid) < 0) or np.any((np.diff(fid) == 0) & (np.diff(step) <= 0))):
        series = series.sort_values(["flow_id", "step"], kind="stable").reset_index(drop=True)
        fid = series["flow_id"].to_numpy(np.int64)
    times = _rebuild_times(flows.attributes["flow_start"].to_numpy(np.float64), fid,
                           series["iat"].to_numpy(np.float64))
    out = {time_col: times}
    attrs = flows.attributes
    for c in FLOW_KEY:
        out[c] = attrs[c].to_numpy()[fid]
    for c in series.columns:
        if c not in SERIES_INDEX:
            out[c] = series[c].to_numpy()
    table = pd.DataFrame(out)
    cols = list(columns_for(kind)) + [c for c in table.columns if c not in columns_for(kind)]
    table = canonicalize(table[cols], kind)
    order = np.argsort(times, kind="stable")
    return table.iloc[order].reset_index(drop=True)


def _rebuild_times(flow_start: np.ndarray, fid: np.ndarray, iat: np.ndarray) -> np.ndarray:
    """Absolute times: flow_start, then previous time + iat, one step at a time (exact, see module doc).

    Records must be sorted by (flow_id, step). The loop runs once per step index, over all flows at once.
    """
    n = len(fid)
    times = np.empty(n, dtype=np.float64)
    if n == 0:
        return times
    starts = np.flatnonzero(np.r_[True, fid[1:] != fid[:-1]])
    lengths = np.diff(np.r_[starts, n])
    times[starts] = flow_start[fid[starts]]
    by_len = np.argsort(-lengths, kind="stable")
    starts_sorted, lengths_sorted = starts[by_len], lengths[by_len]
    neg = -lengths_sorted
    for s in range(1, int(lengths_sorted[0])):
        active = int(np.searchsorted(neg, -s, side="left"))  # flows with length > s
        idx = starts_sorted[:active] + s
        times[idx] = times[idx - 1] + iat[idx]
    return times
