"""Typed configuration (pydantic, unknown keys rejected) and the `pcap` / `netflow` presets.

One `TraceSynthConfig` describes a whole run: which fields are modelled and how they are encoded,
how the trace is cut into chunks, the flow-length cap, the network and the training schedule, and
optional differential privacy. Presets reproduce NetShare's example configurations (NETSHARE.md).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal, Optional, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Encoding = Literal["bits", "word2vec_port", "word2vec_proto", "numeric", "categorical"]


class FieldConfig(_Section):
    """One modelled column. `role`: attribute (per flow) or feature (per record of the flow)."""

    name: str
    role: Literal["attribute", "feature"]
    encoding: Encoding
    log1p: bool = False
    scale: Literal["zero_one", "minus_one_one"] = "zero_one"
    #: fixed [min, max] (required in DP mode); None learns the range from the data
    range: Optional[tuple[float, float]] = None
    #: fixed choices for categorical fields (numbers or strings); None uses the values seen. For a
    #: `word2vec_port` field with `top_k`, the ports that get their own one-hot slot (instead of counting)
    choices: Optional[list[Union[int, str]]] = None
    #: `word2vec_port` only: the K most frequent ports get a one-hot softmax slot (plus "other") before
    #: the word2vec vector, so the dominant ports are decoded by argmax; 0 = word2vec only (NetShare)
    top_k: int = Field(0, ge=0, le=1024)
    #: number of bits for `bits` encoding (32 for IPv4, 128 for IPv6)
    n_bits: int = Field(32, ge=1, le=128)
    #: `numeric` only: at most this many exact values ("spikes": pkt_len 1500, tos 0) get a one-hot slot
    #: (plus "other") before the numeric column, so they are decoded exactly by argmax; 0 = off
    spikes: int = Field(0, ge=0, le=1024)
    #: ...each needing at least this share of the records (the autoregressive model's default, 0.5%)
    spike_min_share: float = Field(0.005, gt=0, le=1)
    #: fixed spike values (public: DP mode without a public trace) instead of counting them; at most `spikes`
    spike_values: Optional[list[float]] = None

    @model_validator(mode="after")
    def _check(self) -> "FieldConfig":
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"field {self.name!r}: range must be [min, max] with min < max, got {self.range}")
        if self.log1p and self.range is not None and self.range[0] < 0:
            raise ValueError(f"field {self.name!r}: log1p needs a non-negative range, got {self.range}")
        if self.choices is not None and len(set(map(str, self.choices))) != len(self.choices):
            raise ValueError(f"field {self.name!r}: choices must be distinct, got {self.choices}")
        if self.choices is not None and not self.choices:
            raise ValueError(f"field {self.name!r}: choices must not be empty (leave it out to use the values seen)")
        if self.spike_values is not None and not self.spikes:
            raise ValueError(f"field {self.name!r}: spike_values needs spikes > 0 (spikes turns the encoding on)")
        if self.spike_values is not None and not 0 < len(set(self.spike_values)) == len(self.spike_values) <= self.spikes:
            raise ValueError(f"field {self.name!r}: spike_values must be distinct, non-empty and at most `spikes` "
                             f"({self.spikes}) values, got {self.spike_values}")
        return self


class TimeConfig(_Section):
    """How time is modelled: flow start as an attribute, inter-arrival within the flow as a feature."""

    column: str = "time"
    interarrival_log1p: bool = True
    #: fixed [min, max] seconds for the inter-arrival feature (required in DP mode); None learns it
    interarrival_range: Optional[tuple[float, float]] = None
    #: fixed [start, end] epoch seconds of the trace (required in DP mode: public time window)
    window: Optional[tuple[float, float]] = None


class ChunkingConfig(_Section):
    mode: Literal["fixed_time", "fixed_size"] = "fixed_time"
    #: number of time chunks; None lets `fit` choose up to `max_chunks` from the trace (flows/sizing.py)
    n_chunks: Optional[int] = Field(None, ge=1, le=1000)
    #: the most chunks the automatic choice uses (NetShare's 10)
    max_chunks: int = Field(10, ge=1, le=1000)


class FlowLengthConfig(_Section):
    #: cap L on records per flow sample; longer flows are split into consecutive segments
    max_flow_len: int = Field(100, ge=1, le=100_000)


class Word2VecConfig(_Section):
    vector_size: int = Field(10, ge=2, le=512)
    window: int = Field(5, ge=1)
    min_count: int = Field(1, ge=1)
    epochs: int = Field(5, ge=1)
    sg: Literal[0, 1] = 0
    #: train on at most this many records (every distinct port/protocol triple plus a seeded sample);
    #: None trains on every record as NetShare does
    max_sentences: Optional[int] = Field(200_000, ge=1)
    #: path of a saved gensim model to load instead of training (public model, required in DP mode)
    pretrained: Optional[str] = None


HeaderGroup = Literal["proto", "srcport", "dstport", "srcip", "dstip", "length", "start"]


class ARConfig(_Section):
    """The autoregressive flow model (`model.kind: ar`; docs/models.md): tokens, sizes, training, sampling."""

    #: header token groups in the order they are generated (each once)
    header_order: list[HeaderGroup] = ["proto", "length", "dstport", "srcport", "dstip", "srcip", "start"]
    #: ports with their own token; other ports are drawn byte by byte
    top_ports: int = Field(128, ge=0, le=4096)
    #: IP addresses with their own token; other addresses are drawn octet by octet
    top_addresses: int = Field(256, ge=0, le=65536)
    #: a port or address needs this many flows to get its own token (rarer ones are learnt as bytes, not replayed)
    min_key_flows: int = Field(3, ge=1)
    #: numeric fields: at most this many exact values get their own token ("spikes")...
    max_spikes: int = Field(32, ge=0, le=1024)
    #: ...each needing at least this share of the records
    min_spike_share: float = Field(0.005, gt=0, le=1)
    #: quantile bins for the rest of a numeric field's values (uniform draw inside a bin when sampling)
    n_bins: int = Field(32, ge=1, le=1024)
    #: quantile bins of the flow start time
    start_bins: int = Field(64, ge=1, le=4096)
    hidden: int = Field(64, ge=8, le=2048)
    head_layers: int = Field(1, ge=0, le=4)
    dropout: float = Field(0.1, ge=0, lt=1)
    max_epochs: int = Field(40, ge=1)
    #: stop after this many epochs without a lower held-out NLL
    patience: int = Field(3, ge=1)
    #: flow samples per step; None: a twentieth of the training flows, between 16 and 1024 (a small trace
    #: still gets ~20 steps per epoch: at 256, ugr16-1k's 720 flows gave 3 and the header never learnt
    #: that ICMP has port 0 on both sides)
    batch_size: Optional[int] = Field(None, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    #: share of flow samples held out for early stopping (none below 20 flows: fixed max_epochs)
    validation_fraction: float = Field(0.1, ge=0, lt=0.5)
    #: sampling temperature (1 = the learnt distribution; <1 sharper, closer to frequent training values)
    temperature: float = Field(1.0, ge=0, le=10)

    @model_validator(mode="after")
    def _check_order(self) -> "ARConfig":
        groups = ("proto", "srcport", "dstport", "srcip", "dstip", "length", "start")
        if sorted(self.header_order) != sorted(groups):
            raise ValueError(f"header_order must list each of {', '.join(groups)} once, got {self.header_order}")
        return self


ModelKind = Literal["doppelganger", "ar"]
#: the models `model.kind` names (each one a `pipeline.models.TraceModel` in `pipeline.synthesizer.MODELS`)
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)


class ModelConfig(_Section):
    """Which model (`kind`) and its sizes: DoppelGANger's (NetShare's settings) or the `ar` section.

    The presets use `ar` (it wins the benchmark: docs/benchmarks.md); a config that names no kind is
    `doppelganger`, which is what every run folder written before the ar model existed holds."""

    kind: ModelKind = "doppelganger"
    ar: ARConfig = ARConfig()
    attribute_noise_dim: int = Field(5, ge=1)
    feature_noise_dim: int = Field(5, ge=1)
    attribute_num_layers: int = Field(4, ge=1)
    attribute_num_units: int = Field(512, ge=1)
    feature_num_layers: int = Field(1, ge=1)
    feature_num_units: int = Field(100, ge=1)
    critic_num_layers: int = Field(4, ge=1)
    critic_num_units: int = Field(512, ge=1)
    attr_critic_num_layers: int = Field(4, ge=1)
    attr_critic_num_units: int = Field(512, ge=1)
    #: records emitted per LSTM step ("batch generation"); must divide max_flow_len
    sample_len: int = Field(10, ge=1)


class TrainingConfig(_Section):
    epochs: int = Field(400, ge=1)
    #: flow samples per batch; None lets `fit` choose up to `max_batch_size` from the trace (flows/sizing.py)
    batch_size: Optional[int] = Field(None, ge=1)
    #: the largest batch the automatic choice uses, and the flow samples chunk 0 needs per chunk (NetShare's 100)
    max_batch_size: int = Field(100, ge=1)
    #: `fit` refuses traces with fewer flows (5-tuples); 40 is where the model starts to beat independent
    #: columns (flows/sizing.py, docs/pipeline.md). Lower it to fit a tinier trace anyway.
    min_flows: int = Field(40, ge=1)
    critic_steps: int = Field(5, ge=1)
    gp_lambda: float = Field(10.0, ge=0)
    attr_critic_weight: float = Field(1.0, ge=0)
    lr_generator: float = Field(1e-4, gt=0)
    lr_critic: float = Field(1e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    #: fine-tuned chunks train for this fraction of `epochs`
    finetune_fraction: float = Field(0.25, gt=0, le=1)
    checkpoint_every: int = Field(50, ge=1)
    #: pick each chunk's checkpoint on a held-out time slice (auto: when more than one checkpoint exists)
    checkpoint_selection: bool = True
    holdout_fraction: float = Field(0.1, ge=0, lt=0.5)
    device: str = "cpu"
    seed: int = Field(0, ge=0, le=2**64 - 1)  # numpy and torch seeds are unsigned 64-bit


class PrivacyConfig(_Section):
    """DP-SGD on both critics; sigma is calibrated from (epsilon, delta) before training."""

    epsilon: float = Field(gt=0)
    delta: float = Field(1e-5, gt=0, lt=1)
    clip_norm: float = Field(1.0, gt=0)
    accountant: Literal["rdp", "prv"] = "rdp"
    #: share of epsilon spent on the released flow count (Gaussian mechanism)
    count_epsilon_fraction: float = Field(0.05, gt=0, lt=1)
    #: public trace to pretrain on (no DP) before DP fine-tuning on the private one
    public_trace: Optional[str] = None


class TraceSynthConfig(_Section):
    """Everything a run needs. `kind`: packets (PCAP) or flows (NetFlow records)."""

    kind: Literal["packets", "flows"]
    fields: list[FieldConfig]
    time: TimeConfig = TimeConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    flow_length: FlowLengthConfig = FlowLengthConfig()
    word2vec: Word2VecConfig = Word2VecConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    privacy: Optional[PrivacyConfig] = None

    @model_validator(mode="after")
    def _check(self) -> "TraceSynthConfig":
        names = [f.name for f in self.fields]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"fields: duplicate field name(s) {sorted(dup)}")
        _check_fields(self)
        if self.flow_length.max_flow_len % self.model.sample_len:
            raise ValueError(f"model.sample_len ({self.model.sample_len}) must divide "
                             f"flow_length.max_flow_len ({self.flow_length.max_flow_len})")
        from .limits import check_model_size

        check_model_size(self)  # before anything is allocated: a typo in a size must not OOM the machine
        return self

    def field(self, name: str) -> FieldConfig:
        for f in self.fields:
            if f.name == name:
                return f
        raise ConfigError(f"fields: no field named {name!r}")


def _check_fields(config: "TraceSynthConfig") -> None:
    """Fields must fit the FlowTable layout: attributes come from the 5-tuple, features from each record."""
    from .schema import FLOW_KEY, TIME_COLUMN

    time_col = TIME_COLUMN[config.kind]
    if config.time.column != time_col:
        raise ValueError(f"time.column: a {config.kind} trace keeps time in {time_col!r}, not {config.time.column!r}")
    rng = config.time.interarrival_range
    if rng is not None and not 0 <= rng[0] < rng[1]:
        raise ValueError(f"time.interarrival_range: must be [min, max] with 0 <= min < max, got {rng}")
    for i, f in enumerate(config.fields):
        key = f"fields.{i} ({f.name})"
        if f.name == time_col:
            raise ValueError(f"{key}.name: time is modelled by the time section, not as a field; remove it")
        if f.role == "attribute" and f.name not in FLOW_KEY:
            raise ValueError(f"{key}.role: attributes are the 5-tuple ({', '.join(FLOW_KEY)}); "
                             f"make {f.name!r} a feature")
        if f.role == "feature" and f.name in FLOW_KEY:
            raise ValueError(f"{key}.role: {f.name!r} is part of the flow key; make it an attribute")
        if f.encoding == "bits" and f.n_bits % 8:
            raise ValueError(f"{key}.n_bits: must be a multiple of 8 (32 for IPv4, 128 for IPv6), got {f.n_bits}")
        if f.encoding != "numeric" and (f.log1p or f.range is not None):
            raise ValueError(f"{key}: log1p and range apply to numeric fields only (encoding is {f.encoding})")
        if f.top_k and f.encoding != "word2vec_port":
            raise ValueError(f"{key}.top_k: applies to word2vec_port fields only (encoding is {f.encoding}); "
                             "set it to 0")
        if f.encoding != "numeric" and (f.spikes or f.spike_values is not None):
            raise ValueError(f"{key}.spikes: spikes and spike_values apply to numeric fields only (encoding is "
                             f"{f.encoding}); set spikes to 0")
        port_choices = f.encoding == "word2vec_port" and f.top_k > 0
        if f.encoding != "categorical" and f.choices is not None and not port_choices:
            raise ValueError(f"{key}.choices: applies to categorical fields (and word2vec_port fields with "
                             f"top_k) only (encoding is {f.encoding})")
        if port_choices and f.choices is not None:
            bad = [c for c in f.choices if not str(c).isdigit() or int(c) > 65535]
            if bad:
                raise ValueError(f"{key}.choices: top ports must be integers in [0, 65535], got {bad[:5]}")


#: ports with their own one-hot slot in the presets (hybrid port encoding; docs/flows-and-encoders.md)
TOP_PORTS = 128
#: exact values with their own one-hot slot in the netflow preset's spiky fields (docs/flows-and-encoders.md;
#: measured in docs/benchmarks.md, "Spiky numeric encoding")
SPIKES = 16


def _ip(name: str) -> FieldConfig:
    return FieldConfig(name=name, role="attribute", encoding="bits", n_bits=32)



def _preset_pcap() -> TraceSynthConfig:
    """NetShare's examples/pcap/config_example_pcap_nodp.json, with tracesynth's documented changes:
    tcp_flags is modelled too, `flag` uses the values seen (NetShare fixes [0, 1, 2], which cannot encode
    DF|MF or the reserved bit), inter-arrival gets log1p, and flows are capped at 100 records and split.
    `off` is categorical over the offsets seen (NetShare: numeric over [0, 8191]): a numeric head smears
    mass over non-zero offsets, and every non-first fragment loses its ports in the header rules."""
    fields = [
        _ip("srcip"), _ip("dstip"),
        FieldConfig(name="srcport", role="attribute", encoding="word2vec_port", top_k=TOP_PORTS),
        FieldConfig(name="dstport", role="attribute", encoding="word2vec_port", top_k=TOP_PORTS),
        FieldConfig(name="proto", role="attribute", encoding="word2vec_proto"),
        FieldConfig(name="pkt_len", role="feature", encoding="numeric"),
        FieldConfig(name="tos", role="feature", encoding="numeric", range=(0.0, 255.0)),
        FieldConfig(name="id", role="feature", encoding="numeric", range=(0.0, 65535.0)),
        FieldConfig(name="flag", role="feature", encoding="categorical"),
        FieldConfig(name="off", role="feature", encoding="categorical"),
        FieldConfig(name="ttl", role="feature", encoding="numeric", range=(0.0, 255.0)),
        FieldConfig(name="tcp_flags", role="feature", encoding="categorical"),
    ]
    return TraceSynthConfig(kind="packets", fields=fields, time=TimeConfig(column="time"),
                            flow_length=FlowLengthConfig(max_flow_len=100), model=ModelConfig(kind="ar", sample_len=10),
                            training=_cpu_budget_training(epochs=80, checkpoint_every=20))


def _preset_netflow() -> TraceSynthConfig:
    """NetShare's examples/netflow/config_example_netflow_nodp.json (td, pkt, byt log1p + min-max, the
    label one-hot, sample_len 10); NetShare pads to the longest flow, tracesynth caps at 20 and splits.
    pkt and byt are spiky (`spikes`: their 16 most frequent values decode exactly; ugr16-1k pkt 31 is 19%
    of flows, byt 992 17%), which brought DoppelGANger's joint metrics closer to the held-out data."""
    fields = [
        _ip("srcip"), _ip("dstip"),
        FieldConfig(name="srcport", role="attribute", encoding="word2vec_port", top_k=TOP_PORTS),
        FieldConfig(name="dstport", role="attribute", encoding="word2vec_port", top_k=TOP_PORTS),
        FieldConfig(name="proto", role="attribute", encoding="word2vec_proto"),
        FieldConfig(name="td", role="feature", encoding="numeric", log1p=True),
        FieldConfig(name="pkt", role="feature", encoding="numeric", log1p=True, spikes=SPIKES),
        FieldConfig(name="byt", role="feature", encoding="numeric", log1p=True, spikes=SPIKES),
        FieldConfig(name="label", role="feature", encoding="categorical"),
    ]
    return TraceSynthConfig(kind="flows", fields=fields, time=TimeConfig(column="ts"),
                            flow_length=FlowLengthConfig(max_flow_len=20), model=ModelConfig(kind="ar", sample_len=10),
                            training=_cpu_budget_training(epochs=400, checkpoint_every=100, max_batch_size=50))


