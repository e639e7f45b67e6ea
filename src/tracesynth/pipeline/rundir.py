"""The run directory: everything `tracesynth generate RUN` needs, in one folder.

Layout::

    RUN/
      manifest.json        written LAST: its presence means the run is complete and usable
      fit-state.json       written FIRST: config hash + input fingerprint, so an interrupted fit resumes
      config.json          the full TraceSynthConfig
      encoder/             FlowEncoder.save (word2vec via gensim, the rest JSON)
      chunk_000/           weights.pt (selected weights), checkpoints/ (trainer), result.json
      chunk_001/ ...
      public/              with --public: the public trace's encoded flows and the model pretrained on
                           them (every chunk fine-tunes from it); the manifest's `privacy` block
                           holds the DP ledger and the public trace's name

A folder without manifest.json is an unfinished fit: `fit` resumes it (same config and input) and
`generate` refuses it with a message saying so. Every file is written atomically.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .._atomic import atomic_open, clean_stale_parts
from ..config import TraceSynthConfig, config_from_dict
from ..errors import UserError

RUN_FORMAT = "tracesynth-run"
RUN_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FIT_STATE = "fit-state.json"
CONFIG = "config.json"
#: what `write_manifest` adds to every manifest (the rest is the fit's: `models.Manifest`)
RUN_KEYS = ("format", "format_version", "tracesynth_version", "created")


def config_hash(config: TraceSynthConfig) -> str:
    """Stable hash of the configuration (canonical JSON), to tell one run from another."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def table_fingerprint(table: pd.DataFrame) -> str:
    """Content hash of a canonical table (row hashes), independent of the file it came from."""
    rows = pd.util.hash_pandas_object(table, index=False).to_numpy()
    digest = hashlib.sha256(np.ascontiguousarray(rows).tobytes())
    digest.update(",".join(map(str, table.columns)).encode())
    return digest.hexdigest()[:16]


def write_json(path: Path, data: Any) -> None:
    with atomic_open(path, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing {what}; the run directory is incomplete; rerun `tracesynth fit`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: corrupt {what} ({exc}); rerun `tracesynth fit ... --force`") from None


class RunDir:
    """Paths and checks of one run folder (no training logic here)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # paths --------------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def encoder_dir(self) -> Path:
        return self.path / "encoder"

    def chunk_dir(self, index: int) -> Path:
        return self.path / f"chunk_{index:03d}"

    def is_complete(self) -> bool:
        return self.manifest_path.exists()

    # fit side -----------------------------------------------------------------------------------
    def prepare_fit(self, cfg_hash: str, fingerprint: str, force: bool) -> bool:
        """Make the folder ready for a fit; return True when an unfinished fit of the same run resumes.

        Refuses to overwrite a different (or finished) run unless `force`; with `force` the old
        contents are removed first.
        """
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path}: exists and is not a folder; choose another --out")
        if self.path.exists() and any(self.path.iterdir()):
            same = self._same_run(cfg_hash, fingerprint)
            if force:
                shutil.rmtree(self.path)
            elif self.is_complete():
                what = "the same run" if same else "a different run"
                raise UserError(f"{self.path}: already holds {what} (manifest.json); pass --force to "
                                "overwrite it or choose another --out")
            elif same:
                clean_stale_parts(self.path, recursive=True)  # temporaries of the killed fit
                return True
            else:
                raise UserError(f"{self.path}: holds an unfinished fit of a different config or input; "
                                "pass --force to start over or choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / FIT_STATE, {"config_hash": cfg_hash, "input_fingerprint": fingerprint,
                                           "tracesynth_version": __version__, "started": _now()})
        return False

    def _same_run(self, cfg_hash: str, fingerprint: str) -> bool:
        state = self.path / FIT_STATE
        if not state.exists():
            return False
        try:
            data = json.loads(state.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        return data.get("config_hash") == cfg_hash and data.get("input_fingerprint") == fingerprint

    def start_fit(self, config: TraceSynthConfig, fingerprint: str, force: bool) -> bool:
        """`prepare_fit` for this config and input, then its config.json; True when a fit resumes."""
        resumed = self.prepare_fit(config_hash(config), fingerprint, force)
        self.write_config(config)
        return resumed

    def write_config(self, config: TraceSynthConfig) -> None:
        write_json(self.path / CONFIG, config.model_dump(mode="json"))

    def write_manifest(self, manifest: dict) -> None:
        """Write the manifest last: from now on the run is complete."""
        base = dict(zip(RUN_KEYS, (RUN_FORMAT, RUN_FORMAT_VERSION, __version__, _now())))
        write_json(self.manifest_path, {**base, **manifest})

    # generate side ------------------------------------------------------------------------------
    def read_manifest(self) -> dict:
        """Load and check the manifest: a finished run of a format this tracesynth reads."""
        if not self.path.is_dir():
            raise UserError(f"{self.path}: no such run directory; create one with `tracesynth fit TRACE --out "
                            f"{self.path}`")
        if not self.is_complete():
            raise UserError(f"{self.path}: the fit did not finish (no manifest.json); rerun the same "
                            "`tracesynth fit` command to resume it")
        manifest = read_json(self.manifest_path, "manifest.json")
        if manifest.get("format") != RUN_FORMAT:
            raise UserError(f"{self.manifest_path}: not a tracesynth run manifest")
        version = manifest.get("format_version")
        if version != RUN_FORMAT_VERSION:
            raise UserError(f"{self.manifest_path}: run format version {version} was written by tracesynth "
                            f"{manifest.get('tracesynth_version', '?')}; this tracesynth {__version__} reads "
                            f"version {RUN_FORMAT_VERSION}; refit with `tracesynth fit ... --force`")
        return manifest

    def read_config(self) -> TraceSynthConfig:
        path = self.path / CONFIG
        return config_from_dict(read_json(path, "config.json"), str(path))

    def weights_path(self, index: int) -> Path:
        path = self.chunk_dir(index) / "weights.pt"
        if not path.exists():
            raise UserError(f"{path}: missing model weights for chunk {index}; rerun `tracesynth fit ... "
                            "--force`")
        return path


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
