"""Flow meter throughput over 1M packets tiled from caida-10k (target: under 3 s on 2 cores).

Prints seconds and packets/s for: the default timeouts (3,149 long flows), short timeouts that cut
~440k records (active-timeout kernel busy), distinct keys per copy (~315k flows), the numpy fallback of
the active-timeout rule, a pandas groupby reference, and the whole `tracesynth flows` path (pcap in, CSV out).
Run: .venv/bin/python bench/bench_flowmeter.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tile import make_tiled_pcap, tiled_table  # noqa: E402

from tracesynth.api import meter_flows_file  # noqa: E402
from tracesynth.io import flowmeter  # noqa: E402
from tracesynth.io.flowmeter import meter_flows  # noqa: E402

N = 1_000_000


def timed(label: str, fn, repeat: int = 3) -> float:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    extra = f"{len(result):>9,} flows" if hasattr(result, "__len__") else ""
    print(f"{label:<52} {best:7.3f} s  {N / best / 1e6:6.2f} M pkt/s  {extra}")
    return best


def pandas_reference(packets: pd.DataFrame, idle: float) -> pd.DataFrame:
    """Idle timeout only, the straightforward pandas way (sort, groupby diff, cumsum, groupby agg)."""
    key = ["srcip", "dstip", "srcport", "dstport", "proto"]
    p = packets.sort_values([*key, "time"])
    gap = p.groupby(key, sort=False)["time"].diff()
    p = p.assign(seg=(gap.isna() | (gap > idle)).cumsum())
    return p.groupby("seg").agg(ts=("time", "min"), te=("time", "max"), pkt=("time", "size"), byt=("pkt_len", "sum"))


def main() -> None:
    packets = tiled_table(N)
    copy = np.arange(N) // 10_000
    distinct = packets.assign(srcip=packets["srcip"].to_numpy() ^ copy.astype(np.uint32))
    shuffled = packets.sample(frac=1.0, random_state=0)
    meter_flows(packets.head(1000), 1e-3, 1e-3)  # numba compile (cached on disk after the first run)
    print(f"flow meter over {N:,} tiled caida-10k packets (best of 3)")
    t_default = timed("default timeouts (120 s / 1800 s)", lambda: meter_flows(packets))
    timed("short timeouts (1 ms / 10 ms): active kernel busy", lambda: meter_flows(packets, 1e-3, 1e-2))
    timed("distinct keys per copy (~315k flows)", lambda: meter_flows(distinct))
    timed("input in random order", lambda: meter_flows(shuffled))
    timed("bidirectional keys", lambda: meter_flows(packets, bidirectional=True))
    kernel = flowmeter._active_kernel
    flowmeter._active_kernel = None
    try:
        t_numpy = timed("short timeouts, numpy fallback (no numba)", lambda: meter_flows(packets, 1e-3, 1e-2), 1)
    finally:
        flowmeter._active_kernel = kernel
    t_numba = timed("short timeouts, numba kernel", lambda: meter_flows(packets, 1e-3, 1e-2), 1)
    t_pandas = timed("pandas groupby reference (idle rule only)", lambda: pandas_reference(packets, 120.0), 1)
    print(f"ratio pandas reference / tracesynth (default timeouts): {t_pandas / t_default:5.1f}x")
    print(f"ratio numpy fallback / numba kernel (short timeouts):   {t_numpy / t_numba:5.1f}x")
    with tempfile.TemporaryDirectory() as tmp:
        pcap = make_tiled_pcap(Path(tmp) / "tiled.pcap", N)
        start = time.perf_counter()
        result = meter_flows_file(pcap, Path(tmp) / "flows.csv")
        took = time.perf_counter() - start
        print(f"{'tracesynth flows: read pcap + meter + write CSV':<52} {took:7.3f} s  "
              f"{N / took / 1e6:6.2f} M pkt/s  {result['flows']:>9,} flows")
    print(f"target under 3 s for the meter: {'met' if t_default < 3 else 'MISSED'} ({t_default:.3f} s)")


if __name__ == "__main__":
    main()
