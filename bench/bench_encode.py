"""Flows and encoders on the 1M-packet tiled CAIDA trace: grouping, chunking, encoding; word2vec apart.

Prints seconds per stage, packets/s, peak RSS and the ratio to the issue's targets (15 s, 2 GB).
Run: .venv/bin/python bench/bench_encode.py [N_PACKETS]
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tile import tiled_table  # noqa: E402

from tracesynth.config import preset  # noqa: E402
from tracesynth.encoders.flow_encoder import FlowEncoder  # noqa: E402
from tracesynth.flows.chunking import split_chunks  # noqa: E402
from tracesynth.flows.table import FlowTable  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(n_packets: int = 1_000_000) -> None:
    table = tiled_table(n_packets)
    cfg = preset("pcap")
    base_mb = peak_mb()
    print(f"input: {len(table):,} packets (caida-10k tiled), peak RSS after loading {base_mb:.0f} MB")

    t0 = time.perf_counter()
    flows = FlowTable.from_records(table, cfg.flow_length.max_flow_len)
    t_group = time.perf_counter() - t0
    back = flows.to_records()
    t_inverse = time.perf_counter() - t0 - t_group
    del back
    t0 = time.perf_counter()
    chunks = split_chunks(table, cfg)
    t_chunk = time.perf_counter() - t0
    t0 = time.perf_counter()
    enc = FlowEncoder(cfg).fit(chunks)
    t_fit = time.perf_counter() - t0
    t_w2v = enc.embedding_fit_seconds_
    t0 = time.perf_counter()
    shape_sum = 0
    for c in chunks:  # one chunk at a time, as the pipeline does
        encoded = enc.transform(c.flows, c.window)
        shape_sum += encoded.features.nbytes
        del encoded
    t_encode = time.perf_counter() - t0
    samples = sum(c.flows.n_flows for c in chunks)
    total = t_group + t_chunk + (t_fit - t_w2v) + t_encode
    print(f"group into flows (whole trace, cap {cfg.flow_length.max_flow_len}): {t_group:6.2f} s "
          f"({len(table) / t_group / 1e6:.2f} M pkt/s), {flows.n_flows:,} samples, {flows.flows_split:,} flows split")
    print(f"flows -> records (inverse):          {t_inverse:6.2f} s")
    print(f"split_chunks ({cfg.chunking.n_chunks} chunks, tags, cap):   {t_chunk:6.2f} s, {samples:,} samples")
    print(f"encoder fit without word2vec:        {t_fit - t_w2v:6.2f} s")
    print(f"word2vec training (reported apart):  {t_w2v:6.2f} s")
    print(f"transform all chunks:                {t_encode:6.2f} s ({shape_sum / 2**20:.0f} MB of features)")
    print(f"grouping + chunking + encoding:      {total:6.2f} s  (target 15 s: {total / 15:.2f}x of budget)")
    print(f"  ... with word2vec training:        {total + t_w2v:6.2f} s")
    print(f"peak RSS: {peak_mb():.0f} MB  (target 2048 MB: {peak_mb() / 2048:.2f}x of budget)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
