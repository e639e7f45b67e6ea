"""How small a trace can `fit` learn from? The measurement behind `flows.sizing.MIN_FLOWS`.

Slices of a real trace with N random whole flows (5-tuples, every record of each) are benchmarked with
`tracesynth benchmark`'s protocol (held-out share 0.5, so even 20 flows give 10 per side): DoppelGANger
with the preset's defaults (automatic chunks and batch size, default epochs) against the `marginals`
baseline. It prints, per N, the joint and flow-level metrics of both rows and of the real floor, and how
many of them the model wins.

    .venv/bin/python bench/bench_min_flows.py [--trace caida/caida-10k.pcapng] [--flows 40,80,160]
                                              [--seeds 2] [--epochs N]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

from tracesynth import read_trace, write_trace  # noqa: E402
from tracesynth.benchmark import BenchmarkSpec, run_benchmark  # noqa: E402
from tracesynth.schema import flow_codes  # noqa: E402

#: the metrics `marginals` cannot fake: field pairs, classifiers, flow shapes
METRICS = ("pairs.tv_mean", "auc.records", "auc.flows", "flow.records_emd", "flow.bytes_emd", "flow.duration_emd")


def flow_slice(table, n_flows: int, seed: int):
    keys, n = flow_codes(table)
    pick = np.random.default_rng(seed).choice(n, n_flows, replace=False)
    return table[np.isin(keys, pick)].reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default="caida/caida-10k.pcapng")
    ap.add_argument("--flows", default="40,80,160")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    path = DATA / args.trace
    if not path.exists():
        sys.exit(f"{path} not found (../shared/data is absent)")
    trace = read_trace(path)
    suffix = ".pcap" if trace.kind == "packets" else ".csv"
    print(f"{args.trace}: slices of N random flows, held-out 0.5, DoppelGANger defaults, {args.seeds} seed(s)")
    print("N     records  chunks metric              real     marginals  doppelganger  model wins")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.flows.split(",")):
            part = write_trace(flow_slice(trace.table, n, seed=n), Path(tmp) / f"slice-{n}{suffix}")
            t0 = time.perf_counter()
            # measured below the minimum too: training.min_flows lowered, everything else the preset's
            config = Path(tmp) / "config.yaml"
            config.write_text(f"preset: {'pcap' if trace.kind == 'packets' else 'netflow'}\ntraining: {{min_flows: 1}}\n")
            result = run_benchmark(BenchmarkSpec(Path(part), holdout=0.5, seeds=args.seeds, epochs=args.epochs,
                                                 config=config))
            wins = 0
            for metric in METRICS:
                real, marg, model = (result.mean(r, metric) for r in ("real", "marginals", "doppelganger"))
                win = model < marg
                wins += win
                print(f"{n:<5} {result.seeds[0].sizes['train_records']:>7}        {metric:<18} {real:8.3f} "
                      f"{marg:10.3f} {model:12.3f}  {'yes' if win else 'no'}")
            print(f"{n:<5} -> model beats marginals on {wins} of {len(METRICS)} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
