"""Scale benchmark of the autoregressive model: 1,000,000 packets of distinct flows fitted end to end.

caida-10k is tiled 100 times, each copy shifted in time (after the previous one) and in address space
(every copy's addresses moved by a different offset, so no 5-tuple repeats: about 315k flow samples), and
written as a pcap. `tracesynth fit --model ar` then `tracesynth generate --count N` run as child
processes; the benchmark prints each stage's wall time, CPU seconds and peak memory (the issue's targets:
fit <= 30 min and <= 4 GB on the 2-core machine).

    .venv/bin/python bench/bench_ar_scale.py [--packets 1000000] [--count 1000000] [--max-epochs N] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tile import tiled_table  # noqa: E402

#: per-copy address offset: odd and large, so shifted copies never land on another copy's addresses
ADDRESS_STEP = 0x01000193


def distinct_tiled(n_packets: int):
    """caida-10k tiled to `n_packets`, copy k's srcip/dstip moved by k * ADDRESS_STEP (mod 2^32)."""
    from tracesynth.schema import flow_codes

    table = tiled_table(n_packets)
    copy = np.arange(len(table)) // 10_000
    shift = (copy.astype(np.uint64) * np.uint64(ADDRESS_STEP)) & np.uint64(0xFFFFFFFF)
    for col in ("srcip", "dstip"):
        table[col] = ((table[col].to_numpy(np.uint64) + shift) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    _, flows = flow_codes(table)
    return table, flows


def timed(cmd: list[str]) -> dict:
    """Run `cmd`; its wall time, CPU seconds and peak RSS (the child's, from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(cmd)} failed with status {status}")
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--count", type=int, default=None, help="records to generate (default: --packets)")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep the trace, run and output in")
    args = ap.parse_args()
    from tracesynth.io.pcap_writer import write_pcap

    work = args.keep or Path(tempfile.mkdtemp(prefix="ar-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    table, flows = distinct_tiled(args.packets)
    trace = write_pcap(table, work / "tiled.pcap")
    print(f"input: {len(table):,} packets, {flows:,} distinct 5-tuples -> {trace}")
    exe = str(Path(sys.executable).with_name("tracesynth"))
    fit = [exe, "fit", str(trace), "--out", str(work / "run"), "--model", "ar", "--force"]
    if args.max_epochs:
        fit += ["--epochs", str(args.max_epochs)]
    f = timed(fit)
    print(f"fit: {f['wall_s'] / 60:.1f} min wall, {f['cpu_s']:.0f} CPU-s, peak {f['peak_mb'] / 1024:.2f} GB")
    count = args.count or args.packets
    g = timed([exe, "generate", str(work / "run"), "--out", str(work / "synthetic.parquet"), "--count", str(count)])
    print(f"generate {count:,} packets: {g['wall_s']:.0f} s wall ({count / g['wall_s']:,.0f} packets/s), "
          f"{g['cpu_s']:.0f} CPU-s, peak {g['peak_mb'] / 1024:.2f} GB")
    print(f"total: {(f['wall_s'] + g['wall_s']) / 60:.1f} min; files in {work}")


if __name__ == "__main__":
    main()
