"""The autoregressive flow model in the pipeline: one model over the whole trace (docs/models.md).

    fit:    records -> FlowTable (flows split at max_flow_len) -> FlowTokenizer -> held-out flows ->
            ARFlowModel trained with early stopping -> run folder (tokenizer.json, weights.pt)
    sample: ancestral sampling in batches of flows -> tokens -> FlowTable -> records inside the trace's
            time span, until the target; then whole random flows are dropped (the last one cut short)
            so exactly `target` records remain (`generation.select_records`).

No time chunks: flow start is a header token over the whole trace, so one model learns the time
profile; measured against chunked DoppelGANger in docs/benchmarks.md.

With a public trace (`public=`): the tokenizer is fitted on it, the model is pretrained on it (early
stopping on held-out public flows), then trained on the private trace from those weights. With
`config.privacy` (docs/privacy.md, "The ar model") the public trace is required (the vocabularies are
data-dependent), the private records are cut to `time.window`, the flow count is released, and the
private training is DP-SGD (`model/ar_private.py`) for a fixed number of epochs, with nothing held out
and nothing about the private trace logged or stored outside the budget. `ARTraceModel` is this model
behind `Synthesizer` (`models.TraceModel`; its manifest block is `ARBlock`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from .._atomic import atomic_open
from ..config import TraceSynthConfig
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
#: held-out flow samples at least (when the trace has 4x as many)
VALIDATION_FLOOR = 30
_SPLIT_STREAM = 0x5A11
#: SeedSequence words keeping the public pretraining and the DP count release apart from the fit's seed
_PUBLIC_STREAM = 0x9B11C
_COUNT_STREAM = 0xC0DE
#: sampled flow headers from which a DP fit estimates records per flow sample (post-processing)
SIZE_PROBE_FLOWS = 512
PUBLIC_FOLDER = "public"


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
    #: DP: the ledger (a `model.privacy.PrivacyLedger`); public pretraining: what it trained on. Both go
    #: into the manifest's `privacy` block (`privacy_block`), not into `to_dict`
    ledger: object | None = None
    public: dict | None = None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        out = asdict(self)
        out.pop("ledger"), out.pop("public")
        return out


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


#: automatic batch: training flows / STEPS_PER_EPOCH, clipped to [MIN_BATCH, MAX_BATCH]
STEPS_PER_EPOCH, MIN_BATCH, MAX_BATCH = 20, 16, 1024
#: expected Poisson batch of DP-SGD when `model.ar.batch_size` is unset (a constant: the private trace's
#: size must not choose it)
DP_BATCH = 64


def batch_size(configured: int | None, n_train: int) -> int:
    """The configured batch (at most the training flows), or the automatic one (`ARConfig.batch_size`)."""
    if configured is not None:
        return max(1, min(configured, n_train))
    return max(1, min(n_train, max(MIN_BATCH, min(MAX_BATCH, n_train // STEPS_PER_EPOCH))))


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) flow indices: a seeded random share of the flow samples is held out, at least
    VALIDATION_FLOOR of them (at most a quarter of the trace): a held-out loss over 14 flows (the demo
    sample's 10%) is too noisy to stop on (records AUC 0.89-0.91 against 0.71-0.78 with 30 held out)."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    held = max(int(round(n * fraction)), min(VALIDATION_FLOOR, n // 4)) if n >= MIN_VALIDATION_FLOWS and fraction > 0 else 0
    order = rng.permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def fit(table: pd.DataFrame, cfg: TraceSynthConfig, folder: Path, progress: ProgressCallback | None = None,
        step_fn=None, batches_fn=None, *, public: pd.DataFrame | None = None,
        public_name: str | None = None) -> ARFit:
    """Tokenise, train, write tokenizer and weights into `folder`.

    Without `public` and `config.privacy`: tokenizer fitted on the trace, early stopping on held-out
    flows. `public`: tokenizer and a pretrained model from the public trace first. `config.privacy`:
    DP-SGD on the trace (needs `public`)."""
    from ..model.ar_trainer import ARSchedule, train_ar
    from ..model.weights import save_weights

    ar, seed, dp = cfg.model.ar, int(cfg.training.seed), cfg.privacy is not None
    if dp and (public is None or cfg.time.window is None):
        from ..model.privacy import AR_NEEDS_PUBLIC, NO_WINDOW

        raise UserError("DP mode would read the private trace outside the privacy budget. "
                        + (AR_NEEDS_PUBLIC if public is None else NO_WINDOW) + ".")
    emit(progress, "prepare", 0, 2, "steps")
    if dp:
        from .private import PREPROCESSING_NOTICE, inside_window

        log.warning(PREPROCESSING_NOTICE)
        table = inside_window(table, cfg)
    flows = FlowTable.from_records(table, cfg.flow_length.max_flow_len)
    if flows.n_flows == 0:
        raise UserError("the trace has no records to fit" + (" inside time.window" if dp else ""))
    time_col = TIME_COLUMN[cfg.kind]
    times = table[time_col].to_numpy(np.float64)
    window = tuple(cfg.time.window) if dp else (float(times.min()), float(times.max()))
    public_flows = None if public is None else public_flows_in(public, cfg, window)
    tokenizer = make_tokenizer(cfg).fit(flows if public_flows is None else public_flows)
    tokens = tokenizer.transform(flows)
    emit(progress, "prepare", 2, 2, "steps")
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_open(folder / TOKENIZER, "w") as fh:
        json.dump(tokenizer.to_state(), fh)
    model = build(cfg, tokenizer, seed)
    pretrained = None if public_flows is None else _pretrain(model, tokenizer.transform(public_flows), cfg,
                                                             folder / PUBLIC_FOLDER, progress)
    if pretrained is not None:
        pretrained.update(name=public_name or "public trace", records=int(len(public)))
    if dp:
        fitted = _fit_private(model, tokenizer, tokens, table, public, pretrained, cfg, folder, progress)
    else:
        train_idx, val_idx = split_validation(len(tokens), ar.validation_fraction, seed)
        train, validation = tokens.subset(train_idx), (tokens.subset(val_idx) if len(val_idx) else None)
        schedule = ARSchedule(max_epochs=ar.max_epochs, patience=ar.patience,
                              batch_size=batch_size(ar.batch_size, len(train)), lr=ar.lr, weight_decay=ar.weight_decay)
        result = train_ar(model, train, validation, schedule, seed=seed, checkpoint_dir=folder / "checkpoints",
                          callback=progress, step_fn=step_fn, batches_fn=batches_fn)
        fitted = ARFit(flows=len(tokens), train_flows=len(train),
                       validation_flows=0 if validation is None else len(validation), records=int(len(table)),
                       records_per_flow=float(tokens.lengths.mean()), window=window, epochs=result.epochs,
                       best_epoch=result.best_epoch, best_validation_nll=result.best_validation,
                       history=result.history, train_s=round(result.train_s, 3), parameters=0)
    save_weights(model, folder / WEIGHTS)
    fitted.parameters = int(sum(p.numel() for p in model.parameters()))
    fitted.public = pretrained
    return fitted


def public_flows_in(public: pd.DataFrame, cfg: TraceSynthConfig, window: tuple[float, float]) -> FlowTable:
    """The public trace's flow samples, their start times inside `window` (the span the model samples in).

    A public trace of the same period (its span inside the window) keeps its times; one from another
    period has its flow starts moved linearly from its own span onto the window, so that the start
    bins and the pretrained time profile cover the window (inter-arrival times are kept)."""
    flows = FlowTable.from_records(public, cfg.flow_length.max_flow_len)
    if flows.n_flows == 0:
        raise UserError("the public trace has no records to fit the tokenizer on; give a public trace with records")
    times = public[TIME_COLUMN[cfg.kind]].to_numpy(np.float64)
    lo, hi = float(times.min()), float(times.max())
    if lo >= window[0] and hi <= window[1]:
        return flows
    start = flows.attributes["flow_start"].to_numpy(np.float64)
    scale = (window[1] - window[0]) / (hi - lo) if hi > lo else 0.0
    flows.attributes["flow_start"] = window[0] + (start - lo) * scale
    log.info("public trace: flow starts moved from its span %.6f,%.6f onto the window %.6f,%.6f", lo, hi, *window)
    return flows


def _pretrain(model, tokens: TokenizedFlows, cfg: TraceSynthConfig, folder: Path, progress) -> dict:
    """Train `model` in place on the public flow samples (no DP: public data costs no budget), with early
    stopping on held-out public samples; resumes from `folder`'s checkpoints."""
    from ..model.ar_trainer import ARSchedule, train_ar

    ar = cfg.model.ar
    seed = int(np.random.SeedSequence([int(cfg.training.seed), _PUBLIC_STREAM]).generate_state(1)[0])
    train_idx, val_idx = split_validation(len(tokens), ar.validation_fraction, seed)
    train, validation = tokens.subset(train_idx), (tokens.subset(val_idx) if len(val_idx) else None)
    schedule = ARSchedule(max_epochs=ar.max_epochs, patience=ar.patience, batch_size=batch_size(ar.batch_size, len(train)),
                          lr=ar.lr, weight_decay=ar.weight_decay)
    log.info("pretraining the ar model on the public trace (%d flow samples, no DP)", len(tokens))
    result = train_ar(model, train, validation, schedule, seed=seed, checkpoint_dir=folder / "checkpoints",
                      callback=progress)
    return {"flows": int(len(tokens)), "epochs": result.epochs, "best_epoch": result.best_epoch,
            "best_validation_nll": result.best_validation}


