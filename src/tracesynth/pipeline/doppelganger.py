"""Chunked DoppelGANger (NetShare), the `doppelganger` model behind `Synthesizer` (docs/pipeline.md).

    fit:    sizing -> chunks -> encoders, once -> each chunk's training flows encoded (`FitPlan`) ->
            chunk 0 here, the others fine-tuned from it through the runner (`chunked.ChunkResult`) ->
            a checkpoint per chunk (`ChunkChoice`) -> the manifest's chunks (`ChunkedBlock`)
    sample: every chunk's model, attributes merged by flow tags (`sampling.sample_chunks`)

Public pretraining and differential privacy (docs/privacy.md): with a public trace, the encoders
(ranges, categories, word2vec) are fitted on it, one model is pretrained on all of it without DP, and
every private chunk (chunk 0 too) is fine-tuned from that model. With `config.privacy` (checked by
`Synthesizer.fit` first), the private records are cut to the window, the size is released (one total at
sensitivity 1, shares over chunks from the public trace or a noisy histogram), sigma is calibrated for
the whole schedule (`plan_privacy`), every private chunk trains with DP-SGD, and the generation sizes
come from the released sizes and the trained models only; no checkpoint is selected on private data,
and no count of private values is logged (`pipeline/private.py`). The ledger goes into the manifest's
`privacy` block.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from ..config import TraceSynthConfig
from ..errors import UserError
from ..flows.sizing import Sizing, resolve_sizing
from ..progress import ProgressCallback, emit
from ..runtime import GenerationOptions
from . import chunked, generation, sampling, selection
from .models import FitData, ModelFit
from .rundir import RunDir
from .runners import LocalRunner, default_workers

log = logging.getLogger(__name__)

#: run sub-folder of the model pretrained on the public trace
PUBLIC_DIR = "public"
#: SeedSequence entropy words that keep the count release and pretraining apart from chunk seeds
_COUNT_RELEASE_STREAM = 0xC0DE
_PUBLIC_SEED_STREAM = 0x9B11C
#: generated flows per chunk from which a DP run estimates records per flow (post-processing)
_SIZE_PROBE_FLOWS = 512


# ---- what flows between the stages of a fit ----------------------------------------------------------
@dataclass
class ChunkData:
    """One chunk's training input (`prepare`). In DP mode `release_sizes` replaces the three sizes by
    released ones before they reach the manifest."""

    index: int
    window: tuple[float, float]
    records: int
    flows: int                      # flow samples trained on
    records_per_flow: float
    data_path: Path                 # encoded flows (chunked.save_encoded)
    holdout: selection.Holdout | None = None


@dataclass
class PublicData:
    """The public trace's encoded flows, which the model every chunk fine-tunes from is pretrained on."""

    name: str | None
    flows: int
    records: int
    data_path: Path


@dataclass
class FitPlan:
    """Everything training and selection read: the encoded chunks, the fitted encoder, the training
    size, the public pretraining set and the DP ledger (`model.privacy.PrivacyLedger`), if any."""

    chunks: list[ChunkData]
    encoder: object                 # encoders.flow_encoder.FlowEncoder
    records: int
    public: PublicData | None = None
    ledger: object | None = None

    @property
    def attribute_spans(self):
        return self.encoder.attribute_spans

    @property
    def feature_spans(self):
        return self.encoder.feature_spans


@dataclass
class ChunkChoice:
    """The weights a chunk generates with: a selected checkpoint's model, or the final weights."""

    weights: str                    # relative to the run folder
    epoch: int
    scores: dict[int, float] = field(default_factory=dict)   # selection score per checkpoint epoch


