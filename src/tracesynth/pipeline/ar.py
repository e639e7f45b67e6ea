"""The autoregressive flow model in the pipeline: one model over the whole trace (docs/models.md).

    fit:    records -> FlowTable (flows split at max_flow_len) -> FlowTokenizer -> held-out flows ->
            ARFlowModel trained with early stopping -> run folder (tokenizer.json, weights.pt)
    sample: ancestral sampling in batches of flows -> tokens -> FlowTable -> records inside the trace's
            time span, until the target; then whole random flows are dropped (the last one cut short)
            so exactly `target` records remain (`generation.select_records`).

No time chunks: flow start is a header token over the whole trace, so one model learns the time
profile; measured against chunked DoppelGANger in docs/benchmarks.md. `ARTraceModel` is this model
behind `Synthesizer` (`models.TraceModel`; its manifest block is `ARBlock`).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from .._atomic import atomic_open
from ..config import ARConfig, TraceSynthConfig
from ..encoders.flow_tokens import FlowTokenizer, TokenizedFlows
from ..encoders.tokens import SpikeRule
from ..errors import UserError
from ..flows.table import FlowTable
from ..progress import ProgressCallback, emit
from ..runtime import GenerationOptions
from ..schema import TIME_COLUMN
from . import generation as gen
from .models import FitData, ModelFit
from .rundir import RunDir

log = logging.getLogger(__name__)

TOKENIZER = "tokenizer.json"
WEIGHTS = "weights.pt"
FOLDER = "ar"
#: flows sampled at once (memory: ~ batch x max length x fields tokens)
SAMPLE_BATCH = 16384
#: below this many flow samples nothing is held out: training runs `max_epochs` (no early stopping)
MIN_VALIDATION_FLOWS = 20
_SPLIT_STREAM = 0x5A11


@dataclass
class ARFit:
    """What a finished fit records in the manifest."""

    flows: int
    train_flows: int
    validation_flows: int
    records: int
    records_per_flow: float
    window: tuple[float, float]
    epochs: int
    best_epoch: int
    best_validation_nll: float | None
    history: list[dict]
    train_s: float
    parameters: int

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def make_tokenizer(cfg: TraceSynthConfig) -> FlowTokenizer:
    ar = cfg.model.ar
    return FlowTokenizer(cfg, tuple(ar.header_order), ar.top_ports, SpikeRule(ar.max_spikes, ar.min_spike_share),
                         ar.n_bins, ar.start_bins, ar.top_addresses, ar.min_key_flows)


def build(cfg: TraceSynthConfig, tokenizer: FlowTokenizer, seed: int):
    """The network, initialised from `seed` (the global torch RNG is left as it was)."""
    from ..model.ar import ARFlowModel, ARSizes
    from ..model.weights import seeded_init

    ar = cfg.model.ar
    with seeded_init(seed):
        return ARFlowModel(tokenizer.header_vocab, tokenizer.record_vocab,
                           ARSizes(hidden=ar.hidden, head_layers=ar.head_layers, dropout=ar.dropout))


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) flow indices: a seeded random share of the flow samples is held out."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    held = int(round(n * fraction)) if n >= MIN_VALIDATION_FLOWS else 0
    order = rng.permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def fit(table: pd.DataFrame, cfg: TraceSynthConfig, folder: Path, progress: ProgressCallback | None = None,
        step_fn=None, batches_fn=None) -> ARFit:
    """Tokenise, train with early stopping, write tokenizer and weights into `folder`."""
    import torch

    from ..model.ar_trainer import ARSchedule, train_ar
    from ..model.weights import save_weights

    ar, seed = cfg.model.ar, int(cfg.training.seed)
    emit(progress, "prepare", 0, 2, "steps")
    flows = FlowTable.from_records(table, cfg.flow_length.max_flow_len)
    if flows.n_flows == 0:
        raise UserError("the trace has no records to fit")
    tokenizer = make_tokenizer(cfg).fit(flows)
    tokens = tokenizer.transform(flows)
    train_idx, val_idx = split_validation(len(tokens), ar.validation_fraction, seed)
    train, validation = tokens.subset(train_idx), (tokens.subset(val_idx) if len(val_idx) else None)
    emit(progress, "prepare", 2, 2, "steps")
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_open(folder / TOKENIZER, "w") as fh:
        json.dump(tokenizer.to_state(), fh)
    model = build(cfg, tokenizer, seed)
    schedule = ARSchedule(max_epochs=ar.max_epochs, patience=ar.patience, batch_size=min(ar.batch_size, len(train)),
                          lr=ar.lr, weight_decay=ar.weight_decay)
    result = train_ar(model, train, validation, schedule, seed=seed, checkpoint_dir=folder / "checkpoints",
                      callback=progress, step_fn=step_fn, batches_fn=batches_fn)
    save_weights(model, folder / WEIGHTS)
    time_col = TIME_COLUMN[cfg.kind]
    times = table[time_col].to_numpy(np.float64)
    return ARFit(flows=len(tokens), train_flows=len(train), validation_flows=0 if validation is None else len(validation),
                 records=int(len(table)), records_per_flow=float(tokens.lengths.mean()),
                 window=(float(times.min()), float(times.max())), epochs=result.epochs, best_epoch=result.best_epoch,
                 best_validation_nll=result.best_validation, history=result.history, train_s=round(result.train_s, 3),
                 parameters=int(sum(p.numel() for p in model.parameters())))


@dataclass
class ARGenerator:
    """A fitted model ready to sample (loaded from a run folder)."""

    config: TraceSynthConfig
    tokenizer: FlowTokenizer
    model: object
    window: tuple[float, float]
    records_per_flow: float

    @classmethod
    def load(cls, cfg: TraceSynthConfig, folder: Path, fit_info: dict) -> "ARGenerator":
        from ..model.weights import load_weights

        path = folder / TOKENIZER
        try:
            state = json.loads(path.read_text())
            tokenizer = FlowTokenizer.from_state(cfg, state)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: the fitted tokenizer is missing or corrupt ({exc}); rerun `tracesynth fit "
                            "... --force`") from None
        model = build(cfg, tokenizer, 0)
        load_weights(model, folder / WEIGHTS, "autoregressive model weights")
        model.eval()
        return cls(cfg, tokenizer, model, tuple(fit_info["window"]), float(fit_info["records_per_flow"]))

    def sample_flows(self, n: int, seed: int, temperature: float | None = None) -> FlowTable:
        """`n` flow samples (tokens drawn ancestrally, then decoded)."""
        import torch

        temp = self.config.model.ar.temperature if temperature is None else float(temperature)
        gen_t = torch.Generator().manual_seed(int(seed) % 2**63)
        rng = np.random.default_rng([int(seed), 0xF10])
        header_t, state = self.model.sample_header(n, gen_t, temp)
        header = header_t.numpy()
        lengths = self.tokenizer.decode_lengths(header[:, self.tokenizer.slot_index("length")], rng)
        padded = self.model.sample_records(header_t, state, torch.from_numpy(lengths), gen_t, temp).numpy()
        mask = np.arange(padded.shape[1])[None, :] < lengths[:, None]
        return self.tokenizer.inverse(header, padded[mask], lengths, rng)

    def sample(self, target: int, seed: int, progress: ProgressCallback | None = None,
               temperature: float | None = None) -> pd.DataFrame:
        """Exactly `target` records inside the trace's time span, sorted by time."""
        from ..schema import canonicalize, empty_table

        kind = self.config.kind
        time_col = TIME_COLUMN[kind]
        parts, have, rounds, offset = [], 0, 0, 0
        emit(progress, "generate", 0, target, "records")
        while have < target and rounds < 1000:
            need = gen.flows_needed(target, self.records_per_flow, have)
            n = int(min(SAMPLE_BATCH, max(need, 64)))
            flows = self.sample_flows(n, int(np.random.SeedSequence([seed, rounds]).generate_state(1)[0]), temperature)
            flows.series["_flow"] = flows.series["flow_id"].to_numpy() + offset
            records = flows.to_records()
            t = records[time_col].to_numpy(np.float64)
            records = records[(t >= self.window[0]) & (t <= self.window[1])]
            parts.append(records)
            have += len(records)
            offset += n
            rounds += 1
            emit(progress, "generate", min(have, target), target, "records")
        if not parts:
            return empty_table(kind)
        table = pd.concat(parts, ignore_index=True)
        keep = gen.select_records(table["_flow"].to_numpy(), np.ones(len(table), bool), target,
                                  np.random.default_rng([seed, 0x5E1]))
        table = table[keep].drop(columns="_flow")
        return gen.sort_by_time(canonicalize(table, kind), time_col)