def dp_epochs(cfg: TraceSynthConfig) -> int:
    """DP epochs on the private trace, fixed in advance (no early stopping on private data): as for
    DoppelGANger's fine-tuned chunks, `training.finetune_fraction` of the schedule (`model.ar.max_epochs`)."""
    return max(1, int(round(cfg.model.ar.max_epochs * cfg.training.finetune_fraction)))


def _fit_private(model, tokenizer: FlowTokenizer, tokens: TokenizedFlows, table: pd.DataFrame,
                 public: pd.DataFrame, pretrained: dict, cfg: TraceSynthConfig, folder: Path, progress) -> ARFit:
    """DP-SGD on every private flow sample from the pretrained `model`, then the generation sizes.

    What the fit records is the released count and post-processing: flow samples = released distinct
    flows x the public trace's samples per flow, records per sample = the mean length of samples the
    trained model draws; no private count, loss or rate is logged or stored."""
    from ..model.ar_private import dp_hooks, plan_ar_privacy
    from ..model.ar_trainer import ARSchedule, train_ar
    from .private import distinct_flows

    ar, seed, epochs = cfg.model.ar, int(cfg.training.seed), dp_epochs(cfg)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _COUNT_STREAM]))
    per_flow = pretrained["flows"] / max(1, distinct_flows(public))
    batch = ar.batch_size or DP_BATCH   # never sized from the private trace
    ledger = plan_ar_privacy(cfg.privacy, distinct_flows(table), len(tokens), per_flow, batch, epochs, rng)
    schedule = ARSchedule(max_epochs=epochs, patience=ar.patience, batch_size=batch, lr=ar.lr,
                          weight_decay=ar.weight_decay)
    result = train_ar(model, tokens, None, schedule, seed=seed, checkpoint_dir=folder / "checkpoints",
                      callback=progress, hide_size=True, **dp_hooks(ledger, len(tokens)))
    history = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in h.items()} for h in result.history]
    samples = int(ledger.noisy_flow_counts[0])
    per_sample = generated_length(model, tokenizer, seed, ar.temperature)
    return ARFit(flows=samples, train_flows=samples, validation_flows=0, records=max(1, int(round(samples * per_sample))),
                 records_per_flow=per_sample, window=tuple(float(w) for w in cfg.time.window), epochs=result.epochs,
                 best_epoch=result.epochs, best_validation_nll=None, history=history,
                 train_s=round(result.train_s, 3), parameters=0, ledger=ledger)


