"""What a client may ask of the service, validated by pydantic, and how a job request becomes a config.

Validation happens in the web process when the job is submitted, so a bad parameter is a 422 with the
field named, not a job that fails a minute later in a worker. The resolved `TraceSynthConfig` is stored
with the job, so a resumed job trains with exactly the configuration it started with.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Optional
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import TraceSynthConfig, _deep_merge, config_from_dict, preset
from ..errors import ConfigError, UserError

#: Config keys that name files on the server. A client must never make the server read a path it chose.
_PATH_KEYS = (("word2vec", "pretrained"), ("privacy", "public_trace"))

#: Config sections: an override of one must be a mapping (privacy may also be null: no DP).
_SECTIONS = ("time", "chunking", "flow_length", "word2vec", "model", "training", "privacy")
#: Overrides are a small config fragment: bounded nesting and size, so no request can make validation
#: itself expensive.
_MAX_OVERRIDE_DEPTH, _MAX_OVERRIDE_ITEMS = 8, 10_000

#: Output format per trace kind when the request names none.
DEFAULT_OUTPUT = {"packets": "pcap", "flows": "csv"}
DEFAULT_PRESET = {"packets": "pcap", "flows": "netflow"}


class JobRequest(BaseModel):
    """Start a synthesis job on an uploaded trace: fit a model, generate a synthetic trace, write a report."""

    model_config = ConfigDict(extra="forbid")

    upload_id: UUID = Field(description="id of an upload (POST /api/uploads)")
    preset: Optional[Literal["pcap", "netflow"]] = Field(
        None, description="configuration preset; default: pcap for packet captures, netflow for flow records")
    epochs: int = Field(50, ge=1, le=100_000, description="training epochs of the first chunk")
    chunks: Optional[int] = Field(None, ge=1, le=100, description="time chunks (default: the preset's)")
    count: Optional[int] = Field(None, ge=1, le=50_000_000,
                                 description="packets/records to generate (exclusive with scale)")
    scale: Optional[float] = Field(None, gt=0, le=100, allow_inf_nan=False,
                                   description="output size as a multiple of the input (default 1.0)")
    dp_epsilon: Optional[float] = Field(None, gt=0, le=1000, allow_inf_nan=False,
                                        description="train with differential privacy")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    output_format: Optional[Literal["pcap", "csv", "parquet"]] = Field(
        None, description="synthetic trace format; default pcap for packets, csv for flow records")
    overrides: Optional[dict[str, Any]] = Field(
        None, description="config keys merged into the preset, e.g. {\"model\": {\"sample_len\": 5}}")

    @field_validator("overrides")
    @classmethod
    def _plain_json(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if value is not None:
            _check_json(value, "overrides", depth=0, budget=[_MAX_OVERRIDE_ITEMS])
        return value

    @model_validator(mode="after")
    def _one_size(self) -> "JobRequest":
        if self.count is not None and self.scale is not None:
            raise ValueError("give either count or scale, not both")
        return self


class UploadOut(BaseModel):
    id: str
    filename: str
    size: int
    format: str
    kind: str
    summary: dict[str, Any]
    created: float
    owner: str = Field("", description="the user who uploaded it (empty in single-user mode)")


class JobOut(BaseModel):
    id: str
    upload_id: str
    status: str
    resumable: bool
    params: dict[str, Any]
    progress: dict[str, Any]
    outputs: dict[str, Any]
    error: Optional[str]
    attempt: int
    pid: Optional[int]
    created: float
    started: Optional[float]
    finished: Optional[float]
    owner: str = Field("", description="the user who started it (empty in single-user mode)")


def resolve_config(request: JobRequest, kind: str) -> TraceSynthConfig:
    """The full run configuration for a request on a trace of `kind` ("packets" or "flows")."""
    name = request.preset or DEFAULT_PRESET[kind]
    base = preset(name)
    if base.kind != kind:
        raise UserError(f"preset: {name!r} models {base.kind}, but the upload holds {kind}; "
                        f"use preset {DEFAULT_PRESET[kind]!r}")
    data = base.model_dump(mode="json")
    if request.overrides:
        _check_sections(request.overrides)
        _refuse_paths(request.overrides)
        data = _deep_merge(data, request.overrides)
    data["training"]["epochs"] = request.epochs
    every = data["training"].get("checkpoint_every")
    if isinstance(every, (int, float)) and not isinstance(every, bool):  # anything else: validation names it
        data["training"]["checkpoint_every"] = min(every, request.epochs)
    data["training"]["seed"] = request.seed
    if request.chunks is not None:
        data["chunking"]["n_chunks"] = request.chunks
    if request.dp_epsilon is not None:
        data["privacy"] = {**(data.get("privacy") or {}), "epsilon": request.dp_epsilon}
    return config_from_dict(data, "job request")


def output_format(request: JobRequest, kind: str) -> str:
    fmt = request.output_format or DEFAULT_OUTPUT[kind]
    if fmt == "pcap" and kind != "packets":
        raise UserError("output_format: flow records cannot be written as a pcap; use csv or parquet")
    return fmt


def _refuse_paths(overrides: dict[str, Any]) -> None:
    for section, key in _PATH_KEYS:
        part = overrides.get(section)
        if isinstance(part, dict) and part.get(key) is not None:
            raise ConfigError(f"overrides.{section}.{key}: file paths cannot be set through the service")


def _check_json(value: Any, key: str, depth: int, budget: list[int]) -> None:
    """Refuse non-finite numbers (JSON has none; NaN/Infinity would break the stored job and its
    responses) and fragments nested deeper than _MAX_OVERRIDE_DEPTH or larger than _MAX_OVERRIDE_ITEMS."""
    budget[0] -= 1
    if depth > _MAX_OVERRIDE_DEPTH or budget[0] < 0:
        raise ValueError(f"{key}: overrides nest at most {_MAX_OVERRIDE_DEPTH} levels and hold at most "
                         f"{_MAX_OVERRIDE_ITEMS} values")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key}: must be a finite number, not {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_json(v, f"{key}.{k}", depth + 1, budget)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{key}.{i}", depth + 1, budget)


def _check_sections(overrides: dict[str, Any]) -> None:
    """An override of a config section must be a mapping; the trace kind comes from the upload."""
    if "kind" in overrides:
        raise ConfigError("overrides.kind: the trace kind comes from the upload; leave it out")
    for section in _SECTIONS:
        if section not in overrides:
            continue
        value = overrides[section]
        if not isinstance(value, dict) and not (section == "privacy" and value is None):
            raise ConfigError(f"overrides.{section}: must be a mapping of {section} keys to values, e.g. "
                              f"{{\"{section}\": {{...}}}}, not {type(value).__name__}")