@dataclass
class ChunkEntry:
    """One chunk in the manifest."""

    index: int
    window: tuple[float, float]
    records: int
    flows: int
    records_per_flow: float
    weights: str
    epochs: int = 0
    init_from: int | None = None
    selected_epoch: int = 0
    selection_scores: dict[int, float] = field(default_factory=dict)
    checkpoints: dict[int, str] = field(default_factory=dict)
    train_s: float = 0.0

    def to_dict(self) -> dict:
        return {"index": self.index, "window": list(self.window), "records": self.records, "flows": self.flows,
                "records_per_flow": self.records_per_flow, "epochs": self.epochs, "init_from": self.init_from,
                "weights": self.weights, "selected_epoch": self.selected_epoch,
                "selection_scores": {str(k): v for k, v in self.selection_scores.items()},
                "checkpoints": {str(k): v for k, v in self.checkpoints.items()}, "train_s": self.train_s}

    @classmethod
    def from_dict(cls, data: dict) -> "ChunkEntry":
        return cls(index=int(data["index"]), window=(float(data["window"][0]), float(data["window"][1])),
                   records=int(data["records"]), flows=int(data.get("flows", 0)),
                   records_per_flow=float(data["records_per_flow"]), weights=str(data["weights"]),
                   epochs=int(data.get("epochs", 0)), init_from=data.get("init_from"),
                   selected_epoch=int(data.get("selected_epoch", 0)),
                   selection_scores={int(k): float(v) for k, v in (data.get("selection_scores") or {}).items()},
                   checkpoints={int(k): str(v) for k, v in (data.get("checkpoints") or {}).items()},
                   train_s=float(data.get("train_s", 0.0)))


@dataclass
class ChunkedBlock:
    """The doppelganger model's keys of the manifest: its chunks and the sizing fit chose."""

    chunks: list[ChunkEntry]
    sizing: Sizing | None = None

    def to_dict(self) -> dict:
        out = {"chunks": [c.to_dict() for c in self.chunks]}
        if self.sizing is not None:
            out["sizing"] = self.sizing.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ChunkedBlock":
        return cls([ChunkEntry.from_dict(c) for c in data["chunks"]], _sizing(data.get("sizing")))