def generated_length(model, tokenizer: FlowTokenizer, seed: int, temperature: float) -> float:
    """Mean records per flow sample of `SIZE_PROBE_FLOWS` headers drawn from the trained model."""
    import torch

    model.eval()
    header, _ = model.sample_header(SIZE_PROBE_FLOWS, torch.Generator().manual_seed(seed % 2**63), temperature)
    lengths = tokenizer.decode_lengths(header.numpy()[:, tokenizer.slot_index("length")],
                                       np.random.default_rng([seed, 0x1E7]))
    return float(lengths.mean())


def privacy_block(cfg: TraceSynthConfig, fitted: ARFit) -> dict | None:
    """The manifest's `privacy` block, as DoppelGANger's (`pipeline.synthesizer`): DP settings, ledger,
    public trace; None for a fit with neither."""
    if fitted.ledger is None and fitted.public is None:
        return None
    return {"dp": fitted.ledger is not None,
            "settings": None if cfg.privacy is None else cfg.privacy.model_dump(mode="json"),
            "ledger": None if fitted.ledger is None else fitted.ledger.to_dict(),
            "public": fitted.public}


@dataclass
class ARGenerator:
    """A fitted model ready to sample (loaded from a run folder)."""

    config: TraceSynthConfig
    tokenizer: FlowTokenizer
    model: object
    window: tuple[float, float]
    records_per_flow: float
    _implied: dict | None = field(default=None, repr=False)

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
        if self._implied is None:   # the same for every batch: built once
            self._implied = {k: (j, torch.from_numpy(t)) for k, (j, t) in self.tokenizer.implied_slots().items()}
        header_t, state = self.model.sample_header(n, gen_t, temp, self._implied)
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
            if kind == "packets":
                columns = {c: records[c].to_numpy().copy() for c in records.columns}
                gen.header_consistency(columns)
                records = pd.DataFrame(columns)
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
        """The autoregressive model: one model over the whole trace; no chunks, no sizing.
        `data.public`: tokenizer and pretraining from it; `config.privacy`: DP-SGD (needs `data.public`)."""
        cfg = self.config
        self.run = run
        resumed = run.start_fit(cfg, data.fingerprint, data.force)
        fitted = fit(data.table, cfg, run.path / FOLDER, progress, public=data.public,   # the module's fit
                     public_name=data.public_name)
        self.block, self._generator = ARBlock(fitted), None
        return ModelFit(config=cfg, resumed=resumed, records=fitted.records, train_s=fitted.train_s,
                        block=self.block, runner="this process", privacy=privacy_block(cfg, fitted))

    def sample(self, target: int, seed: int, progress: ProgressCallback | None, options: GenerationOptions,
               temperature: float | None) -> pd.DataFrame:
        from .sampling import generation_threads

        with generation_threads(options.resolved_threads()):
            return self._loaded().sample(target, seed, progress, temperature)

    def _loaded(self) -> ARGenerator:
        if self._generator is None:
            self._generator = ARGenerator.load(self.config, self.run.path / FOLDER, self.block.fit.to_dict())
        return self._generator