def _cpu_budget_training(**overrides) -> TrainingConfig:
    """Training defaults of the presets, sized for a CPU budget of minutes (docs/benchmarks.md, "Pipeline").

    NetShare trains 80k+ generator steps at Adam lr 1e-4 on a cluster; on a few cores a fit gets a few
    hundred steps per chunk, where lr 1e-4 leaves the generator far from converged. DoppelGANger's own
    lr 1e-3 (same betas) is used. Network sizes stay NetShare's. The netflow preset takes batches of 50:
    NetFlow traces have few flows per time chunk (ugr16-1k: 80 in chunk 0), and a batch must fit in one.
    """
    return TrainingConfig(lr_generator=1e-3, lr_critic=1e-3, **overrides)


PRESETS = {"pcap": _preset_pcap, "netflow": _preset_netflow}

#: Public ranges of the presets' numeric fields in DP mode, used when no public trace is given to fit
#: them on (`pipeline.private.dp_ready_preset`); values outside are clipped. Each is a property of the
#: protocol or of common exporters, never of a trace:
#: - tos, id, ttl: the header field's whole range (already fixed in the pcap preset);
#: - pkt_len: IP total length up to a 1500-byte Ethernet MTU (jumbo frames clip to 1500);
#: - td: flow duration up to an hour (exporters' active timeouts are 30 min or less; log1p scale);
#: - pkt, byt: up to 1e7 packets and 1e10 bytes per record (a 10 Gb/s link for 8 s; log1p scale).
#: With `--public` every range without a fixed value is fitted on the public trace instead.
DP_PUBLIC_RANGES: dict[str, tuple[float, float]] = {
    "tos": (0.0, 255.0), "id": (0.0, 65535.0), "ttl": (0.0, 255.0), "pkt_len": (0.0, 1500.0),
    "td": (0.0, 3600.0), "pkt": (0.0, 1e7), "byt": (0.0, 1e10),
}


