"""The typer app and what every command shares: error mapping, logging, progress bars.

Commands live in sibling modules (one per area) and only parse arguments, call one `tracesynth.api`
function and print its result.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import UserError
from ..progress import ProgressEvent

app = typer.Typer(
    name="tracesynth",
    help="Learn a generative model of a network trace and sample synthetic traces (NetShare, done right).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: `--salvage` on every command that reads traces (inspect, convert, flows, fit, evaluate, report).
SALVAGE = typer.Option(False, "--salvage", help="Keep the packets before damage in the middle of a capture "
                       "(a corrupt record length) instead of refusing the file; a cut-off last record is "
                       "always kept with a warning.")

#: Results go to stdout; progress, warnings and errors go to stderr.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log diagnostics to stderr.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


#: environment variables the CLI reads as defaults for generation's flags (the only place they are read)
THREADS_ENV = "TRACESYNTH_GENERATE_THREADS"
PRECISION_ENV = "TRACESYNTH_GENERATE_DTYPE"


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator:
    """Yield a ProgressCallback that draws a rich progress bar (with ETA) on stderr."""
    if not enabled or not err.is_terminal and os.environ.get("TRACESYNTH_PROGRESS") != "1":
        yield None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=None, info="")

        def callback(event: ProgressEvent) -> None:
            info = " ".join(f"{k}={_fmt(v)}" for k, v in event.info.items() if k not in ("eta_s",))
            bar.update(task, description=f"{description} [{event.stage}]", completed=event.done,
                       total=event.total, info=info)

        yield callback


def generation_options(threads: int | None, precision: str | None):
    """Generation's options from the command line, the environment variables filling in what the flags
    leave unset (TRACESYNTH_GENERATE_THREADS: a positive integer; TRACESYNTH_GENERATE_DTYPE: auto,
    float32 or bfloat16). Library code never reads these variables: this is the one place."""
    from ..runtime import PRECISIONS, GenerationOptions

    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise UserError(f"{THREADS_ENV}={raw!r} is not a thread count; set a whole number >= 1 "
                                "or unset it (default: every core)")
            threads = int(raw)
    source = "--precision"
    if precision is None:
        source, precision = PRECISION_ENV, os.environ.get(PRECISION_ENV, "").strip() or "auto"
    if precision.lower() not in PRECISIONS:
        raise UserError(f"{source} {precision!r} is not a generation precision; use one of {', '.join(PRECISIONS)}")
    return GenerationOptions(threads=threads, precision=precision.lower())


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
