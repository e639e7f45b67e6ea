"""`Synthesizer`: the Python API over the whole pipeline.

    synth = Synthesizer(config).fit(table)          # chunks, encoders, chunk 0 + fine-tunes, selection
    synth.save("run")                               # run directory (rundir.py); manifest written last
    table = Synthesizer.load("run").sample(count=10_000, seed=1)

`fit` works inside a run folder (a temporary one unless `run_dir` is given) so that an interrupted
fit resumes from the trainer's checkpoints.

Public pretraining and differential privacy (docs/privacy.md):

    Synthesizer(config).fit(private, public=public_table)   # config.privacy set: DP-SGD fine-tunes

With `public`, the encoders (ranges, categories, word2vec) are fitted on the public trace, one model is
pretrained on all of it without DP, and every private chunk (chunk 0 too) is fine-tuned from that model.
With `config.privacy`, `check_dp_config` first refuses any setting that would read the private trace,
the private records are cut to the window, the size is released (one total at sensitivity 1, shares over
chunks from the public trace or a noisy histogram), sigma is calibrated for the whole schedule
(`plan_privacy`), every private chunk trains with DP-SGD, and the generation sizes come from the
released sizes and the trained models only; no checkpoint is selected on private data, and no count of
private values is logged (`pipeline/private.py`). The ledger
goes into the manifest's `privacy` block.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import TraceSynthConfig
from ..errors import UserError
from ..progress import ProgressCallback, emit
from ..schema import TIME_COLUMN, table_kind
from . import chunked, generation, sampling, selection
from .rundir import RunDir, config_hash, table_fingerprint
from ..flows.sizing import Sizing, resolve_sizing
from .runners import LocalRunner, default_workers

log = logging.getLogger(__name__)

#: run sub-folder of the model pretrained on the public trace
PUBLIC_DIR = "public"
#: SeedSequence entropy words that keep the count release and pretraining apart from chunk seeds
_COUNT_RELEASE_STREAM = 0xC0DE
_PUBLIC_SEED_STREAM = 0x9B11C
#: generated flows per chunk from which a DP run estimates records per flow (post-processing)
_SIZE_PROBE_FLOWS = 512


class Synthesizer:
    """Fit per-chunk DoppelGANger models on a canonical table and sample synthetic tables."""

    def __init__(self, config: TraceSynthConfig):
        self.config = config
        self.run: RunDir | None = None
        self.manifest: dict | None = None
        self.sizing: Sizing | None = None
        self._encoder = None
        self._models: dict[int, object] = {}

    # ---- fit ------------------------------------------------------------------------------------
    def fit(self, table: pd.DataFrame, progress: ProgressCallback | None = None, *, run_dir=None,
            runner=None, force: bool = False, input_name: str | None = None,
            public: pd.DataFrame | None = None, public_name: str | None = None) -> "Synthesizer":
        """Train every chunk; resumes an unfinished fit of the same config and input in `run_dir`.

        `public`: a public trace of the same kind to fit the encoders on and pretrain on (no DP) before
        fine-tuning every chunk on `table`; read from `config.privacy.public_trace` when that is set.
        """
        cfg = self.config
        _check_kind(table, cfg, input_name)
        public, public_name = _public_table(cfg, public, public_name)
        if public is not None:
            _check_kind(public, cfg, public_name)
        if cfg.privacy is not None:
            from ..model.privacy import check_dp_config

            check_dp_config(cfg, public_name if public is not None else None)
        if cfg.model.kind == "ar":
            return self._fit_ar(table, progress, run_dir, force, input_name, public, public_name)
        cfg, self.sizing = resolve_sizing(table, cfg)
        self.config = cfg
        log.info("sizing: %s", self.sizing.describe())
        t0 = time.perf_counter()
        self.run = RunDir(run_dir or tempfile.mkdtemp(prefix="tracesynth-run-"))
        fingerprint = table_fingerprint(table) + ("" if public is None else "+" + table_fingerprint(public))
        resumed = self.run.prepare_fit(config_hash(cfg), fingerprint, force)
        self.run.write_config(cfg)
        prepared = self._prepare(table, progress, public, public_name)
        runner = runner or LocalRunner(default_workers(cfg.chunking.n_chunks))
        results = self._train(prepared, runner, progress)
        chosen = self._select(prepared, results, progress)
        if prepared["ledger"] is not None:
            _release_sizes(prepared, chosen, self._sized_model)
        self.manifest = _manifest(cfg, prepared, results, chosen, fingerprint, input_name, runner, resumed,
                                  time.perf_counter() - t0)
        self.manifest["sizing"] = self.sizing.to_dict()
        self._models = {}
        return self

    def _fit_ar(self, table: pd.DataFrame, progress, run_dir, force: bool, input_name: str | None,
                public: pd.DataFrame | None = None, public_name: str | None = None) -> "Synthesizer":
        """The autoregressive model: one model over the whole trace (pipeline/ar.py); no chunks, no sizing.
        `public`: tokenizer and pretraining from it; `config.privacy`: DP-SGD (needs `public`)."""
        from . import ar

        cfg = self.config
        t0 = time.perf_counter()
        self.run = RunDir(run_dir or tempfile.mkdtemp(prefix="tracesynth-run-"))
        fingerprint = table_fingerprint(table) + ("" if public is None else "+" + table_fingerprint(public))
        resumed = self.run.prepare_fit(config_hash(cfg), fingerprint, force)
        self.run.write_config(cfg)
        fitted = ar.fit(table, cfg, self.run.path / ar.FOLDER, progress, public=public, public_name=public_name)
        self.sizing = None
        self.manifest = {"config_hash": config_hash(cfg), "model": "ar",
                         "input": {"name": input_name, "fingerprint": fingerprint, "records": fitted.records,
                                   "kind": cfg.kind},
                         "chunks": [], "ar": fitted.to_dict(), "runner": "this process", "resumed": resumed,
                         "privacy": ar.privacy_block(cfg, fitted),
                         "timings": {"fit_s": round(time.perf_counter() - t0, 3), "train_s": fitted.train_s}}
        return self

    def _prepare(self, table: pd.DataFrame, progress: ProgressCallback | None,
                 public: pd.DataFrame | None = None, public_name: str | None = None) -> dict:
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
        self._encoder = encoder
        emit(progress, "prepare", 1, 3, "steps")
        holdout = _use_holdout(cfg)
        info = []
        for chunk in chunks:
            flows, held = _split_holdout(chunk, cfg, holdout)
            if guarded:
                flows = _map_unseen_categories(flows, encoder)
            encoded = encoder.transform(flows, chunk.window)
            chunk_dir = self.run.chunk_dir(chunk.index)
            chunk_dir.mkdir(parents=True, exist_ok=True)
            data_path = chunk_dir / "train.npz"
            chunked.save_encoded(data_path, encoded)
            info.append({"index": chunk.index, "window": [float(w) for w in chunk.window],
                         "records": int(len(chunk.records)), "flows": int(flows.n_flows),
                         "records_per_flow": float(np.mean(flows.lengths)) if flows.n_flows else 1.0,
                         "data_path": str(data_path), "holdout": held})
        pre = None if public is None else self._prepare_public(public_chunks, encoder, public_name)
        if cfg.privacy is not None and pre is None:   # sizing chose nothing from private data: check here
            _check_size(info[0]["flows"], cfg)
        ledger = None
        if cfg.privacy is not None:
            from .private import flow_counts

            ledger = self._plan_privacy(flow_counts(table, chunks, public, public_chunks), pre is not None)
        emit(progress, "prepare", 3, 3, "steps")
        return {"chunks": info, "encoder": encoder, "attribute_spans": encoder.attribute_spans,
                "feature_spans": encoder.feature_spans, "records": int(len(table)), "public": pre,
                "ledger": ledger}

    def _prepare_public(self, public_chunks: list, encoder, name: str | None) -> dict:
        """All public chunks encoded (each in its own window, with its tags) as one pretraining set."""
        from ..encoders.flow_encoder import EncodedFlows

        parts = [encoder.transform(c.flows, c.window) for c in public_chunks if c.flows.n_flows]
        encoded = EncodedFlows(*(np.concatenate([getattr(p, k) for p in parts])
                                 for k in ("attributes", "features", "gen_flags", "lengths")))
        folder = self.run.path / PUBLIC_DIR
        folder.mkdir(parents=True, exist_ok=True)
        chunked.save_encoded(folder / "train.npz", encoded)
        return {"name": name, "flows": int(len(encoded)), "records": int(sum(len(c.records) for c in public_chunks)),
                "data_path": str(folder / "train.npz")}

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

    def _train(self, prepared: dict, runner, progress: ProgressCallback | None) -> list[chunked.ChunkResult]:
        """Naive: chunk 0 here (with progress), the others fine-tuned from it through the runner.
        With a public trace: the public model here, then every chunk fine-tuned from it."""
        chunks, ledger = prepared["chunks"], prepared["ledger"]
        first = None
        if prepared["public"] is not None:
            base = chunked.train_chunk(self._public_job(prepared), progress)
            init, init_from, rest = base.weights, chunked.PUBLIC_MODEL, chunks
        else:
            first = chunked.train_chunk(self._job(chunks[0], prepared, None, 0), progress)
            init, init_from, rest = first.weights, 0, chunks[1:]
        jobs = [self._job(c, prepared, init, init_from) for c in rest if _trains(c, ledger)]
        emit(progress, "finetune", 0, len(jobs), "chunks", runner=runner.describe())
        done = runner.map(chunked.train_chunk, jobs)
        emit(progress, "finetune", len(jobs), len(jobs), "chunks")
        by_index = {r.index: r for r in ([first] if first else []) + list(done)}
        # a chunk without training keeps its starting model (and outputs few or no records)
        return [by_index.get(c["index"]) or chunked.ChunkResult(index=c["index"], weights=init, init_from=init_from)
                for c in chunks]

    def _job(self, chunk: dict, prepared: dict, init: str | None, init_from: int) -> chunked.ChunkJob:
        cfg, ledger = self.config, prepared["ledger"]
        config = cfg.model_dump(mode="json")
        flows = chunk["flows"] if ledger is None else min(chunk["flows"], ledger.noisy_flow_counts[chunk["index"]])
        # a small fine-tuned chunk trains with batches as large as it has flows (at least 2, for BatchNorm)
        config["training"]["batch_size"] = max(2, min(cfg.training.batch_size, flows))
        epochs = cfg.training.epochs if init is None else chunked.finetune_epochs(cfg)
        if ledger is not None:  # the schedule the accountant composed
            epochs = ledger.epochs[chunk["index"]]
        return chunked.ChunkJob(
            index=chunk["index"], config=config,
            attribute_spans=chunked.spans_to_plain(prepared["attribute_spans"]),
            feature_spans=chunked.spans_to_plain(prepared["feature_spans"]),
            data_path=chunk["data_path"], chunk_dir=str(self.run.chunk_dir(chunk["index"])),
            epochs=epochs, seed=chunked.chunk_seed(cfg.training.seed, chunk["index"]), init_weights=init,
            privacy=None if ledger is None else ledger.to_dict(), init_from=init_from)

    def _public_job(self, prepared: dict) -> chunked.ChunkJob:
        """Pretraining on the public trace: the full schedule, no DP (public data costs no budget)."""
        cfg, pub = self.config, prepared["public"]
        config = cfg.model_dump(mode="json")
        config["training"]["batch_size"] = max(2, min(cfg.training.batch_size, pub["flows"]))
        return chunked.ChunkJob(
            index=chunked.PUBLIC_MODEL, config=config,
            attribute_spans=chunked.spans_to_plain(prepared["attribute_spans"]),
            feature_spans=chunked.spans_to_plain(prepared["feature_spans"]),
            data_path=pub["data_path"], chunk_dir=str(self.run.path / PUBLIC_DIR), epochs=cfg.training.epochs,
            seed=chunked.chunk_seed(cfg.training.seed, _PUBLIC_SEED_STREAM))

    def _sized_model(self, prepared: dict, weights: str):
        model = chunked.build_model(self.config, prepared["attribute_spans"], prepared["feature_spans"])
        chunked.load_weights(model, self.run.path / weights, "model weights")
        return model

    def _select(self, prepared: dict, results: list[chunked.ChunkResult],
                progress: ProgressCallback | None) -> dict[int, dict]:
        """Per chunk: the weights file to use (a selected checkpoint's model, or the final weights)."""
        chosen = {}
        for info, result in zip(prepared["chunks"], results):
            held = info["holdout"]
            chosen[result.index] = {"weights": _relative(result.weights, self.run.path), "epoch": result.epochs,
                                    "scores": {}}
            if held is None or len(result.checkpoints) < 2 or info["flows"] == 0:
                continue
            chosen[result.index] = self._score_checkpoints(prepared, info, result)
            emit(progress, "select", result.index + 1, len(results), "chunks",
                 chunk=result.index, epoch=chosen[result.index]["epoch"])
        return chosen

    def _score_checkpoints(self, prepared: dict, info: dict, result: chunked.ChunkResult) -> dict:
        from ..model.checkpoints import load_checkpoint

        cfg = self.config
        real = held_records(info)
        model = chunked.build_model(cfg, prepared["attribute_spans"], prepared["feature_spans"])
        scores = {}
        for epoch, path in sorted(result.checkpoints.items()):
            model.load_state_dict(load_checkpoint(path)["model"])
            synth = self._holdout_sample(model, prepared["encoder"], info, len(real))
            scores[epoch] = selection.field_distance(real, synth, _feature_names(cfg), _categorical(cfg))
        best = selection.pick_checkpoint(scores)
        model.load_state_dict(load_checkpoint(result.checkpoints[best])["model"])
        path = self.run.chunk_dir(result.index) / "selected.pt"
        chunked.save_weights(model, path)
        return {"weights": _relative(path, self.run.path), "epoch": best,
                "scores": {str(k): float(v) for k, v in scores.items()}}

    def _holdout_sample(self, model, encoder, info: dict, n_records: int) -> pd.DataFrame:
        """Records a checkpoint generates for its chunk (field values only: times are not scored)."""
        import torch

        window = tuple(info["window"])
        n = max(64, int(np.ceil(n_records / max(info["records_per_flow"], 1.0))))
        attrs, rows, lengths = model.generate(n, generator=torch.Generator().manual_seed(self.config.training.seed))
        records = sampling.decode_records(encoder, self.config.kind, attrs, rows, lengths, window, True)
        return records.drop(columns="_flow")

    # ---- persistence ----------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the run folder (a copy when fit used another folder); the manifest comes last."""
        if self.manifest is None or self.run is None:
            raise UserError("nothing to save: call fit() (or Synthesizer.load) first")
        target = RunDir(path)
        if target.path.resolve() != self.run.path.resolve():
            if target.path.exists() and any(target.path.iterdir()):
                raise UserError(f"{target.path}: folder is not empty; choose another folder to save the run in")
            shutil.copytree(self.run.path, target.path, dirs_exist_ok=True)
            (target.path / "manifest.json").unlink(missing_ok=True)
        target.write_manifest(self.manifest)
        self.run = target
        return target.path

    @classmethod
    def load(cls, path) -> "Synthesizer":
        """Open a finished run folder; every problem is a UserError naming the file to fix."""
        from ..encoders.flow_encoder import FlowEncoder

        run = RunDir(path)
        manifest = run.read_manifest()
        synth = cls(run.read_config())
        synth.run, synth.manifest = run, manifest
        if manifest.get("model") == "ar":
            return synth
        try:
            synth._encoder = FlowEncoder.load(run.encoder_dir)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"{run.encoder_dir}: fitted encoders are missing or corrupt ({exc}); rerun "
                            "`tracesynth fit ... --force`") from None
        return synth

    def _ar_generator(self):
        from . import ar

        if "ar" not in self._models:
            self._models["ar"] = ar.ARGenerator.load(self.config, self.run.path / ar.FOLDER, self.manifest["ar"])
        return self._models["ar"]

    def _model(self, index: int):
        if index not in self._models:
            chunk = self.manifest["chunks"][index]
            model = chunked.build_model(self.config, self._encoder.attribute_spans, self._encoder.feature_spans)
            chunked.load_weights(model, self.run.path / chunk["weights"], f"model weights of chunk {index}")
            self._models[index] = model
        return self._models[index]

    # ---- sample ---------------------------------------------------------------------------------
    def sample(self, count: int | None = None, scale: float | None = None, seed: int = 0,
               progress: ProgressCallback | None = None,
               options: sampling.GenerationOptions = sampling.DEFAULT_OPTIONS,
               temperature: float | None = None) -> pd.DataFrame:
        """A synthetic canonical table: `count` records, or `scale` x the training size (default 1x).

        `temperature` (ar model only; default `model.ar.temperature`): below 1 sharpens every token's
        distribution towards the training data's frequent values, above 1 flattens it (docs/models.md)."""
        if self.manifest is None:
            raise UserError("the synthesizer is not fitted: call fit() or Synthesizer.load(run) first")
        if count is not None and scale is not None:
            raise UserError("give either --count or --scale, not both")
        if (count is not None and count < 0) or (scale is not None and scale <= 0):
            raise UserError("--count must be >= 0 and --scale > 0")
        target = generation.target_records(self.manifest["input"]["records"], count, scale)
        if self.manifest.get("model") == "ar":
            with sampling.generation_threads(options.resolved_threads()):
                return self._ar_generator().sample(target, seed, progress, temperature)
        if temperature is not None:
            raise UserError("--temperature applies to the ar model only; this run is a doppelganger model")
        plans = [sampling.ChunkPlan(index=c["index"], window=tuple(c["window"]), real_records=c["records"],
                                    records_per_flow=c["records_per_flow"], model=self._model(c["index"]))
                 for c in self.manifest["chunks"]]
        layout = attribute_layout(self._encoder, len(plans))
        return sampling.sample_chunks(plans, self._encoder, layout, self.config.kind, target, seed, progress, options)


