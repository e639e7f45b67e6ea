"""`tracesynth benchmark`: parse arguments, call `tracesynth.benchmark.benchmark_path`, print the table."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError
from ._app import app, out, progress_bar


def _scores(values: list[str]) -> tuple[tuple[str, Path], ...]:
    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UserError(f"--score {value!r}: expected NAME=SYNTH_FILE, e.g. --score netshare=synthetic.csv")
        pairs.append((name.strip(), Path(path.strip())))
    return tuple(pairs)


def _models(value: str) -> tuple[str, ...]:
    names = [m.strip().lower() for m in value.split(",") if m.strip()]
    return () if names == ["none"] else tuple(names)


@app.command()
def benchmark(trace: Path = typer.Argument(..., help="Real trace: pcap/pcapng or flow records (CSV/Parquet)."),
              models: str = typer.Option("doppelganger", "--models", help="Comma-separated models to fit, or "
                                         "'none' (baselines real, marginals, copy are always scored)."),
              holdout: float = typer.Option(0.2, "--holdout", help="Share of the flows held out for scoring."),
              seeds: int = typer.Option(1, "--seeds", min=1, help="Repeat split + fit + score with seeds 0..N-1."),
              out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for benchmark.json and "
                                                     "leaderboard.html."),
              json_out: Optional[Path] = typer.Option(None, "--json", help="Write the JSON here as well."),
              epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Training epochs for every "
                                                   "model (default: the preset's)."),
              config: Optional[Path] = typer.Option(None, "--config", help="Config file for the model fits."),
              workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes per fit."),
              write_split: Optional[Path] = typer.Option(None, "--write-split", help="Write train/held-out files "
                                                         "here, for training other tools on the same split."),
              score: list[str] = typer.Option([], "--score", help="NAME=SYNTH_FILE: add another generator's "
                                              "output (trained on --write-split's train file) as a row."),
              ) -> None:
    """Fit each model on a train split, score every row against the held-out flows, beside the floor."""
    from ..benchmark import BenchmarkSpec, benchmark_path
    from ..benchmark.output import table, verdicts

    spec = BenchmarkSpec(trace=trace, models=_models(models), holdout=holdout, seeds=seeds, epochs=epochs,
                         config=config, scores=_scores(score), write_split=write_split, workers=workers)
    with progress_bar("benchmark") as bar:
        result, written = benchmark_path(spec, out=out_dir, json_out=json_out, progress=bar)
    out.print(table(result))
    for line in verdicts(result):
        out.print(f"- {line}")
    out.print(f"benchmark took {result.wall_s:.0f} s" + "".join(f"; {k}: {v}" for k, v in written.items()))
