"""Benchmark inputs: a big classic pcap made by tiling caida-10k with shifted timestamps.

Other benchmarks import it: `sys.path.insert(0, "bench"); from _tile import make_tiled_pcap`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRACESYNTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
CAIDA_10K = SHARED_DATA / "caida" / "caida-10k.pcapng"


def tiled_table(n_packets: int = 1_000_000, source: Path = CAIDA_10K) -> pd.DataFrame:
    """caida-10k repeated until `n_packets` rows, each copy shifted to start just after the previous."""
    from tracesynth.io.pcap import read_packets

    if not source.exists():
        raise SystemExit(f"benchmark input {source} not found (../shared/data is absent)")
    base = read_packets(source).table
    reps = -(-n_packets // len(base))
    span = float(base["time"].max() - base["time"].min()) + 1e-3
    table = pd.concat([base] * reps, ignore_index=True).iloc[:n_packets].copy()
    table["time"] = table["time"].to_numpy() + np.repeat(np.arange(reps) * span, len(base))[:n_packets]
    return table


def make_tiled_pcap(out_path: str | Path, n_packets: int = 1_000_000, *, linktype: str = "raw") -> Path:
    """Write a classic pcap of `n_packets` tiled from caida-10k; returns its path."""
    from tracesynth.io.pcap_writer import write_pcap

    return write_pcap(tiled_table(n_packets), out_path, linktype=linktype)


def make_tiled_pcapng(out_path: str | Path, copies: int = 100, source: Path = CAIDA_10K) -> Path:
    """caida-10k's pcapng bytes repeated `copies` times: one section per copy (valid pcapng;
    timestamps repeat, which does not matter for read throughput)."""
    data = source.read_bytes()
    out = Path(out_path)
    with open(out, "wb") as fh:
        for _ in range(copies):
            fh.write(data)
    return out