@dataclass
class ARBlock:
    """The ar model's keys of the manifest: no chunks, and what its fit recorded."""

    fit: ARFit

    def to_dict(self) -> dict:
        return {"chunks": [], "ar": self.fit.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "ARBlock":
        known = {f.name for f in fields(ARFit)}
        return cls(ARFit(**{k: v for k, v in data["ar"].items() if k in known}))


class ARTraceModel:
    """The autoregressive model behind `Synthesizer` (`model.kind: ar`): `fit` above trains it,
    `ARGenerator` samples it."""

    kind: ClassVar[str] = "ar"
    block_type: ClassVar[type] = ARBlock

    def __init__(self, config: TraceSynthConfig, run: RunDir | None = None, block: ARBlock | None = None):
        self.config, self.run, self.block = config, run, block
        self._generator: ARGenerator | None = None

    @classmethod
    def load(cls, config: TraceSynthConfig, run: RunDir, block: ARBlock) -> "ARTraceModel":
        return cls(config, run, block)   # the tokenizer and weights are read when sampling starts

    def fit(self, data: FitData, run: RunDir, progress: ProgressCallback | None) -> ModelFit:
        """The autoregressive model: one model over the whole trace; no chunks, no sizing."""
        cfg = self.config
        if cfg.privacy is not None:
            raise UserError("differential privacy is implemented for the doppelganger model only; fit with "
                            "--model doppelganger, or without --dp-epsilon")
        self.run = run
        resumed = run.start_fit(cfg, data.fingerprint, data.force)
        fitted = fit(data.table, cfg, run.path / FOLDER, progress)   # the module's fit
        self.block, self._generator = ARBlock(fitted), None
        return ModelFit(config=cfg, resumed=resumed, records=int(len(data.table)), train_s=fitted.train_s,
                        block=self.block, runner="this process", privacy=None)

    def sample(self, target: int, seed: int, progress: ProgressCallback | None, options: GenerationOptions,
               temperature: float | None) -> pd.DataFrame:
        from .sampling import generation_threads

        with generation_threads(options.resolved_threads()):
            return self._loaded().sample(target, seed, progress, temperature)

    def _loaded(self) -> ARGenerator:
        if self._generator is None:
            self._generator = ARGenerator.load(self.config, self.run.path / FOLDER, self.block.fit.to_dict())
        return self._generator
