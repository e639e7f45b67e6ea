"""The typer app and what every command shares: error mapping, logging, progress bars.

Commands live in sibling modules (one per area) and only parse arguments, call one `tracesynth.api`
function and print its result.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Callable, Iterator

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
#: TRACESYNTH_PROGRESS: 1 = the rich bar even when stderr is not a terminal, 0 = no progress at all
PROGRESS_ENV = "TRACESYNTH_PROGRESS"
#: seconds between two plain progress lines of a stage (epoch ends always get one)
LOG_INTERVAL_S = 60.0


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator:
    """Yield a ProgressCallback: a rich progress bar (with ETA) when stderr is a terminal, else plain
    log lines (`ProgressLog`), so that `tracesynth fit ... 2> log` shows the fit moving."""
    mode = os.environ.get(PROGRESS_ENV, "").strip()
    if not enabled or mode == "0":
        yield None
        return
    if not err.is_terminal and mode != "1":
        yield ProgressLog(description)
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


class ProgressLog:
    """A ProgressCallback that writes plain lines to stderr, for logs: one per finished training epoch
    (its losses, flows/s and ETA, as the trainer reports them), and for any other stage (read,
    generate, evaluate, an epoch in progress, ...) at most one per `interval_s` once it has run that
    long, plus its last event when it had one; short stages stay silent.

        [0:03:12] fit train: epoch 3/40, chunk 0, d_loss -0.0421, g_loss 0.3127, attr_d_loss -0.0116, 812 flows/s, ETA 0:39:31
        [0:41:05] generate: 1,250,000/2,000,000 records (62%), round 0, 30,410 records/s, ETA 0:00:25

    Rates and ETAs an event does not carry are measured from the stage's own progress. `clock`
    (seconds, monotonic) is a parameter so that the throttle can be checked without waiting."""

    def __init__(self, description: str, interval_s: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, console: Console | None = None):
        self.description, self.interval_s, self.clock = description, interval_s, clock
        self.console = console or err
        self.began = clock()
        self._stage: str | None = None
        self._stage_began = self._last_line = self.began
        self._stage_first = 0.0
        self._stage_lines = 0

    def __call__(self, event: ProgressEvent) -> None:
        now = self.clock()
        if event.stage != self._stage:
            self._stage, self._stage_first, self._stage_lines = event.stage, float(event.done), 0
            self._stage_began = self._last_line = now
        finished = event.total is not None and event.done >= event.total
        if _epoch_end(event) or now - self._last_line >= self.interval_s or (finished and self._stage_lines):
            self._last_line = now
            self._stage_lines += 1
            self.console.print(self.line(event, now), markup=False, highlight=False, soft_wrap=True)

    def line(self, event: ProgressEvent, now: float) -> str:
        """One event as a log line: elapsed time, command and stage, progress, figures, rate, ETA."""
        name = self.description if event.stage == self.description else f"{self.description} {event.stage}"
        parts = [_amount(event)]
        info = dict(event.info)
        eta = info.pop("eta_s", None)
        if event.unit == "epoch":
            info.pop("epoch", None)
        rate = info.pop("samples_per_s", None)
        parts += [f"{k} {_fmt(v)}" for k, v in info.items() if v is not None]
        if rate is not None:
            parts.append(f"{rate:,.0f} flows/s")
        else:
            measured = (float(event.done) - self._stage_first) / max(now - self._stage_began, 1e-9)
            if event.unit and event.unit != "epoch" and now > self._stage_began and measured > 0:
                parts.append(f"{measured:,.0f} {event.unit}/s")
                if eta is None and event.total is not None:
                    eta = (float(event.total) - float(event.done)) / measured
        if eta is not None:
            parts.append(f"ETA {_clock(eta)}")
        return f"[{_clock(now - self.began)}] {name}: " + ", ".join(p for p in parts if p)


def _epoch_end(event: ProgressEvent) -> bool:
    """A training epoch's last event (the trainer's, with its losses and ETA; in-epoch events lack them)."""
    return event.stage in ("train", "finetune") and "epoch" in event.info and "eta_s" in event.info


def _amount(event: ProgressEvent) -> str:
    """'epoch 3/40', '1,200/5,000 records (24%)', '3 steps'."""
    done = _number(event.done)
    if event.unit == "epoch":
        epoch = event.info.get("epoch", event.done)
        return f"epoch {_number(epoch)}/{_number(event.total)}" if event.total else f"epoch {_number(epoch)}"
    unit = f" {event.unit}" if event.unit else ""
    if event.total:
        return f"{done}/{_number(event.total)}{unit} ({100.0 * event.done / event.total:.0f}%)"
    return f"{done}{unit}"


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    return _fmt(value)


def _clock(seconds: float) -> str:
    """h:mm:ss."""
    total = max(0, int(round(seconds)))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


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