# ---- helpers ------------------------------------------------------------------------------------
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


def _check_kind(table: pd.DataFrame, cfg: TraceSynthConfig, name: str | None) -> None:
    kind = table_kind(table)
    if kind != cfg.kind:
        other = "netflow" if cfg.kind == "flows" else "pcap"
        raise UserError(f"{name or 'input'}: is a {kind} trace but the config models {cfg.kind}; use "
                        f"--preset {'pcap' if kind == 'packets' else 'netflow'} (not {other})")


def _public_table(cfg: TraceSynthConfig, public: pd.DataFrame | None, name: str | None):
    """The public trace passed in, or the one `privacy.public_trace` names (read here)."""
    if public is not None:
        return public, name or "public trace"
    path = cfg.privacy.public_trace if cfg.privacy is not None else None
    if not path:
        return None, None
    from ..io import read_trace

    return read_trace(path).table, str(path)


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


def _trains(chunk: dict, ledger) -> bool:
    """Whether a fine-tuned chunk trains: >= 2 flows (BatchNorm), and in DP mode a schedule in the ledger."""
    if ledger is not None and ledger.epochs[chunk["index"]] == 0:
        return False
    return chunk["flows"] >= 2


def _release_sizes(prepared: dict, chosen: dict, load_model) -> None:
    """DP generation sizes, all post-processing, so the manifest holds no private count: records per
    flow sample = the mean length of the samples the trained model generates; flow samples per chunk =
    the released total x the chunk's ratio: the public trace's samples per flow, or (no public trace)
    the noisy histogram's share x the samples per flow the models' `starts_here` tags imply."""
    import torch

    from ..model.privacy import samples_per_flow

    ledger, seed, chunks = prepared["ledger"], 0, prepared["chunks"]
    layout = attribute_layout(prepared["encoder"], len(chunks))
    per_flow, starting = [], []
    for info in chunks:
        model = load_model(prepared, chosen[info["index"]]["weights"])
        attrs, _, lengths = model.generate(_SIZE_PROBE_FLOWS, generator=torch.Generator().manual_seed(seed))
        per_flow.append(float(np.mean(lengths)))
        starting.append(1.0 if layout is None else float(np.mean(generation.tag_set(np.asarray(attrs),
                                                                                     layout.starts_here))))
    flows = list(ledger.noisy_flow_counts)
    if ledger.size_shares != "public trace":
        kappa = samples_per_flow(ledger.shares, starting, len(chunks))
        flows = [max(1, int(round(ledger.noisy_flow_total * share * kappa))) for share in ledger.shares]
    for info, n, r in zip(chunks, flows, per_flow):
        info.update(flows=int(n), records_per_flow=r, records=int(round(n * r)))
    prepared["records"] = int(sum(c["records"] for c in chunks))