# ---- the model ------------------------------------------------------------------------------------------
class ChunkedDoppelGANger:
    """Per-chunk DoppelGANger models over time windows of the trace (NETSHARE.md sections 3-6)."""

    kind: ClassVar[str] = "doppelganger"
    block_type: ClassVar[type] = ChunkedBlock

    def __init__(self, config: TraceSynthConfig, run: RunDir | None = None, encoder=None,
                 block: ChunkedBlock | None = None):
        self.config = config
        self.run = run
        self.encoder = encoder
        self.block = block
        self._models: dict[int, object] = {}

    @property
    def sizing(self) -> Sizing | None:
        """The chunk count and batch size fit chose (or took from the config), with the figures it used."""
        return None if self.block is None else self.block.sizing

    @classmethod
    def load(cls, config: TraceSynthConfig, run: RunDir, block: ChunkedBlock) -> "ChunkedDoppelGANger":
        from ..encoders.flow_encoder import FlowEncoder

        try:
            encoder = FlowEncoder.load(run.encoder_dir)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"{run.encoder_dir}: fitted encoders are missing or corrupt ({exc}); rerun "
                            "`tracesynth fit ... --force`") from None
        return cls(config, run, encoder, block)

    # ---- fit --------------------------------------------------------------------------------------------
    def fit(self, data: FitData, run: RunDir, progress: ProgressCallback | None) -> ModelFit:
        """Train every chunk; resumes an unfinished fit of the same config and input in `run`."""
        cfg, sizing = resolve_sizing(data.table, self.config)
        self.config, self.run = cfg, run
        log.info("sizing: %s", sizing.describe())
        resumed = run.start_fit(cfg, data.fingerprint, data.force)
        plan = self._prepare(data.table, progress, data.public, data.public_name)
        runner = data.runner or LocalRunner(default_workers(cfg.chunking.n_chunks))
        results = self._train(plan, runner, progress)
        chosen = self._select(plan, results, progress)
        if plan.ledger is not None:
            plan = _release_sizes(plan, chosen, self._sized_model)
        self.encoder, self._models = plan.encoder, {}
        self.block = ChunkedBlock(_chunk_entries(plan, results, chosen), sizing)
        return ModelFit(config=cfg, resumed=resumed, records=plan.records, train_s=sum(r.train_s for r in results),
                        block=self.block, runner=runner.describe(), privacy=_privacy_block(cfg, plan))

    def _prepare(self, table: pd.DataFrame, progress: ProgressCallback | None,
                 public: pd.DataFrame | None = None, public_name: str | None = None) -> FitPlan:
        """Chunk, fit the encoder once (on the whole trace, or on the public one), encode each chunk's
        training flows (and the public trace's, for pretraining)."""
        from ..encoders.flow_encoder import FlowEncoder
        from ..flows.chunking import split_chunks

        cfg = self.config
        emit(progress, "prepare", 0, 3, "steps")
        if cfg.privacy is not None:  # DP: cut to the window and say so, unconditionally and without counts
            from .private import PREPROCESSING_NOTICE, inside_window

            log.warning(PREPROCESSING_NOTICE)
            table = inside_window(table, cfg)
        chunks = split_chunks(table, cfg)
        public_chunks = None if public is None else split_chunks(public, _public_config(cfg))
        encoder = FlowEncoder(cfg).fit(public_chunks or chunks)
        guarded = public is not None or cfg.privacy is not None
        if guarded:  # private values the public (or configured) encoders never saw: nearest known value
            _tolerate_unseen(encoder)
        encoder.save(self.run.encoder_dir)
        emit(progress, "prepare", 1, 3, "steps")
        holdout = selection.use_holdout(cfg)
        prepared = []
        for chunk in chunks:
            flows, held = selection.split_holdout(chunk, cfg, holdout)
            if guarded:
                flows = _map_unseen_categories(flows, encoder)
            chunk_dir = self.run.chunk_dir(chunk.index)
            chunk_dir.mkdir(parents=True, exist_ok=True)
            data_path = chunk_dir / "train.npz"
            chunked.save_encoded(data_path, encoder.transform(flows, chunk.window))
            prepared.append(ChunkData(
                index=chunk.index, window=(float(chunk.window[0]), float(chunk.window[1])),
                records=int(len(chunk.records)), flows=int(flows.n_flows),
                records_per_flow=float(np.mean(flows.lengths)) if flows.n_flows else 1.0, data_path=data_path,
                holdout=held))
        pre = None if public is None else self._prepare_public(public_chunks, encoder, public_name)
        if cfg.privacy is not None and pre is None:   # sizing chose nothing from private data: check here
            _check_size(prepared[0].flows, cfg)
        ledger = None
        if cfg.privacy is not None:
            from .private import flow_counts

            ledger = self._plan_privacy(flow_counts(table, chunks, public, public_chunks), pre is not None)
        emit(progress, "prepare", 3, 3, "steps")
        return FitPlan(chunks=prepared, encoder=encoder, records=int(len(table)), public=pre, ledger=ledger)

    def _prepare_public(self, public_chunks: list, encoder, name: str | None) -> PublicData:
        """All public chunks encoded (each in its own window, with its tags) as one pretraining set."""
        from ..encoders.flow_encoder import EncodedFlows

        parts = [encoder.transform(c.flows, c.window) for c in public_chunks if c.flows.n_flows]
        encoded = EncodedFlows(*(np.concatenate([getattr(p, k) for p in parts])
                                 for k in ("attributes", "features", "gen_flags", "lengths")))
        folder = self.run.path / PUBLIC_DIR
        folder.mkdir(parents=True, exist_ok=True)
        chunked.save_encoded(folder / "train.npz", encoded)
        return PublicData(name=name, flows=int(len(encoded)), records=int(sum(len(c.records) for c in public_chunks)),
                          data_path=folder / "train.npz")

    def _plan_privacy(self, counts, pretrained: bool):
        """Release the sizes (`counts`: a `model.privacy.FlowCounts`) and calibrate sigma for the
        schedule the per-chunk estimates allow.

        Chunk 0 of a naive run always trains (for `epochs`); a fine-tuned chunk (every chunk after public
        pretraining) trains for `finetune_epochs` when its estimated count is at least 2.
        """
        from ..model.privacy import plan_privacy

        cfg = self.config
        full, short = cfg.training.epochs, chunked.finetune_epochs(cfg)

        def epochs(noisy) -> list[int]:
            return [full if (c == 0 and not pretrained) else (short if n >= 2 else 0) for c, n in enumerate(noisy)]

        rng = np.random.default_rng(np.random.SeedSequence([cfg.training.seed, _COUNT_RELEASE_STREAM]))
        return plan_privacy(cfg.privacy, counts, cfg.training.batch_size, epochs, cfg.training.critic_steps, rng)

    def _train(self, plan: FitPlan, runner, progress: ProgressCallback | None) -> list[chunked.ChunkResult]:
        """Naive: chunk 0 here (with progress), the others fine-tuned from it through the runner.
        With a public trace: the public model here, then every chunk fine-tuned from it."""
        first = None
        if plan.public is not None:
            base = chunked.train_chunk(self._public_job(plan), progress)
            init, init_from, rest = base.weights, chunked.PUBLIC_MODEL, plan.chunks
        else:
            first = chunked.train_chunk(self._job(plan.chunks[0], plan, None, 0), progress)
            init, init_from, rest = first.weights, 0, plan.chunks[1:]
        jobs = [self._job(c, plan, init, init_from) for c in rest if _trains(c, plan.ledger)]
        emit(progress, "finetune", 0, len(jobs), "chunks", runner=runner.describe())
        done = runner.map(chunked.train_chunk, jobs)
        emit(progress, "finetune", len(jobs), len(jobs), "chunks")
        by_index = {r.index: r for r in ([first] if first else []) + list(done)}
        # a chunk without training keeps its starting model (and outputs few or no records)
        return [by_index.get(c.index) or chunked.ChunkResult(index=c.index, weights=init, init_from=init_from)
                for c in plan.chunks]

    def _job(self, chunk: ChunkData, plan: FitPlan, init: str | None, init_from: int) -> chunked.ChunkJob:
        cfg, ledger = self.config, plan.ledger
        config = cfg.model_dump(mode="json")
        flows = chunk.flows if ledger is None else min(chunk.flows, ledger.noisy_flow_counts[chunk.index])
        # a small fine-tuned chunk trains with batches as large as it has flows (at least 2, for BatchNorm)
        config["training"]["batch_size"] = max(2, min(cfg.training.batch_size, flows))
        epochs = cfg.training.epochs if init is None else chunked.finetune_epochs(cfg)
        if ledger is not None:  # the schedule the accountant composed
            epochs = ledger.epochs[chunk.index]
        return chunked.ChunkJob(
            index=chunk.index, config=config, attribute_spans=chunked.spans_to_plain(plan.attribute_spans),
            feature_spans=chunked.spans_to_plain(plan.feature_spans), data_path=str(chunk.data_path),
            chunk_dir=str(self.run.chunk_dir(chunk.index)), epochs=epochs,
            seed=chunked.chunk_seed(cfg.training.seed, chunk.index), init_weights=init,
            privacy=None if ledger is None else ledger.to_dict(), init_from=init_from)

    def _public_job(self, plan: FitPlan) -> chunked.ChunkJob:
        """Pretraining on the public trace: the full schedule, no DP (public data costs no budget)."""
        cfg, pub = self.config, plan.public
        config = cfg.model_dump(mode="json")
        config["training"]["batch_size"] = max(2, min(cfg.training.batch_size, pub.flows))
        return chunked.ChunkJob(
            index=chunked.PUBLIC_MODEL, config=config, attribute_spans=chunked.spans_to_plain(plan.attribute_spans),
            feature_spans=chunked.spans_to_plain(plan.feature_spans), data_path=str(pub.data_path),
            chunk_dir=str(self.run.path / PUBLIC_DIR), epochs=cfg.training.epochs,
            seed=chunked.chunk_seed(cfg.training.seed, _PUBLIC_SEED_STREAM))

    def _sized_model(self, plan: FitPlan, weights: str):
        model = chunked.build_model(self.config, plan.attribute_spans, plan.feature_spans)
        chunked.load_weights(model, self.run.path / weights, "model weights")
        return model

    def _select(self, plan: FitPlan, results: list[chunked.ChunkResult],
                progress: ProgressCallback | None) -> dict[int, ChunkChoice]:
        """Per chunk: the weights file to use (a selected checkpoint's model, or the final weights)."""
        chosen = {}
        for chunk, result in zip(plan.chunks, results):
            chosen[result.index] = ChunkChoice(_relative(result.weights, self.run.path), result.epochs)
            if chunk.holdout is None or len(result.checkpoints) < 2 or chunk.flows == 0:
                continue
            chosen[result.index] = self._score_checkpoints(plan, chunk, result)
            emit(progress, "select", result.index + 1, len(results), "chunks",
                 chunk=result.index, epoch=chosen[result.index].epoch)
        return chosen

    def _score_checkpoints(self, plan: FitPlan, chunk: ChunkData, result: chunked.ChunkResult) -> ChunkChoice:
        from ..model.checkpoints import load_checkpoint

        real = chunk.holdout.records
        model = chunked.build_model(self.config, plan.attribute_spans, plan.feature_spans)
        scores = {}
        for epoch, path in sorted(result.checkpoints.items()):
            model.load_state_dict(load_checkpoint(path)["model"])
            scores[epoch] = selection.config_distance(real, self._holdout_sample(model, plan.encoder, chunk, len(real)),
                                                      self.config)
        best = selection.pick_checkpoint(scores)
        model.load_state_dict(load_checkpoint(result.checkpoints[best])["model"])
        path = self.run.chunk_dir(result.index) / "selected.pt"
        chunked.save_weights(model, path)
        return ChunkChoice(_relative(path, self.run.path), best, {int(k): float(v) for k, v in scores.items()})

    def _holdout_sample(self, model, encoder, chunk: ChunkData, n_records: int) -> pd.DataFrame:
        """Records a checkpoint generates for its chunk (field values only: times are not scored)."""
        import torch

        n = max(64, int(np.ceil(n_records / max(chunk.records_per_flow, 1.0))))
        attrs, rows, lengths = model.generate(n, generator=torch.Generator().manual_seed(self.config.training.seed))
        records = sampling.decode_records(encoder, self.config.kind, attrs, rows, lengths, chunk.window, True)
        return records.drop(columns="_flow")

    # ---- sample ---------------------------------------------------------------------------------------
    def sample(self, target: int, seed: int, progress: ProgressCallback | None, options: GenerationOptions,
               temperature: float | None) -> pd.DataFrame:
        """Exactly `target` records over all chunks, in proportion to the real chunks' records."""
        if temperature is not None:
            raise UserError("--temperature applies to the ar model only; this run is a doppelganger model")
        plans = [sampling.ChunkPlan(index=c.index, window=c.window, real_records=c.records,
                                    records_per_flow=c.records_per_flow, model=self._model(c))
                 for c in self.block.chunks]
        layout = attribute_layout(self.encoder, len(plans))
        return sampling.sample_chunks(plans, self.encoder, layout, self.config.kind, target, seed, progress, options)

    def _model(self, chunk: ChunkEntry):
        if chunk.index not in self._models:
            model = chunked.build_model(self.config, self.encoder.attribute_spans, self.encoder.feature_spans)
            chunked.load_weights(model, self.run.path / chunk.weights, f"model weights of chunk {chunk.index}")
            self._models[chunk.index] = model
        return self._models[chunk.index]


