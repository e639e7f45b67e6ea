"""The interface between `Synthesizer` and a model, and the run manifest they write together.

A model (`TraceModel`) fits on a trace inside a run folder and samples exact record counts from it;
the `Synthesizer` checks the inputs, owns the run folder (a temporary one, or the caller's) and the
manifest, and picks the model class by `config.model.kind` (`synthesizer.MODELS`). What every model
reports goes into the manifest's shared keys (`ModelFit`); what only one model knows (DoppelGANger's
chunks, the ar model's training record) is that model's typed block, written as top-level keys of
manifest.json (docs/pipeline.md, "Models").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar, Protocol

import pandas as pd

from ..errors import UserError
from .rundir import table_fingerprint

if TYPE_CHECKING:
    from ..config import TraceSynthConfig
    from ..progress import ProgressCallback
    from ..runtime import GenerationOptions
    from .rundir import RunDir

#: the model of a manifest without a "model" key (DoppelGANger runs have never written one)
DEFAULT_MODEL = "doppelganger"


@dataclass
class FitData:
    """What one fit is given: the trace, an optional public trace, how to run and whether to start over."""

    table: pd.DataFrame
    input_name: str | None = None
    public: pd.DataFrame | None = None
    public_name: str | None = None
    runner: object | None = None        # runners.LocalRunner / RayRunner; None: the model's default
    force: bool = False                 # overwrite a finished or different run in the folder

    @cached_property
    def fingerprint(self) -> str:
        """The input's content hash (the public trace's too): a fit resumes only on the same input."""
        own = table_fingerprint(self.table)
        return own if self.public is None else own + "+" + table_fingerprint(self.public)


class ModelBlock(Protocol):
    """A model's own part of the manifest: `to_dict()` gives its top-level keys (for example
    {"chunks": [...], "sizing": {...}}), `from_dict` reads them back from a manifest."""

    def to_dict(self) -> dict: ...

    @classmethod
    def from_dict(cls, data: dict) -> "ModelBlock": ...


@dataclass
class ModelFit:
    """What a finished model fit reports: the manifest's shared keys, and the model's own block."""

    config: "TraceSynthConfig"      # what it trained with (a model may fill in what the config left open)
    resumed: bool                   # an unfinished fit of the same run was continued
    records: int                    # training size that `sample(scale=...)` multiplies (DP: the released one)
    train_s: float
    block: ModelBlock
    runner: str = "this process"
    privacy: dict | None = None     # what produced a privacy guarantee (docs/privacy.md)


class TraceModel(Protocol):
    """One generative model behind `Synthesizer` (registered in `synthesizer.MODELS` under `kind`).

    `Model(config)` makes an unfitted model; `fit` first calls `run.start_fit` (which refuses, resumes or
    starts the run folder) with the config it trains with, then writes only inside `run`; `load` opens a
    finished run folder from the model's typed block of its manifest; `sample` gives exactly `target`
    canonical records for a seed (the same records for the same seed, options and run). There is no
    `save`: when `fit` returns, everything the model needs is in `run` (paths in its block relative to
    it), and `Synthesizer.save` copies the folder and writes the manifest.
    """

    kind: ClassVar[str]             # config.model.kind and the manifest's "model"
    block_type: ClassVar[type]      # its ModelBlock: the model's own manifest keys
    config: "TraceSynthConfig"

    def fit(self, data: FitData, run: "RunDir", progress: "ProgressCallback | None") -> ModelFit: ...

    def sample(self, target: int, seed: int, progress: "ProgressCallback | None", options: "GenerationOptions",
               temperature: float | None) -> pd.DataFrame: ...

    @classmethod
    def load(cls, config: "TraceSynthConfig", run: "RunDir", block) -> "TraceModel": ...


@dataclass
class InputInfo:
    """The manifest's `input`: which trace, its content hash, its size and kind."""

    name: str | None
    fingerprint: str
    records: int
    kind: str


@dataclass
class Timings:
    fit_s: float
    train_s: float


#: the manifest's keys that every model writes (the model's block has the others)
_SHARED_KEYS = ("config_hash", "model", "input", "runner", "resumed", "privacy", "timings")


@dataclass
class Manifest:
    """manifest.json as a dataclass; `to_dict` writes the layout runs have always had.

    `block`: the model's own top-level keys, as JSON (the model types them: `TraceModel.block_type`),
    and any key this version does not know, so that reading and writing a manifest loses nothing;
    `written`: what `RunDir.write_manifest` adds (format, version, created). The "model" key is written
    for models other than DoppelGANger only: runs without it are DoppelGANger runs, and keep their layout.
    """

    config_hash: str
    input: InputInfo
    block: dict
    timings: Timings
    model: str = DEFAULT_MODEL
    runner: str = "this process"
    resumed: bool = False
    privacy: dict | None = None
    written: dict = field(default_factory=dict)

    @classmethod
    def from_fit(cls, kind: str, fit: ModelFit, data: FitData, fit_s: float) -> "Manifest":
        from .rundir import config_hash

        cfg = fit.config
        return cls(config_hash=config_hash(cfg), model=kind,
                   input=InputInfo(data.input_name, data.fingerprint, int(fit.records), cfg.kind),
                   block=fit.block.to_dict(), runner=fit.runner, resumed=fit.resumed, privacy=fit.privacy,
                   timings=Timings(round(fit_s, 3), round(fit.train_s, 3)))

    def to_dict(self) -> dict:
        out = {**self.written, "config_hash": self.config_hash}
        if self.model != DEFAULT_MODEL:
            out["model"] = self.model
        out["input"] = asdict(self.input)
        out.update(self.block)
        out.update(runner=self.runner, resumed=self.resumed, privacy=self.privacy, timings=asdict(self.timings))
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "Manifest":
        """Read a manifest.json; a missing or garbled shared key is a UserError naming `source`."""
        from .rundir import RUN_KEYS

        try:
            inp, timings = data["input"], data.get("timings") or {}
            return cls(config_hash=str(data["config_hash"]), model=str(data.get("model", DEFAULT_MODEL)),
                       input=InputInfo(inp.get("name"), str(inp.get("fingerprint", "")), int(inp["records"]),
                                       str(inp.get("kind", ""))),
                       block={k: v for k, v in data.items() if k not in _SHARED_KEYS and k not in RUN_KEYS},
                       timings=Timings(float(timings.get("fit_s", 0.0)), float(timings.get("train_s", 0.0))),
                       runner=str(data.get("runner", "this process")), resumed=bool(data.get("resumed", False)),
                       privacy=data.get("privacy"), written={k: data[k] for k in RUN_KEYS if k in data})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{source}: the manifest lacks or garbles {exc}; rerun `tracesynth fit ... --force`") \
                from None
