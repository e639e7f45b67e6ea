"""Chunked training: chunk 0 from scratch, every other chunk fine-tuned from chunk 0's weights.

One chunk's training is a `ChunkJob` (plain, picklable data: config as a dict, paths, seeds) run by
the module-level `train_chunk`, so any runner (this process, worker processes, Ray) executes it the
same way. Each job trains into its own folder; a finished job leaves `result.json`, which makes the
whole fit resumable: finished chunks are skipped, unfinished ones resume from the trainer's checkpoints.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..config import TraceSynthConfig, config_from_dict
from ..encoders.base import Span
from ..model.weights import load_weights, save_weights  # noqa: F401  (synthesizer uses chunked.*)
from ..progress import ProgressCallback

log = logging.getLogger(__name__)

RESULT = "result.json"
#: index of the model pretrained on a public trace (no DP) that every private chunk fine-tunes from
PUBLIC_MODEL = -1
WEIGHTS = "weights.pt"


@dataclass
class ChunkJob:
    """Everything one chunk's training needs, as plain data (crosses process and machine boundaries)."""

    index: int
    config: dict
    attribute_spans: list[tuple[int, str]]
    feature_spans: list[tuple[int, str]]
    data_path: str                 # .npz with attributes, features, gen_flags, lengths
    chunk_dir: str
    epochs: int
    seed: int
    init_weights: str | None = None   # chunk 0's (or the public model's) weights for fine-tuned chunks
    privacy: dict | None = None       # PrivacyLedger.to_dict(): train this chunk with DP-SGD
    init_from: int = 0                # which model init_weights holds: a chunk, or PUBLIC_MODEL
    threads: int = 1                  # torch threads while training (model.trainer.TRAIN_THREADS)


@dataclass
class ChunkResult:
    index: int
    weights: str
    checkpoints: dict[int, str] = field(default_factory=dict)
    epochs: int = 0
    train_s: float = 0.0
    n_flows: int = 0
    init_from: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ChunkResult":
        data = dict(data)
        data["checkpoints"] = {int(k): v for k, v in data.get("checkpoints", {}).items()}
        return cls(**data)


def spans_to_plain(spans: list[Span]) -> list[tuple[int, str]]:
    return [(int(s.dim), str(s.activation)) for s in spans]


def spans_from_plain(plain: list) -> list[Span]:
    return [Span(int(d), a) for d, a in plain]


def finetune_epochs(config: TraceSynthConfig) -> int:
    """Epochs for a fine-tuned chunk: `finetune_fraction` of the full schedule, at least one."""
    return max(1, int(round(config.training.epochs * config.training.finetune_fraction)))


def chunk_seed(seed: int, index: int) -> int:
    """Independent, reproducible seed per chunk whichever process trains it."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def save_encoded(path: Path, encoded) -> None:
    """Store a chunk's encoded arrays once, atomically, so every runner reads the same bytes."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, attributes=encoded.attributes, features=encoded.features,
                     gen_flags=encoded.gen_flags, lengths=encoded.lengths)


def load_encoded(path: str | Path):
    from ..encoders.flow_encoder import EncodedFlows

    with np.load(path) as data:
        return EncodedFlows(attributes=data["attributes"], features=data["features"],
                            gen_flags=data["gen_flags"], lengths=data["lengths"])


def build_model(config: TraceSynthConfig, attribute_spans: list[Span], feature_spans: list[Span]):
    """A DoppelGANger for these spans, its initial weights drawn from `training.seed` (the run's seed
    reaches every initialisation: fresh fits, public pretraining, DP, benchmarks, the service)."""
    from ..model.dgan import DoppelGANger

    return DoppelGANger(attribute_spans, feature_spans, config.flow_length.max_flow_len, config.model,
                        seed=config.training.seed)


def train_chunk(job: ChunkJob, callback: ProgressCallback | None = None) -> ChunkResult:
    """Train (or resume, or skip when finished) one chunk; returns where its weights are."""
    chunk_dir = Path(job.chunk_dir)
    done = chunk_dir / RESULT
    if done.exists():
        try:
            return ChunkResult.from_dict(json.loads(done.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError):
            log.warning("%s is damaged; retraining chunk %d", done, job.index)
    config = config_from_dict(job.config, "run config")
    model = build_model(config, spans_from_plain(job.attribute_spans), spans_from_plain(job.feature_spans))
    if job.init_weights:
        load_weights(model, job.init_weights, "chunk 0 weights")
    encoded = load_encoded(job.data_path)
    t0 = time.perf_counter()
    checkpoints = run_trainer(model, encoded, config, epochs=job.epochs, seed=job.seed,
                              checkpoint_dir=chunk_dir / "checkpoints", chunk=job.index, callback=callback,
                              privacy=job.privacy, threads=job.threads)
    weights = chunk_dir / WEIGHTS
    save_weights(model, weights)
    result = ChunkResult(index=job.index, weights=str(weights), checkpoints=checkpoints, epochs=job.epochs,
                         train_s=time.perf_counter() - t0, n_flows=int(len(encoded.attributes)),
                         init_from=job.init_from if job.init_weights else None)
    with atomic_path(done) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    return result


def run_trainer(model, encoded, config: TraceSynthConfig, *, epochs: int, seed: int, checkpoint_dir: Path,
                chunk: int, callback: ProgressCallback | None, privacy: dict | None = None,
                threads: int = 1) -> dict[int, str]:
    """Call the model's training loop (on `threads` torch threads) and return its checkpoints as
    {epoch: path}.

    With `privacy` (a PrivacyLedger as a dict) the critics train with DP-SGD: Poisson batches at the
    ledger's rate for this chunk, per-sample clipping and noise, and a public number of steps per epoch.
    """
    from ..model import trainer

    hooks = {}
    if privacy is not None:
        from ..model.privacy import PrivacyLedger, trainer_hooks

        hooks = trainer_hooks(PrivacyLedger(**privacy), chunk, config.training.gp_lambda)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    result = trainer.train(model, encoded, config.training, epochs=epochs, seed=seed, callback=callback,
                           checkpoint_dir=checkpoint_dir, resume=True, chunk=chunk, threads=threads, **hooks)
    return _checkpoint_map(result, checkpoint_dir)


def _checkpoint_map(result: Any, checkpoint_dir: Path) -> dict[int, str]:
    """The trainer's checkpoint list as {epoch: path}, however it reports them."""
    checkpoints = getattr(result, "checkpoints", None)
    if checkpoints is None and isinstance(result, dict):
        checkpoints = result.get("checkpoints")
    if checkpoints:
        return {int(k): str(v) for k, v in dict(checkpoints).items()}
    return {}