# ---- helpers --------------------------------------------------------------------------------------------
def attribute_layout(encoder, n_chunks: int) -> generation.AttributeLayout | None:
    """Find flow_start and the tag one-hots in the encoded attribute row.

    The encoder lays attributes out as [srcip, dstip, srcport, dstport, proto, flow_start, starts_here,
    in_chunk_0..N-1]; the tags are the last 1 + N two-way spans, flow_start the span before them.
    """
    spans = encoder.attribute_spans
    if not getattr(encoder, "tag_columns_", True):
        return None                                   # unchunked flows carry no tags: nothing to merge
    offsets = np.cumsum([0] + [s.dim for s in spans])
    n_tags = 1 + n_chunks
    if len(spans) < n_tags + 1 or any(s.dim != 2 or s.activation != "softmax" for s in spans[-n_tags:]):
        raise UserError(f"the fitted encoder has no flow tags for {n_chunks} chunks; refit the run")
    first_tag = len(spans) - n_tags
    pairs = [(int(offsets[i]), int(offsets[i] + 1)) for i in range(first_tag, len(spans))]
    return generation.AttributeLayout(flow_start=int(offsets[first_tag - 1]), starts_here=pairs[0],
                                      in_chunk=tuple(pairs[1:]))


def _sizing(data: dict | None) -> Sizing | None:
    """The manifest's `sizing` block (a record of what fit chose; runs before it, or with other fields,
    still load without it)."""
    names = {f.name for f in fields(Sizing)}
    if not isinstance(data, dict) or set(data) != names:
        return None
    return Sizing(**data)


