"""How generation runs on this machine: thread count and matmul precision, as one typed value.

They are not part of the run's config (config.py defines the model; a run folder is generated from on
other machines), but they change the output for a seed (torch's kernels block differently per thread
count; bfloat16 rounds), so they are explicit parameters: the caller (the CLI's flags, the service's
settings) builds a `GenerationOptions` and it travels down through `pipeline.sampling` into the model's
`generate` call. Library code never reads them from the environment; the CLI reads the environment
variables once, as defaults for its flags (`cli._app.generation_options`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ._parallel import available_cores
from .errors import UserError

#: matmul precision of generation's large matmuls (attribute MLP, the LSTM's condition projection);
#: auto = bfloat16 where the CPU has native bfloat16 matmuls, else float32 (`model.networks.resolve_precision`)
Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class GenerationOptions:
    """`threads`: torch intra-op threads and decoding threads (None: every core this process may run
    on); `precision`: see `Precision`. The defaults are what generation did before anything was set."""

    threads: int | None = None
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise UserError(f"generation threads must be a whole number >= 1 (or unset for every core), "
                            f"got {self.threads!r}")
        if self.precision not in PRECISIONS:
            raise UserError(f"generation precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    def resolved_threads(self) -> int:
        """The thread count generation uses. Never derived from the machine's load: the output for a
        seed depends on it, so it must be the same on every run on one machine."""
        return self.threads if self.threads is not None else available_cores()

    def describe(self) -> dict[str, Any]:
        """What generation ran with, resolved (`auto` -> the precision this CPU gets), for result records."""
        from .model.networks import resolve_precision

        return {"threads": self.resolved_threads(),
                "precision": str(resolve_precision(self.precision)).removeprefix("torch.")}
