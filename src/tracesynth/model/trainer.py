"""The generic WGAN-GP training loop for DoppelGANger: batches, critic and generator steps, progress,
checkpoints and resume. It knows nothing of files' contents, encoders or chunks beyond a label.

Schedule. One epoch = max(1, n_flows // batch_size) generator steps. Before each generator step both
critics take `critic_steps` updates, each on a fresh real batch from the batch sampler and a fresh
fake batch of the same size. (DoppelGANger reuses one real batch for all critic steps; a fresh batch
sees more data for the same compute and is what Poisson-sampled DP-SGD needs.)

Two parts are replaceable, for DP-SGD (model/privacy.py) and for tests:
- `critic_update(critic, optimizer, real, fake, loss_fn)` performs ONE update of one critic. `real` /
  `fake` are tuples of the critic's inputs: (records [b, L, D+2], attributes [b, A]) for the critic,
  (attributes [b, A],) for the attribute critic; fakes are detached. `loss_fn` is a `WassersteinGP`
  whose `generator` is the trainer's noise generator (`loss_fn.sample_alpha(b)`, `loss_fn.per_sample`
  for per-sample clipping). It returns a dict of scalar tensors with at least "loss", or a float.
- `batch_sampler(n_flows, batch_size, n_batches, generator) -> Iterable[LongTensor]` yields the real
  batches' row indices for one epoch (`generator` is a CPU torch.Generator whose state is
  checkpointed). Batches may vary in size and may be empty (Poisson sampling): the critic update is
  called for every batch, with a fake batch of the same size. `per_batch(source)` adapts a
  zero-argument batch source (such as a Poisson sampler holding its own generator).

Reproducibility guarantee (tested): on one machine with the same thread count, the same seed, data
and config give bit-identical weights; and a run interrupted after a checkpoint and resumed from it
ends with the same weights, optimiser states and loss history as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import torch
from torch import nn

from ..config import TrainingConfig
from ..errors import ConfigError, UserError
from ..progress import ProgressCallback, emit
from .checkpoints import clear_checkpoints, list_checkpoints, load_checkpoint, save_checkpoint
from .dgan import DoppelGANger
from .losses import Batch, WassersteinGP, generator_loss

log = logging.getLogger(__name__)

#: minimum seconds between two in-epoch progress events
PROGRESS_INTERVAL_S = 1.0


class CriticUpdate(Protocol):
    def __call__(self, critic: nn.Module, optimizer: torch.optim.Optimizer, real: Batch, fake: Batch,
                 loss_fn: WassersteinGP) -> dict[str, torch.Tensor] | float: ...


class BatchSampler(Protocol):
    def __call__(self, n_flows: int, batch_size: int, n_batches: int,
                 generator: torch.Generator) -> Iterable[torch.Tensor]: ...


def critic_step(critic: nn.Module, optimizer: torch.optim.Optimizer, real: Batch, fake: Batch,
                loss_fn: WassersteinGP) -> dict[str, torch.Tensor]:
    """The default (non-private) critic update: one Adam step on the batch-mean WGAN-GP loss."""
    if real[0].shape[0] == 0:
        return {}
    optimizer.zero_grad(set_to_none=True)
    loss, stats = loss_fn(critic, real, fake)
    loss.backward()
    optimizer.step()
    return stats


def shuffled_batches(n_flows: int, batch_size: int, n_batches: int,
                     generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The default sampler: walk through random permutations of the flows, `batch_size` at a time."""
    perms = max(1, math.ceil(n_batches * batch_size / max(n_flows, 1)))
    order = torch.cat([torch.randperm(n_flows, generator=generator) for _ in range(perms)])
    for i in range(n_batches):
        yield order[i * batch_size:(i + 1) * batch_size]


def per_batch(source: Callable[[], torch.Tensor]) -> BatchSampler:
    """Adapt a zero-argument batch source (e.g. a Poisson sampler) to the epoch-wise BatchSampler.

    The source keeps its own RNG, which the trainer's checkpoints do not capture: resume is then
    statistically, not bit-for-bit, equivalent to an uninterrupted run.
    """
    def sampler(n_flows: int, batch_size: int, n_batches: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        for _ in range(n_batches):
            yield source()

    return sampler


def _stats(value: Any) -> dict[str, torch.Tensor]:
    """Normalise a critic update's return value to {name: scalar tensor}."""
    if isinstance(value, dict):
        return value
    return {"loss": torch.as_tensor(float(value))}


@dataclass
class TrainResult:
    """What a training run reached: epochs done, the loss history and the checkpoints (epoch -> path)."""

    epochs: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoints: dict[int, Path] = field(default_factory=dict)
    resumed_from: int | None = None
    seconds: float = 0.0


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N'; asking for a GPU that is not there is the user's to fix."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"training.device: unknown device {name!r}; use 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device: {name!r} requested but no CUDA GPU is available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"training.device: {name!r} is not supported; use 'cpu' or 'cuda'")
    if device.type == "cuda":  # deterministic cuBLAS needs a fixed workspace (read when CUDA starts)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return device