def _public_config(cfg: TraceSynthConfig) -> TraceSynthConfig:
    """The config for chunking the public trace: its own time span (it comes from another period)."""
    from ..config import config_from_dict

    data = cfg.model_dump(mode="json")
    data["time"]["window"] = None
    return config_from_dict(data, "public-trace config")


def _tolerate_unseen(encoder) -> None:
    """Ports/protocols the public (or pretrained) word2vec model lacks map to the nearest known value,
    instead of failing on (and so revealing) a private value."""
    from ..encoders.word2vec import Word2VecEncoder

    for enc in [*encoder.attribute_encoders_.values(), *encoder.feature_encoders_.values()]:
        if isinstance(enc, Word2VecEncoder):
            enc.unknown = "nearest_value"


def _map_unseen_categories(flows, encoder):
    """Private categorical values outside the known choices -> the nearest choice (numbers) or the
    first choice (labels), so that encoding never fails on a private value."""
    from ..encoders.categorical import CategoricalEncoder

    for frame_name, encoders in (("attributes", encoder.attribute_encoders_), ("series", encoder.feature_encoders_)):
        frame = getattr(flows, frame_name)
        for name, enc in encoders.items():
            if isinstance(enc, CategoricalEncoder) and name in frame.columns:
                frame[name] = _nearest_choice(frame[name].to_numpy(), enc.choices_)
    return flows


