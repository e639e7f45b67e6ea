"""A whole `tracesynth benchmark` run: caida-10k, DoppelGANger with its defaults and both baselines, one
seed (the issue's budget: 30 minutes on the 2-core development machine). Prints the wall time of the
whole run, each row's cost and the headline metrics beside the floor, and writes the JSON and the
leaderboard to bench/out/.

    .venv/bin/python bench/bench_benchmark.py [--trace caida/caida-10k.pcapng] [--seeds 1] [--epochs N]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

from tracesynth.benchmark import BenchmarkSpec, benchmark_path  # noqa: E402
from tracesynth.benchmark.output import table, verdicts  # noqa: E402

HEADLINE = ("jsd.mean", "field.pkt_len", "field.ttl", "field.td", "field.byt", "pairs.tv_mean", "auc.records",
            "auc.flows", "tcp.syn_open", "privacy.closer_to_train", "privacy.mia_auc", "privacy.exact_copy",
            "cost.fit_cpu_s", "cost.fit_wall_s", "cost.peak_rss_mb", "cost.records_per_s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default="caida/caida-10k.pcapng")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--models", default="doppelganger")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    path = DATA / args.trace
    if not path.exists():
        sys.exit(f"{path} not found (../shared/data is absent)")
    out = ROOT / "bench" / "out" / f"benchmark-{path.stem}"
    spec = BenchmarkSpec(path, models=tuple(m for m in args.models.split(",") if m), seeds=args.seeds,
                         epochs=args.epochs)
    t0 = time.perf_counter()
    result, written = benchmark_path(spec, out=out)
    wall = time.perf_counter() - t0
    from rich.console import Console

    Console(width=160).print(table(result))
    for line in verdicts(result):
        print("-", line)
    print(f"\n{args.trace}, {args.seeds} seed(s), epochs {args.epochs or 'preset'}: whole benchmark {wall:.0f} s "
          f"({wall / 60:.1f} min); {written}")
    print("row            " + " ".join(f"{m:>14}" for m in HEADLINE))
    for row in result.row_names:
        print(f"{row:<14} " + " ".join(f"{result.mean(row, m):14.4g}" for m in HEADLINE))


if __name__ == "__main__":
    main()
