"""Documented resource limits: what tracesynth refuses up front instead of running until the OS kills it.

Each limit is checked before anything large is allocated, and a refusal is one `UserError` line that
says the estimate, the limit and what to change (docs/cli.md, "Limits"). The estimates are deliberately
simple (dominant terms only): they exist to tell a typo (`attribute_num_units: 1000000000`,
`--count 1000000000000`) from a big but real job, not to predict memory to the megabyte.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from .config import TraceSynthConfig

#: Largest model (all four networks together). The presets have 3.4 (netflow) and 6.0 (pcap) million.
MAX_MODEL_PARAMETERS = 200_000_000
#: Training keeps 4 float32 copies of every parameter: the weights, their gradients, Adam's two moments.
BYTES_PER_PARAMETER = 16
#: Largest training-memory estimate (parameters + one batch of activations) accepted by a config.
MAX_TRAINING_BYTES = 32 << 30

#: Largest synthetic trace one `generate` writes (packets or flow records). Larger outputs: generate
#: several files with different seeds.
MAX_GENERATE_RECORDS = 1_000_000_000
#: Peak memory per generated record (the table, the encoded rows it is decoded from, the writer's
#: buffers): measured 270 bytes per packet on the pcap preset (300k -> 600k packets: +77 MB peak RSS,
#: on top of a fixed ~700 MB), with margin.
GENERATE_BYTES_PER_RECORD = 400

#: A gzip-compressed capture may inflate to at most this multiple of its compressed size; real captures
#: compress 2-20x (headers repeat, payloads do not), a decompression bomb 1000x.
MAX_GZIP_RATIO = 100
#: ... except that any file may inflate to this many bytes, whatever its ratio (small, very regular
#: captures compress well).
MIN_GZIP_LIMIT = 64 << 20
#: ... and no file beyond this many bytes.
MAX_GUNZIPPED = 4 << 30


def gzip_limit(compressed_bytes: int) -> int:
    """How far a gzip file of `compressed_bytes` may inflate before it is refused as a bomb."""
    return min(MAX_GUNZIPPED, max(MIN_GZIP_LIMIT, MAX_GZIP_RATIO * int(compressed_bytes)))


# ---- model size ----------------------------------------------------------------------------------
def _field_width(field) -> int:
    """Encoded width of one field (what the encoders produce), estimated from the config alone."""
    if field.encoding == "bits":
        return field.n_bits
    if field.encoding == "word2vec_port":
        return 10 + (field.top_k + 1 if field.top_k else 0)
    if field.encoding == "word2vec_proto":
        return 10
    if field.encoding == "categorical":
        return len(field.choices) if field.choices else 16
    return 1 + (field.spikes + 1 if field.spikes else 0)


def parameter_estimate(cfg: "TraceSynthConfig") -> int:
    """Parameters of the four networks (attribute generator, LSTM feature generator, both critics).

    Widths: A = attribute row (fields, flow start, 1 + n_chunks two-way tags), D = one record's features
    (+ the two-way "ends" flag), L = max_flow_len, S = sample_len. Hidden-to-hidden terms dominate.
    """
    m = cfg.model
    attrs = sum(_field_width(f) for f in cfg.fields if f.role == "attribute")
    a_dim = attrs + 1 + 2 * (1 + (cfg.chunking.n_chunks or cfg.chunking.max_chunks))  # unset: its bound
    d_dim = sum(_field_width(f) for f in cfg.fields if f.role == "feature") + 1 + 2
    seq = cfg.flow_length.max_flow_len

    def mlp(inp: int, layers: int, units: int, out: int) -> int:
        return inp * units + (layers - 1) * units * units + units * out

    attribute_gen = mlp(m.attribute_noise_dim, m.attribute_num_layers, m.attribute_num_units, a_dim)
    lstm_in = a_dim + m.feature_noise_dim
    feature_gen = (m.feature_num_layers * 4 * m.feature_num_units * (lstm_in + m.feature_num_units)
                   + m.feature_num_units * m.sample_len * d_dim)
    critic = mlp(a_dim + seq * d_dim, m.critic_num_layers, m.critic_num_units, 1)
    attr_critic = mlp(a_dim, m.attr_critic_num_layers, m.attr_critic_num_units, 1)
    return attribute_gen + feature_gen + critic + attr_critic


def training_bytes_estimate(cfg: "TraceSynthConfig", parameters: int) -> int:
    """Training memory: parameter state plus one batch's activations (float32, forward and backward,
    the gradient penalty's second pass doubling the critic's)."""
    m, batch = cfg.model, cfg.training.batch_size or cfg.training.max_batch_size  # unset: its bound
    widths = (m.attribute_num_layers * m.attribute_num_units
              + cfg.flow_length.max_flow_len * m.feature_num_layers * m.feature_num_units * 5
              + 2 * m.critic_num_layers * m.critic_num_units + 2 * m.attr_critic_num_layers * m.attr_critic_num_units)
    return parameters * BYTES_PER_PARAMETER + 3 * batch * widths * 4


def check_model_size(cfg: "TraceSynthConfig") -> None:
    """Raise ValueError (the config validator turns it into one ConfigError line) for a model too big to
    train: more than MAX_MODEL_PARAMETERS parameters or a MAX_TRAINING_BYTES memory estimate."""
    params = parameter_estimate(cfg)
    if params > MAX_MODEL_PARAMETERS:
        raise ValueError(f"model: these sizes make about {params:.3g} parameters, more than the limit of "
                         f"{MAX_MODEL_PARAMETERS:.3g} (about {_gib(params * BYTES_PER_PARAMETER)} to train); "
                         "lower the *_num_units / *_num_layers values (the presets use 100-512 units)")
    need = training_bytes_estimate(cfg, params)
    if need > MAX_TRAINING_BYTES:
        raise ValueError(f"model/training: training would need about {_gib(need)} of memory, more than the "
                         f"limit of {_gib(MAX_TRAINING_BYTES)}; lower training.batch_size, "
                         "flow_length.max_flow_len or the *_num_units values")


# ---- generation size -----------------------------------------------------------------------------
def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_generate_size(records: int | float, option: str = "--count") -> int:
    """The number of records to generate, or one UserError line (naming `option`) when it is not a
    finite non-negative number, passes MAX_GENERATE_RECORDS, or needs more memory than is available."""
    if isinstance(records, float) and not math.isfinite(records) or records < 0:
        raise UserError(f"{option}: the output size must be a finite, non-negative number, got {records}")
    if records > MAX_GENERATE_RECORDS:
        if isinstance(records, int):  # may be too large for a float
            shown = f"{records:,}" if records < 10**15 else f"about 1e{len(str(records)) - 1}"
        else:
            shown = f"{records:.3g}"
        raise UserError(f"{option}: {shown} records is more than one generate writes "
                        f"({MAX_GENERATE_RECORDS:,}); ask for fewer, or write several files with different --seed")
    n = int(round(records))
    need = n * GENERATE_BYTES_PER_RECORD
    avail = available_memory()
    if avail is not None and need > avail:
        raise UserError(f"{option}: {n:,} records need about {_gib(need)} of memory to generate, but "
                        f"{_gib(avail)} is available; ask for at most {avail // GENERATE_BYTES_PER_RECORD:,}")
    return n


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


__all__ = ["MAX_MODEL_PARAMETERS", "MAX_TRAINING_BYTES", "MAX_GENERATE_RECORDS", "GENERATE_BYTES_PER_RECORD",
           "MAX_GZIP_RATIO", "MIN_GZIP_LIMIT", "MAX_GUNZIPPED", "gzip_limit", "parameter_estimate",
           "check_model_size", "check_generate_size", "available_memory"]
