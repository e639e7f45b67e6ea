"""DoppelGANger (networks, WGAN-GP losses, wrapper) and its generic training loop.

Nothing here touches trace files or DataFrames: the model consumes EncodedFlows-shaped arrays and the
trainer writes only its own checkpoints. See docs/model.md. Submodules load lazily, so importing
`tracesynth.model.checkpoints` (or this package) does not pull in the trainer.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DoppelGANger": "dgan", "WassersteinGP": "losses", "generator_loss": "losses",
    "Trainer": "trainer", "TrainResult": "trainer", "train": "trainer", "critic_step": "trainer",
    "shuffled_batches": "trainer", "per_batch": "trainer", "resolve_device": "trainer",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
