"""Training the autoregressive flow model: cross-entropy, AdamW, early stopping on held-out flows.

Batches are uniformly random flow samples (the record GRU runs packed, so padding costs nothing). After every epoch the held-out flows'
NLL is measured; the best epoch's weights are kept and training stops after `patience` epochs without
improvement (or at `max_epochs`). Every epoch writes a checkpoint (model, optimiser, best weights,
history), and each epoch's randomness comes from (seed, epoch), so a resumed fit continues exactly.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..encoders.flow_tokens import TokenizedFlows
from ..progress import ProgressCallback, emit
from .ar import ARFlowModel
from .checkpoints import list_checkpoints, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

#: a clipped, noised gradient step for DP-SGD: (model, batch tensors, optimiser) -> mean loss
StepFn = Callable[[ARFlowModel, tuple, torch.optim.Optimizer], float]


@dataclass(frozen=True)
class ARSchedule:
    max_epochs: int = 40
    patience: int = 3
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    #: an epoch counts as an improvement when the held-out NLL drops by more than this share
    min_improvement: float = 1e-3


@dataclass
class ARTrainResult:
    epochs: int
    best_epoch: int
    best_validation: float | None
    history: list[dict] = field(default_factory=list)
    train_s: float = 0.0


def pad_batch(data: TokenizedFlows, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
    """(header, used, padded records [B, T, F], lengths) tensors of the flows `idx` (vectorised)."""
    lengths = data.lengths[idx]
    t_max = int(lengths.max()) if len(idx) else 1
    starts = data.offsets[idx]
    steps = np.arange(t_max)
    rows = starts[:, None] + steps[None, :]
    valid = steps[None, :] < lengths[:, None]
    gathered = data.records[np.where(valid, rows, 0)] if len(data.records) else np.zeros((len(idx), t_max, data.records.shape[1]), np.int64)
    gathered = np.where(valid[..., None], gathered, 0)
    return (torch.from_numpy(data.header[idx]), torch.from_numpy(data.header_used[idx].astype(np.float32)),
            torch.from_numpy(gathered), torch.from_numpy(lengths))


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random permutation of the flows cut into batches (uniform: see `ARFlowModel.record_loss`)."""
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def mean_nll(model: ARFlowModel, data: TokenizedFlows, batch_size: int = 1024) -> tuple[float, float]:
    """Mean per-flow NLL (nats) of the headers and of the records over `data`, in eval mode."""
    was = model.training
    model.eval()
    header = records = 0.0
    with torch.no_grad():
        for idx in random_batches(len(data), batch_size, np.random.default_rng(0)):
            h, r = model.nll_parts(*pad_batch(data, idx))
            header, records = header + float(h.sum()), records + float(r.sum())
    model.train(was)
    n = max(1, len(data))
    return header / n, records / n


def _plain_step(model: ARFlowModel, batch: tuple, optimizer: torch.optim.Optimizer, grad_clip: float) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = model(*batch).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


@dataclass
class _Best:
    """Early-stopping state of one part: best held-out NLL, its weights, epochs since."""

    value: float | None = None
    state: dict | None = None
    bad: int = 0

    def update(self, value: float, state_fn, min_improvement: float) -> None:
        if self.value is None or value < self.value - min_improvement * abs(self.value):
            self.value, self.state, self.bad = value, state_fn(), 0
        else:
            self.bad += 1


def _header_params(model: ARFlowModel) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith("h_")}


def _freeze_header(model: ARFlowModel, header_state: dict | None) -> None:
    if header_state is not None:
        model.load_state_dict(header_state, strict=False)
    for name, param in model.named_parameters():
        if name.startswith("h_"):
            param.requires_grad_(False)


