"""`Synthesizer`: the Python API over the whole pipeline.

    synth = Synthesizer(config).fit(table)          # the model config.model.kind names (MODELS)
    synth.save("run")                               # run directory (rundir.py); manifest written last
    table = Synthesizer.load("run").sample(count=10_000, seed=1)

The Synthesizer checks the inputs, owns the run folder and its manifest, and leaves fitting and
sampling to a model (`models.TraceModel`): chunked DoppelGANger (doppelganger.py) or the
autoregressive model (ar.py). `fit` works inside a run folder so that an interrupted fit resumes from
the trainer's checkpoints: `run_dir`, or else a temporary folder that is removed when the fit is saved
elsewhere, when the Synthesizer is closed (`close()`, or a `with` block) or garbage-collected, and
at the latest when the interpreter exits.

Public pretraining and differential privacy (docs/privacy.md):

    Synthesizer(config).fit(private, public=public_table)   # config.privacy set: DP-SGD fine-tunes

With `config.privacy`, `check_dp_config` first refuses any setting that would read the private trace;
what DP training does is the model's (doppelganger.py).
"""
from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from pathlib import Path

import pandas as pd

from ..config import TraceSynthConfig
from ..errors import UserError
from ..progress import ProgressCallback
from ..schema import table_kind
from . import generation, sampling
from .ar import ARTraceModel
from .doppelganger import ChunkedDoppelGANger
from .models import FitData, Manifest, TraceModel
from .rundir import RunDir

#: the models `config.model.kind` (and a manifest's "model") chooses from
MODELS: dict[str, type[TraceModel]] = {ChunkedDoppelGANger.kind: ChunkedDoppelGANger, ARTraceModel.kind: ARTraceModel}


class Synthesizer:
    """Fit a model on a canonical table and sample synthetic tables from it.

    `manifest` is the run's manifest.json as a dict (`record` the same as a `models.Manifest`), `model`
    the fitted `TraceModel`, `sizing` the chunks and batch fit chose (doppelganger model only)."""

    def __init__(self, config: TraceSynthConfig):
        self.config = config
        self.run: RunDir | None = None
        self.record: Manifest | None = None
        self.model: TraceModel | None = None
        self._scratch: _TemporaryRun | None = None

    @property
    def manifest(self) -> dict | None:
        return None if self.record is None else self.record.to_dict()

    @property
    def sizing(self):
        return getattr(self.model, "sizing", None)

    # ---- fit ------------------------------------------------------------------------------------
    def fit(self, table: pd.DataFrame, progress: ProgressCallback | None = None, *, run_dir=None,
            runner=None, force: bool = False, input_name: str | None = None,
            public: pd.DataFrame | None = None, public_name: str | None = None) -> "Synthesizer":
        """Fit the model; resumes an unfinished fit of the same config and input in `run_dir`.

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
        model = MODELS[cfg.model.kind](cfg)
        data = FitData(table, input_name, public, public_name, runner, force)
        scratch = _TemporaryRun(self) if run_dir is None else None
        run = RunDir(run_dir if scratch is None else scratch.path)
        t0 = time.perf_counter()
        try:
            fitted = model.fit(data, run, progress)
        except BaseException:
            if scratch is not None:   # nobody could resume it: the folder's name was never given out
                scratch.remove()
            raise
        self.close()                  # the previous fit's temporary folder, if it had one
        self._scratch, self.run, self.model, self.config = scratch, run, model, fitted.config
        self.record = Manifest.from_fit(model.kind, fitted, data, time.perf_counter() - t0)
        return self

    def close(self) -> None:
        """Remove the temporary run folder of a fit that was not saved (nothing else): the Synthesizer
        then holds no fitted model until the next `fit` or `load`."""
        if self._scratch is not None:
            self._scratch.remove()
            self._scratch = self.run = self.model = self.record = None

    def __enter__(self) -> "Synthesizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- persistence ----------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the run folder (a copy when fit used another folder); the manifest comes last. A
        temporary fit folder is removed once copied: the model then reads the saved folder."""
        if self.record is None or self.run is None:
            raise UserError("nothing to save: call fit() (or Synthesizer.load) first")
        target = RunDir(path)
        moved = target.path.resolve() != self.run.path.resolve()
        if moved:
            if target.path.exists() and any(target.path.iterdir()):
                raise UserError(f"{target.path}: folder is not empty; choose another folder to save the run in")
            shutil.copytree(self.run.path, target.path, dirs_exist_ok=True)
            (target.path / "manifest.json").unlink(missing_ok=True)
        target.write_manifest(self.record.to_dict())
        if moved:
            self.model = self._open_model(target)
            if self._scratch is not None:
                self._scratch.remove()
        elif self._scratch is not None:   # saved into the temporary folder itself: it is the caller's now
            self._scratch.keep()
        self._scratch, self.run = None, target
        return target.path

    @classmethod
    def load(cls, path) -> "Synthesizer":
        """Open a finished run folder; every problem is a UserError naming the file to fix."""
        run = RunDir(path)
        data = run.read_manifest()
        synth = cls(run.read_config())
        synth.run, synth.record = run, Manifest.from_dict(data, str(run.manifest_path))
        synth.model = synth._open_model(run)
        return synth

    def _open_model(self, run: RunDir) -> TraceModel:
        """The manifest's model, loaded from `run`."""
        kind = self.record.model
        if kind not in MODELS:
            raise UserError(f"{run.manifest_path}: a run of the {kind!r} model, which this tracesynth does not have "
                            f"(it has {', '.join(MODELS)}); refit the run or use the tracesynth that wrote it")
        model_cls = MODELS[kind]
        try:
            block = model_cls.block_type.from_dict(self.record.block)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise UserError(f"{run.manifest_path}: the {kind} model's part of the manifest lacks or garbles {exc}; "
                            "rerun `tracesynth fit ... --force`") from None
        return model_cls.load(self.config, run, block)

    # ---- sample ---------------------------------------------------------------------------------
    def sample(self, count: int | None = None, scale: float | None = None, seed: int = 0,
               progress: ProgressCallback | None = None,
               options: sampling.GenerationOptions = sampling.DEFAULT_OPTIONS,
               temperature: float | None = None) -> pd.DataFrame:
        """A synthetic canonical table: `count` records, or `scale` x the training size (default 1x).

        `temperature` (ar model only; default `model.ar.temperature`): below 1 sharpens every token's
        distribution towards the training data's frequent values, above 1 flattens it (docs/models.md)."""
        if self.model is None or self.record is None:
            raise UserError("the synthesizer is not fitted: call fit() or Synthesizer.load(run) first")
        if count is not None and scale is not None:
            raise UserError("give either --count or --scale, not both")
        if (count is not None and count < 0) or (scale is not None and scale <= 0):
            raise UserError("--count must be >= 0 and --scale > 0")
        target = generation.target_records(self.record.input.records, count, scale)
        return self.model.sample(target, seed, progress, options, temperature)


class _TemporaryRun:
    """The run folder of a fit given no `run_dir`: removed by `remove()`, or when its owner (the
    Synthesizer) is garbage-collected, or when the interpreter exits (`weakref.finalize`)."""

    def __init__(self, owner: object):
        self.path = Path(tempfile.mkdtemp(prefix="tracesynth-run-"))
        self._finalizer = weakref.finalize(owner, shutil.rmtree, self.path, ignore_errors=True)

    def remove(self) -> None:
        self._finalizer()

    def keep(self) -> None:
        self._finalizer.detach()


# ---- helpers ------------------------------------------------------------------------------------
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
