"""FlowEncoder: flow samples <-> the arrays DoppelGANger trains on, laid out by the config's fields.

Attributes [n, A]: every attribute field in config order (IP bits, port/protocol word2vec, ...), then
`flow_start` min-max over the chunk's window (sigmoid), then the flow tags (2-way one-hot each) when the
flows carry them. Features [n, L, D]: inter-arrival (log1p + min-max by default), then every feature
field in config order; steps after a flow's end are zero and `gen_flags` is 0 there. The generation flag
itself is not a feature: the model owns that head.

`fit` sees the whole trace (every chunk) once, so that all chunks share one layout and one set of ranges.
`inverse_transform` also decodes generated (soft) values: argmax per softmax span, clipping for numeric
fields (after the spike argmax with `spikes`), nearest neighbour for word2vec (after the top-port argmax
with `top_k`), and a flow ends at its first 0 flag (at least one record).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .._atomic import atomic_open
from ..config import FieldConfig, TraceSynthConfig
from ..errors import ConfigError, NotFittedError, UserError
from ..schema import FLOW_KEY, columns_for
from ..flows.table import FlowTable
from ..flows.tags import tag_columns
from .base import Encoder, Span, total_dim
from .bits import BitsEncoder
from .categorical import CategoricalEncoder
from .numeric import NumericEncoder, SpikyNumericEncoder
from .tokens import SpikeRule
from .word2vec import PortProtoEmbedding, Word2VecEncoder

log = logging.getLogger(__name__)

STATE_FILE = "encoder.json"
WORD2VEC_FILE = "word2vec.kv"
_ENCODERS = {"bits": BitsEncoder, "numeric": NumericEncoder, "categorical": CategoricalEncoder,
             "spiky_numeric": SpikyNumericEncoder}


@dataclass
class EncodedFlows:
    """Model-ready arrays: attributes [n, A], features [n, L, D] (zero after the end), gen_flags [n, L]."""

    attributes: np.ndarray
    features: np.ndarray
    gen_flags: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.attributes)


def _flow_tables(data) -> list[FlowTable]:
    """A FlowTable, or chunks (anything with `.flows`), or FlowTables, as a list of FlowTables."""
    if isinstance(data, FlowTable):
        return [data]
    tables = [getattr(d, "flows", d) for d in data]
    if not tables or not all(isinstance(t, FlowTable) for t in tables):
        raise TypeError("FlowEncoder.fit takes a FlowTable or a list of chunks / FlowTables")
    return tables


class FlowEncoder:
    def __init__(self, config: TraceSynthConfig):
        self.config = config

    # ---- fitting -------------------------------------------------------------------------------------
    def fit(self, data: FlowTable | Iterable) -> "FlowEncoder":
        tables = _flow_tables(data)
        attrs = pd.concat([t.attributes for t in tables], ignore_index=True)
        series = pd.concat([t.series for t in tables], ignore_index=True)
        started = time.perf_counter()
        self.embedding_ = self._fit_embedding(tables)
        self.embedding_fit_seconds_ = time.perf_counter() - started
        self.attribute_encoders_: dict[str, Encoder] = {}
        self.feature_encoders_: dict[str, Encoder] = {}
        for f in self.config.fields:
            source = attrs if f.role == "attribute" else series
            if f.name not in source.columns:
                raise ConfigError(f"fields: {f.name!r} ({f.role}) is not a column of the flow table "
                                  f"(have {', '.join(c for c in source.columns if c not in ('flow_id', 'step'))})")
            enc = self._make_encoder(f)
            target = self.attribute_encoders_ if f.role == "attribute" else self.feature_encoders_
            by_records = (f.top_k and not self.config.word2vec.pretrained) or (f.spikes and f.role == "attribute")
            if by_records:  # top ports and attribute spikes count records, not flows
                target[f.name] = enc.fit(source[f.name].to_numpy(), weights=_records_per_flow(tables))
            elif f.top_k:  # a public model: its own frequency order, reading no private data
                target[f.name] = enc.fit(None)
            else:
                target[f.name] = enc.fit(source[f.name].to_numpy())
        n_chunks = self.config.chunking.n_chunks
        if n_chunks is None:  # unsized config (fit sizes it first): as many chunks as the flows are tagged with
            n_chunks = sum(c.startswith("in_chunk_") for c in attrs.columns)
        tags = tag_columns(n_chunks)
        present = [c for c in tags if c in attrs.columns]
        if present and present != tags:
            raise UserError(f"flow tags: expected {len(tags)} tag columns for chunking.n_chunks="
                            f"{n_chunks}, found {len(present)}")
        self.tag_columns_ = present
        self.iat_encoder_ = NumericEncoder(self.config.time.interarrival_log1p, "zero_one",
                                           self.config.time.interarrival_range, name="iat",
                                           report_counts=self._report_counts).fit(
            series["iat"].to_numpy(np.float64))
        self.max_len_ = self.config.flow_length.max_flow_len
        return self

    def _fit_embedding(self, tables: list[FlowTable]) -> PortProtoEmbedding | None:
        if not any(f.encoding.startswith("word2vec") for f in self.config.fields):
            return None
        w = self.config.word2vec
        if w.pretrained:
            return PortProtoEmbedding.load(w.pretrained)
        cols = {c: [] for c in ("srcport", "dstport", "proto")}
        for t in tables:
            fid = t.series["flow_id"].to_numpy(np.int64)
            for c in cols:
                cols[c].append(t.attributes[c].to_numpy()[fid])
        return PortProtoEmbedding(w.vector_size, w.window, w.min_count, w.epochs, w.sg,
                                  self.config.training.seed, w.max_sentences).fit(*(np.concatenate(v) for v in cols.values()))

    def _make_encoder(self, f: FieldConfig) -> Encoder:
        if f.encoding.startswith("word2vec"):
            unknown = "nearest_value" if self.config.word2vec.pretrained else "error"
            return Word2VecEncoder(self.embedding_, f.encoding.split("_")[1], unknown, name=f.name,
                                   top_k=f.top_k, top_choices=f.choices if f.top_k else None,
                                   report_counts=self._report_counts)
        if f.encoding == "bits":
            return BitsEncoder(f.n_bits)
        if f.encoding == "numeric":
            numeric = NumericEncoder(f.log1p, f.scale, f.range, name=f.name, report_counts=self._report_counts)
            if f.spikes:
                return SpikyNumericEncoder(numeric, SpikeRule(f.spikes, f.spike_min_share), f.spike_values)
            return numeric
        return CategoricalEncoder(f.choices, name=f.name)

    @property
    def _report_counts(self) -> bool:
        """Whether encoders may log how many values they clipped or mapped: not in DP mode, where such a
        count is a statistic of the private trace outside the budget (the pipeline says once that it
        happens, `pipeline.private.PREPROCESSING_NOTICE`)."""
        return self.config.privacy is None

    def _check_fitted(self) -> None:
        if not hasattr(self, "max_len_"):
            raise NotFittedError("FlowEncoder is not fitted yet; call fit() first")

    # ---- layout --------------------------------------------------------------------------------------
    @property
    def attribute_spans(self) -> list[Span]:
        self._check_fitted()
        spans = [s for enc in self.attribute_encoders_.values() for s in enc.spans]
        return spans + [Span(1, "sigmoid")] + [Span(2, "softmax")] * len(self.tag_columns_)

    @property
    def feature_spans(self) -> list[Span]:
        self._check_fitted()
        return [s for enc in [self.iat_encoder_, *self.feature_encoders_.values()] for s in enc.spans]

    # ---- encoding ------------------------------------------------------------------------------------
    def transform(self, flows: FlowTable, window: tuple[float, float]) -> EncodedFlows:
        self._check_fitted()
        attrs, n, L = flows.attributes, flows.n_flows, self.max_len_
        parts = [enc.transform(attrs[name].to_numpy()) for name, enc in self.attribute_encoders_.items()]
        parts.append(_scale_window(attrs["flow_start"].to_numpy(np.float64), window).reshape(-1, 1))
        for c in self.tag_columns_:
            if c not in attrs.columns:
                raise UserError(f"flow tags: the flows lack tag column {c!r}; chunk them with split_chunks")
            v = attrs[c].to_numpy(np.float32)
            parts.append(np.stack([1.0 - v, v], axis=1))
        attributes = np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((n, 0), np.float32)

        series = flows.series
        fid = series["flow_id"].to_numpy(np.int64)
        step = series["step"].to_numpy(np.int64)
        if len(step) and step.max() >= L:
            raise UserError(f"a flow has {int(step.max()) + 1} records but flow_length.max_flow_len is {L}; "
                            "build the flows with FlowTable.from_records(table, max_flow_len) or split_chunks")
        long = [self.iat_encoder_.transform(series["iat"].to_numpy(np.float64))]
        long += [enc.transform(series[name].to_numpy()) for name, enc in self.feature_encoders_.items()]
        D = total_dim(self.feature_spans)
        features = np.zeros((n, L, D), dtype=np.float32)
        features[fid, step] = np.concatenate(long, axis=1)
        gen_flags = np.zeros((n, L), dtype=np.float32)
        gen_flags[fid, step] = 1.0
        return EncodedFlows(attributes, features, gen_flags, flows.lengths)

    def inverse_transform(self, encoded: EncodedFlows, window: tuple[float, float]) -> FlowTable:
        """Decode model outputs (exact or generated) into a FlowTable of kind `config.kind`.

        A flow ends at its first 0 flag (at least one record); `decode` does the rest."""
        self._check_fitted()
        L = self.max_len_
        flags = np.asarray(encoded.gen_flags)[:, :L] >= 0.5
        ended = ~flags
        lengths = np.where(ended.any(axis=1), np.argmax(ended, axis=1), L)
        lengths = np.maximum(lengths, 1).astype(np.int64)
        packed = np.asarray(encoded.features)[:, :L][np.arange(L) < lengths[:, None]]  # flow after flow
        return self.decode(encoded.attributes, packed, lengths, window)

    def decode(self, attributes: np.ndarray, records: np.ndarray, lengths: np.ndarray,
               window: tuple[float, float]) -> FlowTable:
        """Decode packed flows, as `DoppelGANger.generate` gives them: attributes [n, A], records [R, D]
        flow after flow in step order, lengths [n] (R = lengths.sum()), into a FlowTable."""
        per_flow, per_record = self.decode_columns(attributes, records, lengths, window)
        return FlowTable(self.config.kind, pd.DataFrame(per_flow), pd.DataFrame(per_record))

    def decode_columns(self, attributes: np.ndarray, records: np.ndarray, lengths: np.ndarray,
                       window: tuple[float, float]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """`decode` as plain arrays (generation's hot path builds its records from these without
        intermediate DataFrames): (per-flow columns: the attribute fields in their canonical dtypes,
        flow_start, the tags, flow_id; per-record columns: flow_id, step, iat and the feature fields)."""
        self._check_fitted()
        a = np.asarray(attributes)
        n = len(a)
        kind_dtypes = columns_for(self.config.kind)
        attrs, col = {}, 0
        for name, enc in self.attribute_encoders_.items():
            width = total_dim(enc.spans)
            attrs[name] = enc.inverse_transform(a[:, col:col + width])
            if name in FLOW_KEY and name in kind_dtypes:
                attrs[name] = attrs[name].astype(kind_dtypes[name], copy=False)
            col += width
        lo, hi = window
        attrs["flow_start"] = lo + np.clip(a[:, col].astype(np.float64), 0.0, 1.0) * (hi - lo)
        col += 1
        for c in self.tag_columns_:
            attrs[c] = (a[:, col + 1] > a[:, col]).astype(np.uint8)
            col += 2
        attrs["flow_id"] = np.arange(n, dtype=np.int64)

        fid, step = _record_index(np.asarray(lengths, dtype=np.int64))
        rows = np.asarray(records)
        if len(rows) != len(fid):
            raise ValueError(f"{len(rows)} records for flows of {len(fid)} records in all")
        series, col = {"flow_id": fid, "step": step}, 0
        for name, enc in [("iat", self.iat_encoder_), *self.feature_encoders_.items()]:
            width = total_dim(enc.spans)
            series[name] = enc.inverse_transform(rows[:, col:col + width])
            col += width
        self._fill_unmodelled(series, len(fid))
        return attrs, series

    def _fill_unmodelled(self, series: dict, n_records: int) -> None:
        """Canonical per-record columns the config does not model are written as zeros."""
        time_col = self.config.time.column
        for c, dtype in columns_for(self.config.kind).items():
            if c not in FLOW_KEY and c != time_col and c not in series:
                series[c] = np.zeros(n_records, dtype=dtype)

    # ---- persistence ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """encoder.json (config + fitted state, plain JSON) and word2vec.kv (gensim's own format)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.embedding_ is not None:
            self.embedding_.save(directory / WORD2VEC_FILE)
        state = {
            "config": self.config.model_dump(mode="json"),
            "attributes": {k: _encoder_state(e) for k, e in self.attribute_encoders_.items()},
            "features": {k: _encoder_state(e) for k, e in self.feature_encoders_.items()},
            "iat": self.iat_encoder_.state(),
            "tag_columns": self.tag_columns_,
            "max_len": self.max_len_,
        }
        with atomic_open(directory / STATE_FILE, "w") as fh:
            json.dump(state, fh, indent=1)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "FlowEncoder":
        from ..config import config_from_dict

        directory = Path(directory)
        path = directory / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except OSError as exc:
            raise UserError(f"{path}: cannot read the saved encoder ({exc.strerror}); is this a run folder?") from None
        self = cls(config_from_dict(state["config"], str(path)))
        w2v = directory / WORD2VEC_FILE
        self.embedding_ = PortProtoEmbedding.load(w2v) if w2v.exists() else None
        self.attribute_encoders_ = {k: self._restore(s) for k, s in state["attributes"].items()}
        self.feature_encoders_ = {k: self._restore(s) for k, s in state["features"].items()}
        self.iat_encoder_ = NumericEncoder.from_state(state["iat"])
        self.tag_columns_ = list(state["tag_columns"])
        self.max_len_ = int(state["max_len"])
        return self

    def _restore(self, state: dict) -> Encoder:
        if state["type"] == "word2vec":
            if self.embedding_ is None:
                raise UserError("the saved encoder uses word2vec but word2vec.kv is missing beside encoder.json")
            enc = Word2VecEncoder(self.embedding_, state["kind"], state["unknown"], state["name"],
                                  top_k=int(state.get("top_k", 0))).fit()
            return enc.restore_top(state.get("top_values", []))
        return _ENCODERS[state["type"]].from_state(state["state"])


def _encoder_state(enc: Encoder) -> dict:
    if isinstance(enc, Word2VecEncoder):
        state = {"type": "word2vec", "kind": enc.kind, "unknown": enc.unknown, "name": enc.name}
        if enc.top_k:
            state.update(top_k=enc.top_k, top_values=enc.top_values_.tolist())
        return state
    kind = next(k for k, cls in _ENCODERS.items() if isinstance(enc, cls))
    return {"type": kind, "state": enc.state()}


def _records_per_flow(tables: list[FlowTable]) -> np.ndarray:
    """Records of every flow, in the order of the concatenated attribute tables."""
    return np.concatenate([np.asarray(t.lengths, dtype=np.float64) for t in tables])


def _record_index(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flow lengths [n] -> (flow id, step) of every record, flow after flow."""
    fid = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    step = (np.arange(len(fid)) - np.repeat(np.cumsum(lengths) - lengths, lengths)).astype(np.int64)
    return fid, step


def _scale_window(times: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Flow start as a fraction of the chunk window (0 for a zero-width window)."""
    lo, hi = float(window[0]), float(window[1])
    if hi <= lo:
        return np.zeros(len(times), dtype=np.float32)
    return np.clip((times - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
