"""The benchmark protocol: split a trace's flows into train and held-out, produce every row's table from
the train part only, and score each against the held-out part.

Rows, in order: `real` (the train part itself: the floor a perfect non-copying generator reaches), the
baselines `marginals` (every column drawn independently from train) and `copy` (train resampled with
replacement), each model asked for (fitted on train in a process of its own, `rows.py`), and each
`--score NAME=FILE` (another tool's output, trained on the split that `--write-split` wrote).
`--seeds N` repeats split + fit + score with seeds 0..N-1.
"""
from __future__ import annotations

import logging
import platform
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .._parallel import available_cores
from ..errors import UserError
from ..progress import ProgressCallback, emit
from ..schema import TraceKind
from .rows import BASELINES, COST_METRICS, MODELS, Cost, ModelJob, baseline_table, run_model

log = logging.getLogger(__name__)

FLOOR = "real"


@dataclass(frozen=True)
class BenchmarkSpec:
    """What to benchmark. `models`: names from `rows.MODELS`; `scores`: (name, synthetic file) pairs."""

    trace: Path
    models: tuple[str, ...] = ("doppelganger",)
    holdout: float = 0.2
    seeds: int = 1
    epochs: int | None = None
    config: Path | None = None
    scores: tuple[tuple[str, Path], ...] = ()
    write_split: Path | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise UserError(f"--models: unknown model {unknown[0]!r}; choose from {', '.join(MODELS)} "
                            "(the baselines real, marginals and copy are always scored)")
        names = [FLOOR, *BASELINES, *self.models, *(n for n, _ in self.scores)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UserError(f"--score: row name {dup[0]!r} is taken; give each --score another NAME")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {self.seeds}")
        for name, path in self.scores:
            if not Path(path).exists():
                raise UserError(f"--score {name}={path}: no such file")


@dataclass
class SeedResult:
    """One split and every row scored on it."""

    seed: int
    sizes: dict[str, int]
    rows: dict[str, dict[str, float]]
    reference: dict[str, float]


@dataclass
class BenchmarkResult:
    spec: BenchmarkSpec
    kind: TraceKind
    seeds: list[SeedResult]
    metrics: list = field(default_factory=list)     # scorecard.Metric: the scorecard's, then COST_METRICS
    machine: dict = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def row_names(self) -> list[str]:
        names: list[str] = []
        for s in self.seeds:
            names += [n for n in s.rows if n not in names]
        return names

    def values(self, row: str, metric: str) -> np.ndarray:
        """The metric's value for `row` in every seed that scored it (NaN kept out)."""
        vals = np.array([s.rows[row].get(metric, np.nan) for s in self.seeds if row in s.rows], dtype=np.float64)
        return vals[np.isfinite(vals)]

    def mean(self, row: str, metric: str) -> float:
        v = self.values(row, metric)
        return float(v.mean()) if v.size else float("nan")

    def spread(self, row: str, metric: str) -> float:
        """Sample standard deviation over seeds (NaN with one seed)."""
        v = self.values(row, metric)
        return float(v.std(ddof=1)) if v.size > 1 else float("nan")

    def reference_mean(self, metric: str) -> float:
        v = np.array([s.reference.get(metric, np.nan) for s in self.seeds], dtype=np.float64)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    def metric_names(self) -> list[str]:
        """Scorecard metrics, then the cost figures."""
        return [m.name for m in self.metrics]


def run_benchmark(spec: BenchmarkSpec, progress: ProgressCallback | None = None) -> BenchmarkResult:
    """Run the whole protocol (see the module docstring)."""
    from ..evaluate.scorecard import metrics_for
    from ..io import read_trace

    t0 = time.perf_counter()
    trace = read_trace(spec.trace, progress=progress)
    kind = trace.kind
    others = {name: _read_score(name, path, kind) for name, path in spec.scores}
    seeds = []
    for seed in range(spec.seeds):
        seeds.append(_run_seed(spec, trace.table, kind, seed, others if seed == 0 else {}, progress))
    return BenchmarkResult(spec, kind, seeds, metrics_for(kind) + list(COST_METRICS), machine_facts(),
                           time.perf_counter() - t0)


def _read_score(name: str, path: Path, kind: TraceKind) -> pd.DataFrame:
    from ..io import read_trace

    table = read_trace(path)
    if table.kind != kind:
        raise UserError(f"--score {name}={path}: holds {table.kind} but the benchmarked trace holds {kind}; "
                        "score the other tool's output of the same kind (e.g. `tracesynth flows` turns packets "
                        "into flow records)")
    return table.table


def _run_seed(spec: BenchmarkSpec, table: pd.DataFrame, kind: TraceKind, seed: int,
              others: dict[str, pd.DataFrame], progress: ProgressCallback | None) -> SeedResult:
    from ..evaluate.scorecard import reference, score
    from ..evaluate.split import split_flows

    split = split_flows(table, kind, holdout=spec.holdout, seed=seed)
    train, held = split.train, split.holdout
    if spec.write_split is not None:
        write_split(split, spec.write_split if spec.seeds == 1 else Path(spec.write_split) / f"seed-{seed}")
    n = len(train)
    tables: dict[str, tuple[pd.DataFrame, Cost]] = {FLOOR: (train, Cost())}
    for name in BASELINES:
        tables[name] = baseline_table(name, train, n, seed)
    with tempfile.TemporaryDirectory(prefix="tracesynth-bench-") as tmp:
        for name in spec.models:
            emit(progress, "benchmark", 0, None, "", row=name, seed=seed)
            job = ModelJob(model=name, kind=kind, count=n, seed=seed, epochs=spec.epochs,
                           config=None if spec.config is None else str(spec.config), workers=spec.workers,
                           folder=str(Path(tmp) / name))
            tables[name] = run_model(job, train, progress)
    for name, other in others.items():
        tables[name] = (other, Cost())
    rows = {}
    for i, (name, (candidate, cost)) in enumerate(tables.items()):
        emit(progress, "score", i, len(tables), "rows", row=name, seed=seed)
        rows[name] = {**score(train, held, candidate, kind, seed=seed, candidate_is_train=name == FLOOR),
                      **cost.as_metrics()}
    emit(progress, "score", len(tables), len(tables), "rows", seed=seed)
    sizes = {"train_records": n, "holdout_records": len(held), "train_flows": _flows(train),
             "holdout_flows": _flows(held)}
    return SeedResult(seed, sizes, rows, reference(held, train, kind))


def _flows(table: pd.DataFrame) -> int:
    from ..schema import flow_codes

    return flow_codes(table)[1]


def write_split(split, folder: Path) -> tuple[Path, Path]:
    """train and held-out parts as files another generator can be trained on (pcap for packets, CSV for
    flow records), so its output can come back as `--score NAME=FILE` on the same split."""
    from ..io import write_trace

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--write-split {folder}: is a file; give a folder")
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".pcap" if split.kind == "packets" else ".csv"
    paths = (write_trace(split.train, folder / f"train{suffix}"), write_trace(split.holdout, folder / f"holdout{suffix}"))
    log.info("wrote the split (seed %d) to %s", split.seed, folder)
    return tuple(Path(p) for p in paths)


def machine_facts() -> dict:
    """Where the figures come from (benchmarks quote them with machine and date)."""
    import torch

    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cores": available_cores(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__}
