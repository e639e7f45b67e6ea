"""Flow-level figures for `tracesynth inspect --flows`: what chunking and the length cap will do."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import TraceSynthConfig
from ..schema import TIME_COLUMN, table_kind
from .chunking import chunk_windows
from .table import FlowTable
from .tags import ChunkMembership

PERCENTILES = (50, 90, 99, 100)


def flow_summary(table: pd.DataFrame, config: TraceSynthConfig) -> dict:
    """Flows, flows per chunk, flows spanning several chunks, length percentiles, flows the cap would split.

    Lengths are records per 5-tuple over the whole trace (before chunking and capping). Chunks: as the
    config says, or as `fit` would choose them when it leaves them unset (flows/sizing.py).
    """
    from .sizing import sized_for_inspection

    config = sized_for_inspection(table, config)
    flows = FlowTable.from_records(table)
    lengths = flows.lengths
    cap = config.flow_length.max_flow_len
    kind = table_kind(table)
    chunk_of, _ = chunk_windows(table[TIME_COLUMN[kind]].to_numpy(np.float64), config)
    membership = ChunkMembership.from_records(table, chunk_of, config.chunking.n_chunks)
    per_chunk = membership.member.sum(axis=0).astype(int).tolist()
    pct = np.percentile(lengths, PERCENTILES) if len(lengths) else np.zeros(len(PERCENTILES))
    return {
        "flows": int(flows.n_flows),
        "records": int(len(table)),
        "n_chunks": int(config.chunking.n_chunks),
        "chunking": config.chunking.mode,
        "flows_per_chunk": per_chunk,
        "flows_spanning_chunks": membership.spanning(),
        "flow_length_percentiles": {f"p{p}": float(v) for p, v in zip(PERCENTILES, pct)},
        "max_flow_len": int(cap),
        "flows_over_cap": int(np.sum(lengths > cap)),
        "extra_samples_from_split": int(np.sum(np.maximum(np.ceil(lengths / cap) - 1, 0))),
    }