def train_ar(model: ARFlowModel, train: TokenizedFlows, validation: TokenizedFlows | None, schedule: ARSchedule,
             *, seed: int, checkpoint_dir: Path | None = None, callback: ProgressCallback | None = None,
             step_fn: StepFn | None = None, batches_fn=None, hide_size: bool = False) -> ARTrainResult:
    """Train in place; on return the model holds the best weights (the last epoch's without validation).

    Early stopping is per part, because the parts overfit at different speeds: the header (addresses,
    ports: one token sequence per flow) starts to memorise flows after a few epochs while the records
    (many per flow) keep improving for several more (caida-10k: header best at epoch 5, records still
    improving at 9). When the header's held-out NLL has not improved for `patience` epochs, its best
    weights are restored and frozen, and the records train on until they stall too.

    `step_fn` replaces the plain optimiser step (DP-SGD); `batches_fn(epoch_rng) -> list of index arrays`
    replaces random batches (DP-SGD's Poisson batches); with `step_fn` an empty batch still steps (DP-SGD
    adds noise whatever the batch holds). `hide_size` (DP): no figure derived from the number of training
    flows (flows/s) is logged or reported."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    state = _resume(model, optimizer, checkpoint_dir)
    header, overall, history = state["header"], state["overall"], state["history"]
    frozen = state["frozen"]
    if frozen:
        _freeze_header(model, None)
    t_start = time.perf_counter()
    epoch = state["epoch"]
    while epoch < schedule.max_epochs and (validation is None or not frozen or overall.bad < schedule.patience):
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(int(rng.integers(2**62)))
        batches = batches_fn(rng) if batches_fn else random_batches(len(train), schedule.batch_size, rng)
        model.train()
        losses, weights = [], []
        for idx in batches:
            if len(idx) == 0 and step_fn is None:
                continue
            batch = pad_batch(train, idx)
            loss = step_fn(model, batch, optimizer) if step_fn else _plain_step(model, batch, optimizer, schedule.grad_clip)
            losses.append(loss)
            weights.append(len(idx))
        train_loss = float(np.average(losses, weights=weights)) if sum(weights) else math.nan
        parts = mean_nll(model, validation) if validation is not None and len(validation) else None
        val = None if parts is None else parts[0] + parts[1]
        epoch += 1
        if parts is not None:
            overall.update(val, lambda: copy.deepcopy(model.state_dict()), schedule.min_improvement)
            if not frozen:
                header.update(parts[0], lambda: _header_params(model), schedule.min_improvement)
                if header.bad >= schedule.patience:
                    _freeze_header(model, header.state)
                    frozen, overall.bad = True, 0
                    log.info("epoch %d: header frozen at its best epoch; records train on", epoch)
        elapsed = time.perf_counter() - t0
        rate = None if hide_size else (len(train) / elapsed if elapsed > 0 else 0.0)
        history.append({"epoch": epoch, "train_nll": train_loss, "validation_nll": val,
                        "validation_header_nll": None if parts is None else parts[0],
                        "validation_records_nll": None if parts is None else parts[1],
                        "header_frozen": frozen, "seconds": round(elapsed, 3)})
        if checkpoint_dir is not None:
            _save(checkpoint_dir, epoch, model, optimizer, {"header": vars(header), "overall": vars(overall),
                                                            "frozen": frozen, "history": history})
        emit(callback, "train", epoch, schedule.max_epochs, "epoch", epoch=epoch, train_loss=train_loss,
             val_loss=val, best_loss=overall.value, flows_per_s=rate, eta_s=elapsed * (schedule.max_epochs - epoch))
        log.info("epoch %d: train NLL %.3f, held-out NLL %s nats/flow%s", epoch, train_loss,
                 "-" if val is None else f"{val:.3f}", "" if rate is None else f", {rate:.0f} flows/s")
    if overall.state is not None:
        model.load_state_dict(overall.state)
    for param in model.parameters():
        param.requires_grad_(True)
    vals = [h["validation_nll"] for h in history]
    best_epoch = 1 + int(np.nanargmin([np.nan if v is None else v for v in vals])) if overall.state is not None else epoch
    return ARTrainResult(epochs=epoch, best_epoch=best_epoch, best_validation=overall.value, history=history,
                         train_s=time.perf_counter() - t_start)


def _save(directory: Path, epoch: int, model, optimizer, progress: dict) -> None:
    """This epoch's checkpoint; the previous one is removed (only the latest is needed to resume)."""
    directory.mkdir(parents=True, exist_ok=True)
    before = list_checkpoints(directory)
    save_checkpoint(directory, epoch, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), **progress})
    for old_epoch, path in before.items():
        if old_epoch != epoch:
            path.unlink(missing_ok=True)


def _resume(model, optimizer, directory: Path | None) -> dict:
    fresh = {"epoch": 0, "header": _Best(), "overall": _Best(), "frozen": False, "history": []}
    if directory is None:
        return fresh
    known = {e: p for e, p in list_checkpoints(directory).items() if p.exists()}
    if not known:
        return fresh
    epoch = max(known)
    state = load_checkpoint(known[epoch])
    model.load_state_dict(state["model"])
    if state["frozen"]:
        _freeze_header(model, None)
    optimizer.load_state_dict(state["optimizer"])
    log.info("resuming the autoregressive model from epoch %d (%s)", epoch, known[epoch])
    return {"epoch": int(state["epoch"]), "header": _Best(**state["header"]), "overall": _Best(**state["overall"]),
            "frozen": bool(state["frozen"]), "history": list(state["history"])}
