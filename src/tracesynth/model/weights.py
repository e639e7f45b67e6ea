"""A model's weights: drawn from a seed when it is built, saved and loaded as state dicts.

nn.Module constructors draw their initial weights from torch's global RNG, so a model built without
seeding it first starts from whatever state earlier work left there: `seeded_init` is the one place
that seeds it (forked, so the caller's stream is untouched). Weights files are plain `torch.save`d
state dicts, written atomically and read back with `weights_only=True` (no arbitrary pickle); a missing
or damaged file is a UserError naming it.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from .._atomic import atomic_path
from ..errors import UserError


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Torch's global CPU RNG seeded with `seed` inside, the caller's state restored after: modules
    built inside start from the same weights for the same seed whatever ran before. Build on the CPU
    (then `.to(device)`): the CUDA generators are not forked."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write `model`'s state dict to `path` atomically (a crash leaves the old file or none)."""
    with atomic_path(Path(path)) as tmp:
        torch.save(model.state_dict(), tmp)


def load_weights(model: nn.Module, path: str | Path, what: str) -> None:
    """Load a state dict written by `save_weights` into `model`; `what` names the file in errors
    ("model weights of chunk 2")."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: missing {what}; rerun `tracesynth fit ... --force`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError on damaged files
        raise UserError(f"{path}: corrupt {what} ({type(exc).__name__}); rerun `tracesynth fit ... "
                        "--force`") from None