def _nearest_choice(values: np.ndarray, choices: list) -> np.ndarray:
    known = pd.Index(choices).get_indexer(values) >= 0
    if known.all():
        return values
    options = np.asarray(choices)
    if values.dtype.kind in "iuf" and options.dtype.kind in "iuf":
        ordered = np.sort(options.astype(np.float64))
        v = values.astype(np.float64)
        right = np.clip(np.searchsorted(ordered, v), 0, len(ordered) - 1)
        left = np.clip(right - 1, 0, len(ordered) - 1)
        pick = np.where(np.abs(ordered[left] - v) <= np.abs(ordered[right] - v), ordered[left], ordered[right])
        return np.where(known, values, pick.astype(values.dtype))
    out = values.astype(object).copy()
    out[~known] = choices[0]
    return out


def _trains(chunk: ChunkData, ledger) -> bool:
    """Whether a fine-tuned chunk trains: >= 2 flows (BatchNorm), and in DP mode a schedule in the ledger."""
    if ledger is not None and ledger.epochs[chunk.index] == 0:
        return False
    return chunk.flows >= 2


def _release_sizes(plan: FitPlan, chosen: dict[int, ChunkChoice], load_model) -> FitPlan:
    """DP generation sizes, all post-processing, so the manifest holds no private count: records per
    flow sample = the mean length of the samples the trained model generates; flow samples per chunk =
    the released total x the chunk's ratio: the public trace's samples per flow, or (no public trace)
    the noisy histogram's share x the samples per flow the models' `starts_here` tags imply."""
    import torch

    from ..model.privacy import samples_per_flow

    ledger, seed = plan.ledger, 0
    layout = attribute_layout(plan.encoder, len(plan.chunks))
    per_flow, starting = [], []
    for chunk in plan.chunks:
        model = load_model(plan, chosen[chunk.index].weights)
        attrs, _, lengths = model.generate(_SIZE_PROBE_FLOWS, generator=torch.Generator().manual_seed(seed))
        per_flow.append(float(np.mean(lengths)))
        starting.append(1.0 if layout is None else float(np.mean(generation.tag_set(np.asarray(attrs),
                                                                                     layout.starts_here))))
    flows = list(ledger.noisy_flow_counts)
    if ledger.size_shares != "public trace":
        kappa = samples_per_flow(ledger.shares, starting, len(plan.chunks))
        flows = [max(1, int(round(ledger.noisy_flow_total * share * kappa))) for share in ledger.shares]
    chunks = [replace(c, flows=int(n), records_per_flow=r, records=int(round(n * r)))
              for c, n, r in zip(plan.chunks, flows, per_flow)]
    return replace(plan, chunks=chunks, records=int(sum(c.records for c in chunks)))


