"""Progress events. Long work reports through a callback; the CLI turns events into a rich bar.

Library code never draws: it calls `callback(event)` if one was given. Events are plain dataclasses so
the web service can serialise them to JSON unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass
class ProgressEvent:
    """`stage` names the work ("read", "train", "generate", ...); `done`/`total` in `unit`s.

    `info` carries stage-specific figures (chunk, epoch, losses, throughput, eta_s, ...).
    """

    stage: str
    done: float
    total: float | None = None
    unit: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressCallback = Callable[[ProgressEvent], None]


def emit(callback: ProgressCallback | None, stage: str, done: float, total: float | None = None,
         unit: str = "", **info: Any) -> None:
    """Send one event if anybody listens."""
    if callback is not None:
        callback(ProgressEvent(stage, done, total, unit, dict(info)))