#: torch intra-op threads while training on CPU. One thread per training process: the step is a chain of
#: mid-sized matmuls (batch x 512) that a second thread barely speeds up on an idle machine and slows
#: down several-fold when the cores are shared (OpenMP spin-waits); parallelism comes from the runner's
#: worker processes instead (docs/benchmarks.md, "## Pipeline"). The default of `Trainer(threads=...)`.
TRAIN_THREADS = 1


@contextlib.contextmanager
def _cpu_threads(device: torch.device, threads: int) -> Iterator[None]:
    """Train with `threads` torch threads on CPU, restoring the caller's thread count afterwards (the
    thread count changes the weights a seed gives, so it is the caller's explicit choice)."""
    previous = torch.get_num_threads()
    if device.type == "cpu" and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels for the duration of training, restoring the caller's setting afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


@contextlib.contextmanager
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """No weight gradients for these modules (the critics during a generator step)."""
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _as_array(data: Any, name: str) -> np.ndarray:
    value = data[name] if isinstance(data, dict) else getattr(data, name)
    return np.asarray(value, dtype=np.float32)


class Trainer:
    """Trains one DoppelGANger on one set of encoded flows (one chunk).

    `chunk` only labels progress events. Optimisers are created fresh for every `fit`; to fine-tune,
    load the parent model's weights into `model` first.
    """

    def __init__(self, model: DoppelGANger, training_cfg: TrainingConfig | None = None, *,
                 callback: ProgressCallback | None = None, critic_update: CriticUpdate | None = None,
                 batch_sampler: BatchSampler | None = None, chunk: int | None = None,
                 steps_per_epoch: int | None = None, threads: int = TRAIN_THREADS):
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise UserError(f"training threads must be a whole number >= 1, got {threads!r}")
        self.threads = threads
        cfg = training_cfg or TrainingConfig()
        # the pipeline sets batch_size from the trace (flows/sizing.py); trained directly, the bound applies
        self.cfg = cfg if cfg.batch_size is not None else cfg.model_copy(update={"batch_size": cfg.max_batch_size})
        self.device = resolve_device(self.cfg.device)
        self.model = model.to(self.device)
        self.callback = callback
        self.critic_update: CriticUpdate = critic_update or critic_step
        self.batch_sampler: BatchSampler = batch_sampler or shuffled_batches
        self.chunk = chunk
        # DP hook (model/privacy.py): generator steps per epoch fixed from public figures, so the
        # number of noisy releases does not depend on the private number of flows
        self.steps_per_epoch = steps_per_epoch
        self.loss_fn = WassersteinGP(self.cfg.gp_lambda)
        betas = (self.cfg.beta1, self.cfg.beta2)
        self.opt_g = torch.optim.Adam(model.generator_parameters(), lr=self.cfg.lr_generator, betas=betas)
        self.opt_d = torch.optim.Adam(model.critic.parameters(), lr=self.cfg.lr_critic, betas=betas)
        self.opt_a = torch.optim.Adam(model.attr_critic.parameters(), lr=self.cfg.lr_critic, betas=betas)
        self.checkpoints: dict[int, Path] = {}

    # ---- data ----------------------------------------------------------------------------------
    def _tensors(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """EncodedFlows-like data -> (attributes [n, A], real records [n, L, D+2]) on the device."""
        attrs, feats, flags = (_as_array(data, k) for k in ("attributes", "features", "gen_flags"))
        m = self.model
        n = attrs.shape[0]
        if attrs.shape[1:] != (m.attribute_dim,) or feats.shape[1:] != (m.max_len, m.feature_dim) \
                or flags.shape != (n, m.max_len) or feats.shape[0] != n:
            raise UserError(f"encoded flows have shapes attributes {attrs.shape}, features {feats.shape}, "
                            f"gen_flags {flags.shape}; the model expects [n, {m.attribute_dim}], "
                            f"[n, {m.max_len}, {m.feature_dim}], [n, {m.max_len}]: rebuild the model from "
                            "the encoder's spans")
        if n < self.cfg.batch_size:
            raise UserError(f"only {n} flows to train on, fewer than training.batch_size "
                            f"({self.cfg.batch_size}): use a longer trace, fewer chunks or a smaller batch")
        a = torch.from_numpy(attrs).to(self.device)
        records = m.real_records(torch.from_numpy(feats).to(self.device), torch.from_numpy(flags).to(self.device))
        return a, records

    # ---- state -----------------------------------------------------------------------------------
    def _state(self, epoch_gen: torch.Generator, noise_gen: torch.Generator,
               history: list[dict[str, float]]) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "opt_a": self.opt_a.state_dict(),
                "rng_batches": epoch_gen.get_state(), "rng_noise": noise_gen.get_state(),
                "history": history, "describe": _signature(self.model)}

    def _restore(self, state: dict[str, Any], path: Path, epoch_gen: torch.Generator,
                 noise_gen: torch.Generator) -> list[dict[str, float]]:
        if state.get("describe") != _signature(self.model):
            raise UserError(f"{path}: checkpoint was written by a model of a different shape or config; "
                            "train from scratch (resume=False / --force)")
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.opt_a.load_state_dict(state["opt_a"])
        epoch_gen.set_state(state["rng_batches"])
        noise_gen.set_state(state["rng_noise"])
        return [dict(h) for h in state["history"]]

    def _resume_point(self, checkpoint_dir: Path, epochs: int) -> tuple[int, Path] | None:
        usable = {e: p for e, p in list_checkpoints(checkpoint_dir).items() if e <= epochs}
        if not usable:
            return None
        epoch = max(usable)
        return epoch, usable[epoch]

    # ---- the loop -------------------------------------------------------------------------------
    def fit(self, data: Any, *, epochs: int | None = None, seed: int | None = None,
            checkpoint_dir: str | Path | None = None, resume: bool = True) -> TrainResult:
        """Train for `epochs` (default training.epochs) from `seed` (default training.seed).

        `data` has `attributes` [n, A], `features` [n, L, D], `gen_flags` [n, L] (an EncodedFlows or a
        dict). With `checkpoint_dir`, a checkpoint is written every `training.checkpoint_every` epochs and
        after the last one; with `resume`, training continues from the latest checkpoint there (earlier
        checkpoints of a non-resumed run are removed first).
        """
        epochs = self.cfg.epochs if epochs is None else int(epochs)
        seed = self.cfg.seed if seed is None else int(seed)
        real_attrs, real_records = self._tensors(data)
        epoch_gen = torch.Generator().manual_seed(seed)
        noise_gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.loss_fn.generator = noise_gen
        history: list[dict[str, float]] = []
        start_epoch, resumed_from = 0, None
        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if ckpt_dir is not None:
            point = self._resume_point(ckpt_dir, epochs) if resume else None
            if not resume:
                clear_checkpoints(ckpt_dir)
            if point is not None:
                start_epoch, path = point
                history = self._restore(load_checkpoint(path), path, epoch_gen, noise_gen)
                resumed_from = start_epoch
                log.info("resuming from %s (epoch %d of %d)", path, start_epoch, epochs)
            self.checkpoints = {e: p for e, p in list_checkpoints(ckpt_dir).items() if e <= start_epoch}
        began = time.perf_counter()
        self.model.train()
        with _deterministic(), _cpu_threads(self.model.device, self.threads):
            for epoch in range(start_epoch, epochs):
                tick = time.perf_counter()
                stats = self._epoch(real_attrs, real_records, epoch_gen, noise_gen, epoch, epochs, began)
                stats.update(epoch=epoch + 1, seconds=time.perf_counter() - tick)
                history.append(stats)
                done = epoch + 1
                if ckpt_dir is not None and (done % self.cfg.checkpoint_every == 0 or done == epochs):
                    self.checkpoints[done] = save_checkpoint(ckpt_dir, done, self._state(epoch_gen, noise_gen, history))
                self._report(done, epochs, stats, history, start_epoch)
        return TrainResult(epochs=epochs, history=history, checkpoints=dict(self.checkpoints),
                           resumed_from=resumed_from, seconds=time.perf_counter() - began)

    def _epoch(self, real_attrs: torch.Tensor, real_records: torch.Tensor, epoch_gen: torch.Generator,
               noise_gen: torch.Generator, epoch: int, epochs: int, began: float) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        n = real_attrs.shape[0]
        gen_steps = self.steps_per_epoch or max(1, n // cfg.batch_size)
        batches = iter(self.batch_sampler(n, cfg.batch_size, gen_steps * cfg.critic_steps, epoch_gen))
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        last_event = time.perf_counter()
        tick = last_event
        trained = 0

        def add(prefix: str, values: dict[str, torch.Tensor]) -> None:
            for k, v in values.items():
                key = f"{prefix}{k}"
                sums[key] = sums.get(key, 0.0) + v.detach().float()
                counts[key] = counts.get(key, 0) + 1

        for step in range(gen_steps):
            for _ in range(cfg.critic_steps):
                idx = next(batches, None)
                if idx is None:
                    break
                idx = idx.to(self.device)
                b = len(idx)
                with torch.no_grad():  # BatchNorm needs 2 rows; Poisson batches may hold 0 or 1
                    f_attrs, f_records, _ = model.sample(max(b, 2), noise_gen)
                f_attrs, f_records = f_attrs[:b], f_records[:b]
                r_attrs = real_attrs[idx]
                add("d_", _stats(self.critic_update(model.critic, self.opt_d, (real_records[idx], r_attrs),
                                                    (f_records, f_attrs), self.loss_fn)))
                add("attr_d_", _stats(self.critic_update(model.attr_critic, self.opt_a, (r_attrs,),
                                                         (f_attrs,), self.loss_fn)))
                trained += len(idx)
            add("g_", {"loss": self._generator_step(noise_gen)})
            now = time.perf_counter()
            if self.callback is not None and now - last_event >= PROGRESS_INTERVAL_S:
                last_event = now
                rate = trained / max(now - tick, 1e-9)
                emit(self.callback, "train", epoch + (step + 1) / gen_steps, epochs, "epoch",
                     **self._labels(), epoch=epoch + 1, step=step + 1, samples_per_s=rate)
        out = {k: float(v) / counts[k] for k, v in sums.items()}
        out["steps"] = float(gen_steps)
        out["samples_per_s"] = trained / max(time.perf_counter() - tick, 1e-9)
        return out

    def _generator_step(self, noise_gen: torch.Generator) -> torch.Tensor:
        model = self.model
        with _frozen(model.critic, model.attr_critic):
            attrs, records, _ = model.sample(self.cfg.batch_size, noise_gen)
            loss = generator_loss(model.critic(records, attrs), model.attr_critic(attrs), self.cfg.attr_critic_weight)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        return loss.detach()

    def _labels(self) -> dict[str, Any]:
        return {} if self.chunk is None else {"chunk": self.chunk}

    def _report(self, done: int, epochs: int, stats: dict[str, float], history: list[dict[str, float]],
                start_epoch: int) -> None:
        recent = history[start_epoch:] or history
        per_epoch = sum(h["seconds"] for h in recent) / len(recent)
        emit(self.callback, "train", done, epochs, "epoch", **self._labels(), epoch=done,
             step=int(stats["steps"]), d_loss=stats.get("d_loss"), g_loss=stats.get("g_loss"),
             attr_d_loss=stats.get("attr_d_loss"), samples_per_s=stats["samples_per_s"],
             eta_s=per_epoch * (epochs - done))
        log.debug("epoch %d/%d d=%.4g g=%.4g", done, epochs, stats.get("d_loss", float("nan")),
                  stats.get("g_loss", float("nan")))


def _signature(model: DoppelGANger) -> dict[str, Any]:
    desc = model.describe()
    return {k: desc[k] for k in ("attribute_spans", "feature_spans", "max_len", "model")}


def train(model: DoppelGANger, data: Any, training_cfg: TrainingConfig | None = None, *,
          epochs: int | None = None, seed: int | None = None, callback: ProgressCallback | None = None,
          checkpoint_dir: str | Path | None = None, resume: bool = True,
          critic_update: CriticUpdate | None = None, batch_sampler: BatchSampler | None = None,
          chunk: int | None = None, steps_per_epoch: int | None = None,
          threads: int = TRAIN_THREADS) -> TrainResult:
    """Function form of `Trainer(...).fit(...)`; see the module docstring for the replaceable parts."""
    trainer = Trainer(model, training_cfg, callback=callback, critic_update=critic_update,
                      batch_sampler=batch_sampler, chunk=chunk, steps_per_epoch=steps_per_epoch, threads=threads)
    return trainer.fit(data, epochs=epochs, seed=seed, checkpoint_dir=checkpoint_dir, resume=resume)


__all__ = ["Trainer", "TrainResult", "train", "critic_step", "shuffled_batches", "per_batch", "resolve_device",
           "CriticUpdate", "BatchSampler"]
