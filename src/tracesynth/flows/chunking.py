"""Cut a trace into time chunks (NetShare idea 3) and turn each chunk into tagged, capped flow samples.

`fixed_time`: N equal windows between the first and last timestamp (or the configured public window);
the last window includes its end, so the last record is never lost (NetShare bumps the end by a relative
epsilon on an absolute epoch time, which is a bug). `fixed_size`: N windows holding equal record counts.
Windows without records give chunks with empty tables, so chunk numbers always mean the same windows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import TraceSynthConfig
from ..errors import ConfigError
from ..schema import TIME_COLUMN, table_kind
from .table import FlowTable
from .tags import ChunkMembership, tag_columns

log = logging.getLogger(__name__)


@dataclass
class Chunk:
    """One time window of the trace: its records and its flow samples (tags set, length-capped)."""

    index: int
    window: tuple[float, float]
    records: pd.DataFrame
    flows: FlowTable

    @property
    def flows_split(self) -> int:
        """Flows (5-tuples) of this chunk that the length cap split into several samples."""
        return self.flows.flows_split


def chunk_windows(times: np.ndarray, config: TraceSynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """(chunk number of every record, window edges [N+1]) for `times` under `config.chunking`."""
    n_chunks = config.chunking.n_chunks
    times = np.asarray(times, dtype=np.float64)
    if config.chunking.mode == "fixed_size":
        return _fixed_size(times, n_chunks)
    if config.time.window is not None:
        lo, hi = config.time.window
        outside = (times < lo) | (times > hi)
        if outside.any():
            raise ConfigError(f"time.window: {int(outside.sum())} record(s) fall outside the configured window "
                              f"[{lo}, {hi}] (first at t={float(times[outside][0])!r}); widen time.window or remove it")
    elif len(times):
        lo, hi = float(times.min()), float(times.max())
    else:
        lo = hi = 0.0
    edges = np.linspace(lo, hi, n_chunks + 1)
    edges[-1] = hi
    if hi > lo:
        chunk = np.searchsorted(edges, times, side="right") - 1
    else:
        chunk = np.zeros(len(times), dtype=np.int64)
    return np.clip(chunk, 0, n_chunks - 1).astype(np.int64), edges


def _fixed_size(times: np.ndarray, n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(times)
    order = np.argsort(times, kind="stable")
    chunk = np.empty(n, dtype=np.int64)
    chunk[order] = (np.arange(n) * n_chunks) // max(n, 1)
    sorted_t = np.append(times[order], times.max() if n else 0.0)  # sentinel: the end of the trace
    first = np.searchsorted(chunk[order], np.arange(n_chunks), side="left")
    edges = np.append(sorted_t[first], sorted_t[-1])
    return chunk, edges


def split_chunks(table: pd.DataFrame, config: TraceSynthConfig) -> list[Chunk]:
    """Chunks of `table` per `config` (chunking, time window, flow-length cap), each with tagged flows."""
    kind = table_kind(table)
    if kind != config.kind:
        raise ConfigError(f"kind: the config is for {config.kind} but the trace holds {kind}; "
                          f"use the {'pcap' if kind == 'packets' else 'netflow'} preset")
    times = table[TIME_COLUMN[kind]].to_numpy(np.float64)
    chunk_of, edges = chunk_windows(times, config)
    n_chunks = config.chunking.n_chunks
    membership = ChunkMembership.from_records(table, chunk_of, n_chunks)
    order = np.argsort(chunk_of, kind="stable")
    bounds = np.searchsorted(chunk_of[order], np.arange(n_chunks + 1), side="left")
    chunks = []
    for i in range(n_chunks):
        rows = np.sort(order[bounds[i]:bounds[i + 1]])
        records = table.iloc[rows].reset_index(drop=True)
        flows = FlowTable.from_records(records, config.flow_length.max_flow_len)
        flows.attributes = pd.concat([flows.attributes, membership.tags_for(flows.attributes, i)], axis=1)
        chunks.append(Chunk(i, (float(edges[i]), float(edges[i + 1])), records, flows))
    split = sum(c.flows_split for c in chunks)
    if split and config.privacy is None:  # in DP mode a count of private flows is not reported
        log.info("flow-length cap %d split %d flow(s) into several samples", config.flow_length.max_flow_len, split)
    return chunks


def chunk_report(chunks: list[Chunk]) -> dict:
    """Figures about a chunking: flows and records per chunk, and how many flows the cap split."""
    return {
        "n_chunks": len(chunks),
        "records_per_chunk": [len(c.records) for c in chunks],
        "flow_samples_per_chunk": [c.flows.n_flows for c in chunks],
        "flows_split": int(sum(c.flows_split for c in chunks)),
        "windows": [list(c.window) for c in chunks],
    }


__all__ = ["Chunk", "chunk_windows", "split_chunks", "chunk_report", "tag_columns"]