def preset(name: str) -> TraceSynthConfig:
    """A fresh copy of a named preset (`pcap` or `netflow`)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def fields_for_columns(config: TraceSynthConfig, columns, *, trace: str, config_file: str | None) -> TraceSynthConfig:
    """`config` without the fields whose column the trace lacks, when they come from a preset.

    Presets model every field a trace can have (netflow: `label`), but flow records metered from a
    capture, or NetShare flows without `type`, have none: such a field is left out, with one log line,
    and the run's saved config shows the fields actually modelled. A config file names its fields on
    purpose, so there a missing column is refused, saying which field to remove.
    """
    missing = [f.name for f in config.fields if f.name not in set(map(str, columns))]
    if not missing:
        return config
    if config_file is not None:
        one = len(missing) == 1
        raise ConfigError(f"{config_file}: fields: {', '.join(map(repr, missing))} {'is not a column' if one else 'are not columns'} "
                          f"of {trace} (columns: {', '.join(map(str, columns))}); remove {'it' if one else 'them'} "
                          f"from `fields`, or give a trace that has {'it' if one else 'them'}")
    data = config.model_dump(mode="json")
    data["fields"] = [f for f in data["fields"] if f["name"] not in missing]
    log.warning("%s has no %s column: left out of the model (the run's config.json lists the fields modelled)",
                trace, ", ".join(map(repr, missing)))
    return config_from_dict(data, "preset")


def _format_validation(exc: ValidationError, source: str) -> str:
    parts = []
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"])
        # a whole-config validator's message names its own keys: no "<root>: Value error, " before it
        parts.append(f"{key}: {e['msg']}" if key else e["msg"].removeprefix("Value error, "))
    return f"{source}: invalid config: " + "; ".join(parts)


def config_from_dict(data: dict, source: str = "<config>") -> TraceSynthConfig:
    """Validate a plain dict; errors name the offending key."""
    try:
        return TraceSynthConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from None


def read_yaml_or_json(path: Path, what: str):
    """Parse a YAML (.yaml/.yml) or JSON file; any problem is one ConfigError line naming file, line, column."""
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    kind = "YAML" if yaml_file else "JSON"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (binary byte at offset {exc.start}); the {what} must be "
                          f"{kind} text") from None
    try:
        if yaml_file:
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:  # noqa: BLE001 -- yaml raises many classes; all mean "bad syntax"
        raise ConfigError(f"{path}: not valid {kind}: {_syntax_problem(exc)}") from None


def _syntax_problem(exc: Exception) -> str:
    """A YAML/JSON syntax error in one line: 'line L, column C: problem' (YAML's caret diagram dropped)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        problem = getattr(exc, "problem", None) or "syntax error"
        context = getattr(exc, "context", None)
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")
    return " ".join(str(exc).split())


def load_config(path: str | Path) -> TraceSynthConfig:
    """Load YAML (.yaml/.yml) or JSON; a `preset: NAME` key starts from that preset and overrides it."""
    path = Path(path)
    data = read_yaml_or_json(path, "config") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of keys to values")
    base = data.pop("preset", None)
    if base is not None:
        merged = _deep_merge(preset(str(base)).model_dump(mode="json"), data)
        return config_from_dict(merged, str(path))
    return config_from_dict(data, str(path))


def save_config(config: TraceSynthConfig, path: str | Path) -> Path:
    """Write YAML or JSON (by suffix), atomically."""
    from ._atomic import atomic_open

    path = Path(path)
    data = config.model_dump(mode="json")
    with atomic_open(path, "w") as fh:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            yaml.safe_dump(data, fh, sort_keys=False)
        else:
            json.dump(data, fh, indent=2)
    return path


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