def _check_size(n_flows: int, cfg: TraceSynthConfig) -> None:
    batch = cfg.training.batch_size
    if n_flows < batch:
        raise UserError(f"trace too small: chunk 0 has {n_flows} flow samples, fewer than one batch "
                        f"(training.batch_size = {batch}); set fewer chunks (--chunks) or a smaller "
                        "training.batch_size in the config, or use a longer trace")


def _use_holdout(cfg: TraceSynthConfig) -> bool:
    """Hold out a slice only when selection will happen: on, not DP, and >1 checkpoint expected."""
    t = cfg.training
    return bool(t.checkpoint_selection and cfg.privacy is None and t.holdout_fraction > 0
                and t.epochs // t.checkpoint_every > 1)


def _split_holdout(chunk, cfg: TraceSynthConfig, holdout: bool):
    """Training flows of a chunk (records before the held-out slice) and the slice's description."""
    flows = chunk.flows
    if not holdout or flows.n_flows == 0:
        return flows, None
    start = selection.holdout_start(chunk.window, cfg.training.holdout_fraction)
    series = flows.series
    times = generation.absolute_times(flows.attributes["flow_start"].to_numpy(np.float64),
                                      series["flow_id"].to_numpy(np.int64), series["iat"].to_numpy(np.float64))
    keep_flows = np.unique(series["flow_id"].to_numpy(np.int64)[times < start])
    train = flows.select(keep_flows)
    train_series = train.series
    t2 = generation.absolute_times(train.attributes["flow_start"].to_numpy(np.float64),
                                   train_series["flow_id"].to_numpy(np.int64), train_series["iat"].to_numpy(np.float64))
    train.series = train_series[t2 < start].reset_index(drop=True)
    time_col = TIME_COLUMN[cfg.kind]
    held = chunk.records[chunk.records[time_col] >= start]
    return train, {"start": float(start), "records": held}


def held_records(info: dict) -> pd.DataFrame:
    return info["holdout"]["records"]


def _feature_names(cfg: TraceSynthConfig) -> list[str]:
    return [f.name for f in cfg.fields if f.role == "feature"]


def _categorical(cfg: TraceSynthConfig) -> set[str]:
    return {f.name for f in cfg.fields if f.encoding == "categorical"}


def _relative(path, root: Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _privacy_block(cfg: TraceSynthConfig, prepared: dict) -> dict | None:
    """What produced the run's privacy guarantee: the DP settings, the ledger (achieved epsilon, delta,
    sigma, C, q and steps per chunk, releases per step, accountant, count release) and the public trace."""
    ledger, pub = prepared["ledger"], prepared["public"]
    if ledger is None and pub is None:
        return None
    return {"dp": ledger is not None,
            "settings": None if cfg.privacy is None else cfg.privacy.model_dump(mode="json"),
            "ledger": None if ledger is None else ledger.to_dict(),
            "public": None if pub is None else {"name": pub["name"], "flows": pub["flows"],
                                                "records": pub["records"], "epochs": cfg.training.epochs}}


def _manifest(cfg, prepared, results, chosen, fingerprint, input_name, runner, resumed, fit_s) -> dict:
    chunks = []
    for info, result in zip(prepared["chunks"], results):
        pick = chosen[result.index]
        chunks.append({"index": info["index"], "window": info["window"], "records": info["records"],
                       "flows": info["flows"], "records_per_flow": info["records_per_flow"],
                       "epochs": result.epochs, "init_from": result.init_from, "weights": pick["weights"],
                       "selected_epoch": pick["epoch"], "selection_scores": pick["scores"],
                       "checkpoints": {str(k): v for k, v in result.checkpoints.items()},
                       "train_s": round(result.train_s, 3)})
    return {"config_hash": config_hash(cfg),
            "input": {"name": input_name, "fingerprint": fingerprint, "records": prepared["records"],
                      "kind": cfg.kind},
            "chunks": chunks, "runner": runner.describe(), "resumed": resumed,
            "privacy": _privacy_block(cfg, prepared),
            "timings": {"fit_s": round(fit_s, 3), "train_s": round(sum(r.train_s for r in results), 3)}}
