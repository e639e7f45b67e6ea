"""How many time chunks and how large a batch a trace can train with, chosen from the trace itself.

NetShare fixes 10 chunks and a batch of 100 flows, which refuses most small captures: caida-1k has 48
flow samples in chunk 0 of 10. When the config leaves `chunking.n_chunks` or `training.batch_size`
unset (None, as the presets do), `choose_sizing` picks them from the flow samples each chunk would hold
(5-tuples per time window, each split into ceil(records / max_flow_len) samples by the length cap):

- chunks: the largest n <= `chunking.max_chunks` whose chunk 0 (the one trained from scratch; every other
  chunk is fine-tuned from it) holds at least `training.max_batch_size` flow samples; 1 when none does.
  Chunk 0 is what matters: traffic is not uniform in time (the bundled sample's first half-window holds
  2 of its 139 flows).
- batch: `training.max_batch_size` (NetShare's 100) when chunk 0 holds that many flow samples, so every
  trace that fitted with NetShare's sizes trains exactly as before, at the same cost; a smaller trace
  (one chunk with fewer samples than that) trains with a quarter of its samples per batch, at least
  MIN_BATCH, so that an epoch is still about 4 optimiser steps.

A value set in the config (or by `--chunks`) is used as given; when it cannot work, the error names the
largest value that would. A trace with fewer than `training.min_flows` (MIN_FLOWS, 40) flows is refused (docs/pipeline.md says
how that minimum was measured). In DP mode nothing is derived from the private trace: unset values
take their bounds (`max_chunks`, `max_batch_size`).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..config import TraceSynthConfig
from ..errors import UserError
from ..schema import TIME_COLUMN, flow_codes
from .chunking import chunk_windows

log = logging.getLogger(__name__)

#: smallest batch the automatic choice uses (BatchNorm and the critics need a few samples per step)
MIN_BATCH = 8
#: optimiser steps per epoch that the automatic batch size aims at for chunk 0
STEPS_PER_EPOCH = 4
#: fewest flows (5-tuples) `fit` accepts by default (`training.min_flows`). Measured (bench/bench_min_flows.py, docs/benchmarks.md): fitted on
#: 20 flows of caida-10k, DoppelGANger beat the `marginals` baseline on 1 of 6 joint and flow-level metrics
#: (within noise); on 40 flows on 3 of 6 (every flow-shape metric), on 80 on 2 of 6
MIN_FLOWS = 40


@dataclass(frozen=True)
class Sizing:
    """What `fit` trains with, and whether it chose each value or took it from the config."""

    n_chunks: int
    batch_size: int
    flows: int                      # 5-tuples in the trace (-1 in DP mode: not looked at)
    flow_samples: int               # in the whole trace (one chunk; the length cap splits long flows)
    chunk0_flow_samples: int        # in chunk 0 under `n_chunks`
    chose_chunks: bool
    chose_batch: bool

    def describe(self) -> str:
        """One line for the terminal and the log."""
        how = lambda chosen: "chosen" if chosen else "from the config"  # noqa: E731
        if self.flows < 0:
            return (f"{self.n_chunks} chunk(s), batch {self.batch_size} (DP mode: the config's values or their "
                    "bounds; nothing derived from the private trace)")
        return (f"{self.n_chunks} chunk(s) ({how(self.chose_chunks)}), batch {self.batch_size} "
                f"({how(self.chose_batch)}): {self.flows:,} flows, {self.flow_samples:,} flow samples, "
                f"{self.chunk0_flow_samples:,} in chunk 0")

    def to_dict(self) -> dict:
        return asdict(self)


def chunk_flow_samples(table: pd.DataFrame, config: TraceSynthConfig, n_chunks: int,
                       keys: np.ndarray | None = None) -> np.ndarray:
    """Flow samples per chunk [n_chunks] if `table` were cut into `n_chunks` windows (as `split_chunks`
    cuts it: same windows, same length cap), without building the chunks. `keys`: `schema.flow_codes(table)[0]`."""
    if len(table) == 0:
        return np.zeros(n_chunks, dtype=np.int64)
    keys = flow_codes(table)[0] if keys is None else keys
    times = table[TIME_COLUMN[config.kind]].to_numpy(np.float64)
    chunk_of, _ = chunk_windows(times, with_chunks(config, n_chunks))
    pairs, records = np.unique(keys * n_chunks + chunk_of, return_counts=True)
    samples = -(-records // config.flow_length.max_flow_len)          # ceil: the cap splits long flows
    return np.bincount(pairs % n_chunks, weights=samples, minlength=n_chunks).astype(np.int64)


def with_chunks(config: TraceSynthConfig, n_chunks: int) -> TraceSynthConfig:
    """`config` with `chunking.n_chunks` set (nothing else changes)."""
    return config.model_copy(update={"chunking": config.chunking.model_copy(update={"n_chunks": int(n_chunks)})})


def auto_batch(chunk0: int, max_batch: int) -> int:
    """`max_batch` when chunk 0 holds a batch of it, else a quarter of chunk 0's samples (>= MIN_BATCH).

    Not a quarter throughout: ugr16-1k (80 samples in chunk 0 of 10) would then train with batches of 20,
    four times the generator steps per epoch of NetShare's sizes (a benchmark fit had chunk 0 at epoch 100
    of 400 after 16 minutes)."""
    if chunk0 >= max_batch:
        return int(max_batch)
    return int(max(MIN_BATCH, chunk0 // STEPS_PER_EPOCH))


def choose_sizing(table: pd.DataFrame, config: TraceSynthConfig) -> Sizing:
    """The chunk count and batch size for fitting `table` under `config` (see the module docstring)."""
    ch, tr = config.chunking, config.training
    if config.privacy is not None:   # nothing may depend on the private trace: bounds, as NetShare's fixed values
        return _private_sizing(table, config)
    keys, flows = flow_codes(table)
    if flows < tr.min_flows:
        raise UserError(f"trace too small: {flows} flow(s) (5-tuples); fit needs at least {tr.min_flows} to learn "
                        "more than each field's marginal distribution (training.min_flows; docs/pipeline.md, "
                        "\"Automatic sizing\")")
    counts: dict[int, np.ndarray] = {}

    def chunk0(n: int) -> int:
        if n not in counts:
            counts[n] = chunk_flow_samples(table, config, n, keys)
        return int(counts[n][0])

    if ch.n_chunks is not None:
        n = ch.n_chunks
    else:
        need = tr.batch_size or tr.max_batch_size
        n = max((k for k in range(1, ch.max_chunks + 1) if chunk0(k) >= need), default=1)
    first = chunk0(n)
    batch = tr.batch_size if tr.batch_size is not None else auto_batch(first, tr.max_batch_size)
    if first < batch:
        raise UserError(_too_small(config, n, first, batch, chunk0))
    return Sizing(n, batch, flows, chunk0(1), first, ch.n_chunks is None, tr.batch_size is None)


def _too_small(config: TraceSynthConfig, n: int, first: int, batch: int, chunk0) -> str:
    """Why `n` chunks with batches of `batch` cannot train, and the largest values that would."""
    ch, tr = config.chunking, config.training
    fixes = []
    if ch.n_chunks is not None:
        fits = [k for k in range(1, n) if chunk0(k) >= batch]
        fixes.append(f"at most {max(fits)} chunk(s) would hold a batch (--chunks {max(fits)})" if fits
                     else "no chunk count holds a batch this large")
    if tr.batch_size is not None:
        fixes.append(f"the largest batch that fits is {first} (training.batch_size)")
    fixes.append("or leave both unset so that fit chooses them")
    return (f"trace too small for {n} chunk(s): chunk 0 has {first} flow samples, fewer than one batch "
            f"(training.batch_size = {batch}); " + "; ".join(fixes))


def _private_sizing(table: pd.DataFrame, config: TraceSynthConfig) -> Sizing:
    ch, tr = config.chunking, config.training
    n = ch.n_chunks if ch.n_chunks is not None else ch.max_chunks
    batch = tr.batch_size if tr.batch_size is not None else tr.max_batch_size
    if ch.n_chunks is None or tr.batch_size is None:
        log.info("DP mode: chunks and batch size are not derived from the private trace; using %d chunk(s), "
                 "batch %d (set chunking.n_chunks / training.batch_size to change them)", n, batch)
    return Sizing(n, batch, -1, -1, -1, False, False)


def sized_for_inspection(table: pd.DataFrame, config: TraceSynthConfig) -> TraceSynthConfig:
    """`config` with the chunk count `fit` would use, for `inspect --flows`: the configured count (or 1)
    where the trace is too small to fit, since inspecting a small trace is no error."""
    try:
        return resolve_sizing(table, config)[0]
    except UserError:
        return with_chunks(config, config.chunking.n_chunks or 1)


def resolve_sizing(table: pd.DataFrame, config: TraceSynthConfig) -> tuple[TraceSynthConfig, Sizing]:
    """`config` with `chunking.n_chunks` and `training.batch_size` set as `choose_sizing` decides."""
    sizing = choose_sizing(table, config)
    resolved = with_chunks(config, sizing.n_chunks)
    resolved = resolved.model_copy(update={"training": resolved.training.model_copy(
        update={"batch_size": sizing.batch_size})})
    return resolved, sizing


__all__ = ["MIN_BATCH", "MIN_FLOWS", "STEPS_PER_EPOCH", "Sizing", "auto_batch", "choose_sizing",
           "chunk_flow_samples", "resolve_sizing", "sized_for_inspection", "with_chunks"]
