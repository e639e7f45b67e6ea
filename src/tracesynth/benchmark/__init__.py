"""`tracesynth benchmark`: an honest yardstick for generators (see protocol.py for the protocol).

    from tracesynth.benchmark import BenchmarkSpec, run_benchmark
    result = run_benchmark(BenchmarkSpec(Path("trace.pcap"), models=("doppelganger",), seeds=3))
    result.mean("doppelganger", "auc.records"), result.mean("real", "auc.records")

`benchmark_path` is the path-in/path-out form the CLI calls: it runs the protocol and writes the JSON and
the HTML leaderboard.
"""
from __future__ import annotations

from pathlib import Path

from ..progress import ProgressCallback
from .protocol import FLOOR, BenchmarkResult, BenchmarkSpec, run_benchmark
from .rows import BASELINES, MODELS


def benchmark_path(spec: BenchmarkSpec, *, out: str | Path | None = None, json_out: str | Path | None = None,
                   progress: ProgressCallback | None = None) -> tuple[BenchmarkResult, dict[str, str]]:
    """Run the benchmark; write `out/benchmark.json` and `out/leaderboard.html` (and/or `json_out`).

    Output locations are checked before the (long) run, so a bad path fails at once."""
    from ..errors import UserError
    from .output import write_html, write_json

    for what, path in (("--out", out), ("--json", json_out)):
        if path is None:
            continue
        p = Path(path)
        if what == "--out" and p.exists() and not p.is_dir():
            raise UserError(f"--out {p}: is a file; give a folder for the leaderboard and JSON")
        if what == "--json" and p.is_dir():
            raise UserError(f"--json {p}: is a folder; give a file name such as {p / 'benchmark.json'}")
        parent = p if what == "--out" else p.parent
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{what} {p}: {parent} is a file, not a folder")
    result = run_benchmark(spec, progress)
    written: dict[str, str] = {}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        written["json"] = str(write_json(result, Path(out) / "benchmark.json"))
        written["html"] = str(write_html(result, Path(out) / "leaderboard.html"))
    if json_out is not None:
        written["json"] = str(write_json(result, json_out))
    return result, written


__all__ = ["BASELINES", "FLOOR", "MODELS", "BenchmarkResult", "BenchmarkSpec", "benchmark_path", "run_benchmark"]
