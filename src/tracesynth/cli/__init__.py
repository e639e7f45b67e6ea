"""Command-line entry point: `tracesynth COMMAND ...` (see `tracesynth --help`).

Exit codes: 0 success, 2 bad input or config (one line on stderr), 1 internal error.
"""
from __future__ import annotations

import os
import sys

from rich.markup import escape

from ..errors import UserError
from ._app import app, err

# Each module registers its commands on `app` (heavy imports happen inside the commands).
from . import io_cmds, model_cmds, eval_cmds, bench_cmds, serve_cmds  # noqa: E402,F401  (help lists them in this order)


#: OpenMP threads sleep at a barrier instead of spinning (unless the user set a policy). Read once, when
#: torch's OpenMP runtime loads, so it is set before any command imports torch. Measured on 2 cores,
#: generating 1M packets on 2 threads: with another process on one core, 87k packets/s instead of 58k;
#: idle, 130k instead of 137k (docs/benchmarks.md). Training and evaluation run one thread per process.
OMP_WAIT_POLICY = "PASSIVE"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI, mapping errors to exit codes; never show a traceback for a user mistake."""
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, markup=True)  # "[start, end]" stays
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except SystemExit as exc:  # typer/click exit with a code
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors are mapped below; anything else is a bug
        if _is_usage_error(exc):
            err.print(f"[red]error:[/red] {escape(exc.format_message())} (see `tracesynth {_command(argv)}--help`)",
                      highlight=False, markup=True)
            return 2
        if type(exc).__name__ == "Abort":
            err.print("aborted")
            return 130
        if os.environ.get("TRACESYNTH_DEBUG"):
            raise
        err.print(f"[red]internal error:[/red] {type(exc).__name__}: {escape(str(exc))}\n"
                  "This is a bug in tracesynth; rerun with TRACESYNTH_DEBUG=1 for a traceback and report it.",
                  highlight=False)
        return 1
    return 0


def _is_usage_error(exc: Exception) -> bool:
    """A bad option or argument: click's ClickException, or the one in the click copy typer ships
    (typer._click, typer >= 0.25), which is not a subclass of click's."""
    import click

    classes = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException
        classes.append(TyperClickException)
    except ImportError:
        pass
    return isinstance(exc, tuple(classes))


def _command(argv: list[str] | None) -> str:
    """The subcommand named on the command line (for the help hint), e.g. 'generate '."""
    args = sys.argv[1:] if argv is None else argv
    return f"{args[0]} " if args and not args[0].startswith("-") else ""


def run() -> None:
    sys.exit(main())
