"""Pipeline benchmark on caida-10k: seconds per epoch, flows/s trained, generated packets/s, peak memory,
and the wall-time speed-up of 2 workers over 1 on a 4-chunk run (every chunk a few epochs).

    .venv/bin/python bench/bench_pipeline.py [--epochs N] [--worker-epochs N] [--count N] [--quality MINUTES]
    .venv/bin/python bench/bench_pipeline.py --run RUN_DIR [--count N] [--threads 1,0] [--dtypes float32,bfloat16]
                                             [--repeat R]
        # generation only: per thread count (0 = all cores), each generation precision in turn, R timed
        # runs each (best and median printed)

With `--quality M` it also fits the default preset on caida-10k and ugr16-1k with an epoch budget of
about M CPU minutes each and prints NetShare's JSDs (SA, DA, SP, DP, PR) of a same-size sample.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

from tracesynth import read_trace  # noqa: E402
from tracesynth.config import config_from_dict, preset  # noqa: E402
from tracesynth.pipeline.runners import LocalRunner  # noqa: E402
from tracesynth.pipeline.synthesizer import Synthesizer  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config(name: str, **over):
    d = preset(name).model_dump(mode="json")
    for section, values in over.items():
        d[section].update(values)
    return config_from_dict(d)


def fit(table, cfg, runner=None):
    t0 = time.perf_counter()
    synth = Synthesizer(cfg).fit(table, run_dir=tempfile.mkdtemp(prefix="bench-pipeline-"), runner=runner)
    return synth, time.perf_counter() - t0


def speed(table, epochs: int) -> str:
    cfg = config("pcap", chunking={"n_chunks": 1}, training={"epochs": epochs, "batch_size": 100})
    synth, wall = fit(table, cfg)
    chunk = synth.manifest["chunks"][0]
    per_epoch = chunk["train_s"] / epochs
    print(f"chunk 0 (pcap preset, 1 chunk, {chunk['flows']} flow samples, batch 100): "
          f"{per_epoch:.2f} s/epoch, {chunk['flows'] / per_epoch:.0f} flows/s trained, fit wall {wall:.1f} s")
    synth.save(synth.run.path)
    return str(synth.run.path)


def generation(run: str, n: int = 100_000, threads: int = 1, dtype: str = "", repeat: int = 1) -> None:
    """Generate in a child process so its peak RSS is the generation's alone (not the fit's).

    `threads`: torch threads while generating (TRACESYNTH_GENERATE_THREADS); 0 = every core (the default
    of `tracesynth generate` from 4 cores up). The output for a seed depends on the thread count, not
    its statistics."""
    import os
    import subprocess

    env = dict(os.environ, TRACESYNTH_GENERATE_THREADS=str(threads or os.cpu_count() or 1))
    if dtype:                                   # the attribute MLP's precision (TRACESYNTH_GENERATE_DTYPE)
        env["TRACESYNTH_GENERATE_DTYPE"] = dtype
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, __file__, "--generate-only", run, "--count", str(n), "--repeat", str(repeat)],
                         check=True, capture_output=True, text=True, env=env).stdout.strip()
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(out + f", {env['TRACESYNTH_GENERATE_THREADS']} thread(s), "
          f"{env.get('TRACESYNTH_GENERATE_DTYPE', 'auto')}"
          + (f", peak RSS of the generating process {child / 1024:.0f} MB" if child > before else ""))


def generate_only(run: str, n: int, repeat: int = 1) -> None:
    """Load once, warm up, then time `repeat` generations of n packets (seeds 1..repeat): every run's
    figure, then the best and the median, since a shared VM's neighbours move single runs by +-15%."""
    import statistics

    loaded = Synthesizer.load(run)
    loaded.sample(count=1000, seed=0)                       # warm-up (imports, first batches)
    rates = []
    for seed in range(1, repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        out = loaded.sample(count=n, seed=seed)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rates.append(len(out) / dt)
        print(f"  run {seed}: {len(out)} packets in {dt:.2f} s = {len(out) / dt:,.0f} packets/s; "
              f"{cpu:.2f} CPU s = {len(out) / cpu:,.0f} packets per CPU second")
    print(f"generation: {n} packets, best {max(rates):,.0f} packets/s, median {statistics.median(rates):,.0f} "
          f"packets/s over {repeat} run(s) (target >= 100,000)")


def workers(table, epochs: int) -> None:
    """4 chunks, every chunk trained `epochs` epochs (finetune_fraction 1): the 3 fine-tunes run in this
    process (1 worker) or in 2 spawned worker processes (1 torch thread each). Fit wall times compared."""
    cfg = config("pcap", chunking={"n_chunks": 4}, training={"epochs": epochs, "batch_size": 100,
                                                             "finetune_fraction": 1.0,
                                                             "checkpoint_every": epochs})
    walls = {}
    for n in (1, 2):
        t0 = time.perf_counter()
        synth, _ = fit(table, cfg, LocalRunner(n))
        m = synth.manifest
        train0 = m["chunks"][0]["train_s"]
        walls[n] = time.perf_counter() - t0
        print(f"  {n} worker(s): fit {walls[n]:.1f} s (chunk 0 {train0:.1f} s, fine-tunes "
              f"{sum(c['train_s'] for c in m['chunks'][1:]):.1f} s of training)")
    print(f"4 chunks x {epochs} epochs: 1 worker {walls[1]:.1f} s, 2 workers {walls[2]:.1f} s, "
          f"speed-up {walls[1] / walls[2]:.2f}x (fit wall time)")


def quality(minutes: float) -> None:
    from tracesynth.evaluate.fidelity import netshare_jsd

    for name, path, kind in (("caida-10k", DATA / "caida/caida-10k.pcapng", "pcap"),
                             ("ugr16-1k", DATA / "ugr16/ugr16-1k.csv", "netflow")):
        table = read_trace(path).table
        probe = config(kind, training={"epochs": 1})
        _, one = fit(table, probe)
        epochs = max(2, int(minutes * 60 / max(one, 1e-3)))
        cfg = config(kind, training={"epochs": epochs, "checkpoint_every": max(1, epochs // 4)})
        synth, wall = fit(table, cfg)
        synth.save(synth.run.path)
        out = Synthesizer.load(synth.run.path).sample(seed=0)
        jsd = netshare_jsd(table, out)
        mean = sum(jsd.values()) / len(jsd)
        print(f"{name}: {epochs} epochs, fit {wall:.0f} s, " + ", ".join(f"{k} {v:.3f}" for k, v in jsd.items())
              + f", mean JSD {mean:.3f}, peak {peak_mb():.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--worker-epochs", type=int, default=4, help="epochs per chunk of the 4-chunk run")
    ap.add_argument("--quality", type=float, default=0.0)
    ap.add_argument("--generate-only", metavar="RUN", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="generations timed per setting (best and median printed)")
    ap.add_argument("--threads", default="1,0", help="with --run: torch thread counts to try (0 = every core)")
    ap.add_argument("--dtypes", default="float32,bfloat16",
                    help="with --run: attribute-MLP precisions (TRACESYNTH_GENERATE_DTYPE), alternated in this session")
    ap.add_argument("--run", help="only benchmark generation from this fitted run folder (e.g. a 10-chunk caida "
                                  "run), at --count packets with 1 thread and with every core")
    args = ap.parse_args()
    if args.generate_only:
        generate_only(args.generate_only, args.count, args.repeat)
        return 0
    if args.run:
        for threads in (int(t) for t in args.threads.split(",")):
            for dtype in args.dtypes.split(","):
                generation(args.run, args.count, threads, dtype, args.repeat)
        return 0
    path = DATA / "caida/caida-10k.pcapng"
    if not path.exists():
        print(f"skipped: {path} not found")
        return 0
    table = read_trace(path).table
    run = speed(table, args.epochs)
    generation(run, args.count)
    workers(table, args.worker_epochs)
    if args.quality:
        quality(args.quality)
    print(f"peak memory: {peak_mb():.0f} MB (this process; workers not included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
