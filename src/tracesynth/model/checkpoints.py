"""Training checkpoints: one file per saved epoch plus a JSON index, all written atomically.

A checkpoint holds the model, the three optimisers, both RNG states, the epoch reached and the loss
history: everything needed to continue training exactly where it stopped. Files are plain
`torch.save` dicts of tensors and numbers, read back with `weights_only=True` (no arbitrary pickle).
The index (`checkpoints.json`) maps epoch -> file name so the pipeline can pick a checkpoint by epoch.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_open, atomic_path
from ..errors import UserError

log = logging.getLogger(__name__)

FORMAT = 1
INDEX = "checkpoints.json"


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:05d}.pt"


def list_checkpoints(directory: str | Path) -> dict[int, Path]:
    """Epoch -> path of every checkpoint recorded in `directory`'s index (empty when there is none)."""
    directory = Path(directory)
    index = directory / INDEX
    if not index.exists():
        return {}
    try:
        data = json.loads(index.read_text())
        return {int(k): directory / v for k, v in sorted(data["checkpoints"].items(), key=lambda kv: int(kv[0]))}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{index}: checkpoint index is corrupt ({exc}); delete it (and the checkpoints "
                        "beside it) to train from scratch") from None


def _write_index(directory: Path, checkpoints: dict[int, Path]) -> None:
    data = {"format": FORMAT, "checkpoints": {str(e): p.name for e, p in sorted(checkpoints.items())}}
    with atomic_open(directory / INDEX, "w") as fh:
        json.dump(data, fh, indent=1)


def save_checkpoint(directory: str | Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write `state` as epoch `epoch`'s checkpoint, then record it in the index (both atomic)."""
    directory = Path(directory)
    path = directory / checkpoint_name(epoch)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "epoch": int(epoch), **state}, tmp)
    known = list_checkpoints(directory)
    known[int(epoch)] = path
    _write_index(directory, known)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read one checkpoint; a missing or unreadable file is a UserError naming it."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: checkpoint is missing; delete {path.parent / INDEX} to train from scratch")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise UserError(f"{path}: checkpoint is unreadable ({type(exc).__name__}); delete it and its entry "
                        f"in {INDEX} to resume from an earlier one, or train from scratch") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a tracesynth checkpoint of format {FORMAT}; train from scratch")
    return state


def clear_checkpoints(directory: str | Path) -> None:
    """Remove the checkpoints listed in the index and the index itself (a fresh, non-resumed run)."""
    directory = Path(directory)
    for path in list_checkpoints(directory).values():
        path.unlink(missing_ok=True)
    (directory / INDEX).unlink(missing_ok=True)
    log.info("cleared old checkpoints in %s", directory)