def _check_size(n_flows: int, cfg: TraceSynthConfig) -> None:
    batch = cfg.training.batch_size
    if n_flows < batch:
        raise UserError(f"trace too small: chunk 0 has {n_flows} flow samples, fewer than one batch "
                        f"(training.batch_size = {batch}); set fewer chunks (--chunks) or a smaller "
                        "training.batch_size in the config, or use a longer trace")


def _relative(path, root: Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _privacy_block(cfg: TraceSynthConfig, plan: FitPlan) -> dict | None:
    """What produced the run's privacy guarantee: the DP settings, the ledger (achieved epsilon, delta,
    sigma, C, q and steps per chunk, releases per step, accountant, count release) and the public trace."""
    ledger, pub = plan.ledger, plan.public
    if ledger is None and pub is None:
        return None
    return {"dp": ledger is not None,
            "settings": None if cfg.privacy is None else cfg.privacy.model_dump(mode="json"),
            "ledger": None if ledger is None else ledger.to_dict(),
            "public": None if pub is None else {"name": pub.name, "flows": pub.flows,
                                                "records": pub.records, "epochs": cfg.training.epochs}}


def _chunk_entries(plan: FitPlan, results: list[chunked.ChunkResult],
                   chosen: dict[int, ChunkChoice]) -> list[ChunkEntry]:
    entries = []
    for chunk, result in zip(plan.chunks, results):
        pick = chosen[result.index]
        entries.append(ChunkEntry(
            index=chunk.index, window=chunk.window, records=chunk.records, flows=chunk.flows,
            records_per_flow=chunk.records_per_flow, epochs=result.epochs, init_from=result.init_from,
            weights=pick.weights, selected_epoch=pick.epoch, selection_scores=pick.scores,
            checkpoints=dict(result.checkpoints), train_s=round(result.train_s, 3)))
    return entries
