"""Evaluation speed on 1M-packet tables: `evaluate_tables` with and without the downstream tasks.

REAL is caida-10k tiled 100x with shifted timestamps and shifted source addresses (so tiles are new hosts
and flows, as in a longer capture); SYNTH is a perturbed copy (jittered sizes and TTLs, a tenth of the
destination ports redrawn, times stretched). Prints seconds per stage and the limits from issue 5
(60 s without downstream tasks, 300 s with them). Run: .venv/bin/python bench/bench_evaluate.py [--rows N]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tracesynth.evaluate import evaluate_tables
from tracesynth.evaluate.report import write_report
from tracesynth.io import read_trace

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAIDA = DATA / "caida" / "caida-10k.pcapng"
NDPI_FLOWS = DATA / "flows" / "ndpi-flows.csv"  # labelled flow records (application type)


def tiled(table: pd.DataFrame, rows: int, time_col: str = "time") -> pd.DataFrame:
    """Repeat `table` until it has `rows` records, each tile later in time and with new source hosts."""
    reps = -(-rows // len(table))
    span = float(table[time_col].max() - table[time_col].min()) + 1e-3
    parts = []
    for i in range(reps):
        t = table.copy()
        t[time_col] = t[time_col] + i * span
        t["srcip"] = (t["srcip"].to_numpy(np.uint64) + np.uint64(i * 7919)).astype(np.uint32)
        parts.append(t)
    return pd.concat(parts, ignore_index=True).iloc[:rows]


def perturbed(table: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = table.copy()
    out["pkt_len"] = np.clip(out.pkt_len.astype(np.int64) + rng.integers(-20, 21, len(out)), 40, 1500).astype(np.uint16)
    out["ttl"] = np.clip(out.ttl.astype(np.int64) + rng.integers(-2, 3, len(out)), 1, 255).astype(np.uint8)
    pick = rng.random(len(out)) < 0.1
    out.loc[pick, "dstport"] = rng.integers(1024, 65536, int(pick.sum())).astype(np.uint16)
    out["time"] = out.time.min() + (out.time - out.time.min()) * 1.05
    return out


def bench_flows(rows: int) -> None:
    """Labelled flow records: the traffic-type task (5 classifiers x 2 sides) dominates here."""
    real = tiled(read_trace(NDPI_FLOWS).table, rows, "ts")
    rng = np.random.default_rng(2)
    synth = real.copy()
    synth["byt"] = (synth.byt.to_numpy(np.float64) * rng.uniform(0.8, 1.2, len(synth))).astype(np.uint64)
    t0 = time.perf_counter()
    result = evaluate_tables(real, synth, downstream=True)
    tt = result["downstream"]["traffic_type"]
    print(f"flow records, downstream=True: {time.perf_counter() - t0:.1f} s for {len(real):,} labelled records "
          f"(limit 300 s); traffic-type Spearman {tt['spearman']:.2f}, {tt['classes']} classes")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    if not CAIDA.exists():
        print(f"skip: {CAIDA} not found")
        return
    base = read_trace(CAIDA).table
    real = tiled(base, args.rows)
    synth = perturbed(real)
    print(f"tables: {len(real):,} real and {len(synth):,} synthetic packets")
    for downstream, limit in ((False, 60.0), (True, 300.0)):
        stages: dict[str, float] = {}
        last = [time.perf_counter(), None]

        def progress(ev, stages=stages, last=last):
            now = time.perf_counter()
            if last[1] is not None:
                stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
            last[0], last[1] = now, ev.info.get("step")

        t0 = time.perf_counter()
        result = evaluate_tables(real, synth, downstream=downstream, progress=progress)
        total = time.perf_counter() - t0
        detail = ", ".join(f"{k} {v:.1f}s" for k, v in stages.items())
        print(f"downstream={downstream}: {total:.1f} s (limit {limit:.0f} s, ratio {total / limit:.2f}); {detail}")
        s = result["summary"]
        print(f"  avg JSD {s['avg_jsd']:.4f}, avg scaled EMD {s['avg_emd_scaled']:.4f}, "
              f"records AUC {s['records_auc']:.3f}, flows AUC {s['flows_auc']:.3f}, NN ratio {s['nn_distance_ratio']:.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = write_report(real, synth, result, Path(tmp) / "report.html")
        print(f"report (plots + HTML, evaluation reused): {time.perf_counter() - t0:.1f} s, "
              f"{out.stat().st_size / 1e6:.2f} MB")
    if NDPI_FLOWS.exists():
        bench_flows(args.rows)


if __name__ == "__main__":
    main()
