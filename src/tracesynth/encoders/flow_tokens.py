"""`FlowTokenizer`: a FlowTable <-> the token arrays of the autoregressive flow model.

One flow sample becomes
- a **header**: one token per slot, in a configurable order of groups: `proto`, `srcport`/`dstport`
  (class among the top-K ports, then high and low byte, the bytes only used for "other"), `srcip`/`dstip`
  (class among the top-K addresses, then four octets, likewise), `length` (records in the sample) and
  `start` (flow start time);
- its **records**: one row of tokens per record, `iat` (time since the previous record of the sample;
  for a continuation segment, since the previous record of the same 5-tuple) then every per-record field
  of the config (numeric fields through `SpikyBins`, categorical ones through `Categories`).

Records are kept flat ([records, fields], samples contiguous in flow order) with `lengths`, never padded
to the longest flow: at a million packets a padded array would be 100x larger than the data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import TraceSynthConfig
from ..errors import NotFittedError
from ..flows.table import FlowTable
from ..schema import columns_for
from .tokens import Categories, KeyTokens, SpikeRule, SpikyBins

HEADER_GROUPS = ("proto", "srcport", "dstport", "srcip", "dstip", "length", "start")
#: the default order: service first (protocol, server port), then hosts, then size and time; chosen by
#: measurement (docs/models.md, "Token order")
DEFAULT_HEADER_ORDER = ("proto", "length", "dstport", "srcport", "dstip", "srcip", "start")


@dataclass
class TokenizedFlows:
    """Token arrays of a set of flow samples."""

    header: np.ndarray        # [n, H] int64
    header_used: np.ndarray   # [n, H] bool: False for port bytes of a top-K port (implied, not trained)
    records: np.ndarray       # [R, F] int64, samples contiguous in order, R = lengths.sum()
    lengths: np.ndarray       # [n] int64 records per sample (>= 1)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def offsets(self) -> np.ndarray:
        return np.r_[0, np.cumsum(self.lengths)].astype(np.int64)

    def subset(self, idx: np.ndarray) -> "TokenizedFlows":
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        starts = np.repeat(self.offsets[idx], lengths)                 # each kept record's sample start
        first = np.repeat(np.cumsum(lengths) - lengths, lengths)       # ... and its position in the output
        rows = starts + np.arange(int(lengths.sum()), dtype=np.int64) - first
        return TokenizedFlows(self.header[idx], self.header_used[idx], self.records[rows], self.lengths[idx])


class FlowTokenizer:
    """Fit vocabularies on a FlowTable; tokens <-> flow samples. Parameters come from the run's config."""

    def __init__(self, config: TraceSynthConfig, header_order=DEFAULT_HEADER_ORDER, top_ports: int = 128,
                 spikes: SpikeRule = SpikeRule(), n_bins: int = 32, start_bins: int = 64, top_addresses: int = 256,
                 min_key_flows: int = 3):
        missing = set(HEADER_GROUPS) - set(header_order)
        if missing or len(header_order) != len(HEADER_GROUPS):
            raise ValueError(f"header_order must list each of {', '.join(HEADER_GROUPS)} once, got {list(header_order)}")
        self.config, self.header_order, self.top_ports = config, tuple(header_order), top_ports
        self.spikes, self.n_bins, self.start_bins = spikes, n_bins, start_bins
        self.top_addresses, self.min_key_flows = top_addresses, min_key_flows

    # ---- fit ------------------------------------------------------------------------------------
    def fit(self, flows: FlowTable) -> "FlowTokenizer":
        cfg, attrs = self.config, flows.attributes
        self.kind_ = flows.kind
        self.max_len_ = int(cfg.flow_length.max_flow_len)
        self.proto_ = Categories().fit(attrs["proto"].to_numpy())
        first = attrs["segment"].to_numpy() == 0 if "segment" in attrs else np.ones(len(attrs), bool)
        self.keys_ = {k: KeyTokens(2 if k.endswith("port") else 4,
                                   self.top_ports if k.endswith("port") else self.top_addresses,
                                   self.min_key_flows).fit(attrs[k].to_numpy()[first])
                      for k in ("srcport", "dstport", "srcip", "dstip")}
        self.length_ = SpikyBins(self.spikes, self.n_bins, log1p=True, integer=True, low=1,
                                 high=self.max_len_).fit(flows.lengths)
        start = attrs["flow_start"].to_numpy(np.float64)
        lo, hi = (float(start.min()), float(start.max())) if len(start) else (0.0, 1.0)
        self.start_ = SpikyBins(SpikeRule(max_spikes=0), self.start_bins, low=lo, high=hi).fit(start)
        self.fields_ = ["iat"] + [f.name for f in cfg.fields if f.role == "feature"]
        self.field_tokenizers_ = {name: self._field_tokenizer(name).fit(flows.series[name].to_numpy())
                                  for name in self.fields_}
        self.slots_ = self._slots()
        return self

    def _field_tokenizer(self, name: str):
        if name == "iat":
            return SpikyBins(self.spikes, self.n_bins, log1p=self.config.time.interarrival_log1p, low=0.0)
        field = self.config.field(name)
        if field.encoding == "categorical":
            return Categories()
        dtype = columns_for(self.config.kind).get(name, np.dtype("float64"))
        integer = dtype.kind in "iu"
        high = float(np.iinfo(dtype).max) if integer else None
        if field.range is not None:
            high = float(field.range[1])
        return SpikyBins(self.spikes, self.n_bins, log1p=field.log1p, integer=integer, low=0.0, high=high)

    def _slots(self) -> list[tuple[str, int]]:
        """(slot name, vocabulary size) of every header slot, in order."""
        slots = []
        for group in self.header_order:
            if group == "proto":
                slots.append(("proto", self.proto_.n_tokens))
            elif group in self.keys_:
                key = self.keys_[group]
                slots += [(f"{group}.class", key.n_classes)] + [(f"{group}.{i}", 256) for i in range(key.n_bytes)]
            elif group == "length":
                slots.append(("length", self.length_.n_tokens))
            else:
                slots.append(("start", self.start_.n_tokens))
        return slots

    def _check(self) -> None:
        if not hasattr(self, "slots_"):
            raise NotFittedError("FlowTokenizer is not fitted yet; call fit() first")

    @property
    def header_vocab(self) -> list[int]:
        self._check()
        return [v for _, v in self.slots_]

    @property
    def record_vocab(self) -> list[int]:
        self._check()
        return [self.field_tokenizers_[n].n_tokens for n in self.fields_]

    # ---- transform --------------------------------------------------------------------------------
    def transform(self, flows: FlowTable) -> TokenizedFlows:
        self._check()
        attrs, n = flows.attributes, flows.n_flows
        cols, used = [], []
        for group in self.header_order:
            if group == "proto":
                cols.append(self.proto_.transform(attrs["proto"].to_numpy()))
                used.append(np.ones(n, bool))
            elif group in self.keys_:
                cls, parts, other = self.keys_[group].transform(attrs[group].to_numpy())
                cols += [cls, *parts]
                used += [np.ones(n, bool)] + [other] * len(parts)
            elif group == "length":
                cols.append(self.length_.transform(flows.lengths))
                used.append(np.ones(n, bool))
            else:
                cols.append(self.start_.transform(attrs["flow_start"].to_numpy(np.float64)))
                used.append(np.ones(n, bool))
        header = np.stack(cols, axis=1).astype(np.int64) if n else np.zeros((0, len(self.slots_)), np.int64)
        header_used = np.stack(used, axis=1) if n else np.zeros((0, len(self.slots_)), bool)
        series = flows.series
        records = np.stack([self.field_tokenizers_[f].transform(series[f].to_numpy()) for f in self.fields_],
                           axis=1).astype(np.int64) if len(series) else np.zeros((0, len(self.fields_)), np.int64)
        return TokenizedFlows(header, header_used, records, flows.lengths.astype(np.int64))

    # ---- inverse ----------------------------------------------------------------------------------
    def decode_lengths(self, length_tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Records per sample from the header's length tokens (the decoder then emits that many)."""
        return np.clip(self.length_.inverse(length_tokens, rng), 1, self.max_len_).astype(np.int64)

    def implied_slots(self) -> dict[int, tuple[int, np.ndarray]]:
        """For every byte slot of a port or address: (its class slot, byte token per class, -1 for
        "other"): the bytes a top value's class implies (`ARFlowModel.sample_header`)."""
        out = {}
        for name, key in self.keys_.items():
            cls_slot = self.slot_index(f"{name}.class")
            _, parts, _ = key.transform(key.top_)
            for i, part in enumerate(parts):
                out[self.slot_index(f"{name}.{i}")] = (cls_slot, np.r_[part, -1].astype(np.int64))
        return out

    def slot_index(self, name: str) -> int:
        return [s for s, _ in self.slots_].index(name)

    def inverse(self, header: np.ndarray, records: np.ndarray, lengths: np.ndarray,
                rng: np.random.Generator) -> FlowTable:
        """Generated tokens -> a FlowTable of flow samples (then `FlowTable.to_records` gives records)."""
        self._check()
        n = len(header)
        col = {s: header[:, i] for i, (s, _) in enumerate(self.slots_)}
        attrs = {}
        for name, key in self.keys_.items():
            attrs[name] = key.inverse(col[f"{name}.class"], [col[f"{name}.{i}"] for i in range(key.n_bytes)])
        attrs["proto"] = self.proto_.inverse(col["proto"]).astype(np.int64)
        attributes = pd.DataFrame({k: attrs[k] for k in ("srcip", "dstip", "srcport", "dstport", "proto")})
        attributes["flow_start"] = self.start_.inverse(col["start"], rng)
        attributes["segment"] = np.zeros(n, dtype=np.int64)
        attributes["flow_id"] = np.arange(n, dtype=np.int64)
        flow_id = np.repeat(np.arange(n, dtype=np.int64), lengths)
        first = np.r_[0, np.cumsum(lengths)[:-1]] if n else np.empty(0, np.int64)
        step = np.arange(len(flow_id), dtype=np.int64) - np.repeat(first, lengths)
        series = {"flow_id": flow_id, "step": step}
        for j, name in enumerate(self.fields_):
            values = self.field_tokenizers_[name].inverse(records[:, j], rng)
            series[name] = values
        series["iat"] = np.where(step == 0, 0.0, series["iat"]).astype(np.float64)
        return FlowTable(self.kind_, attributes, pd.DataFrame(series))

    # ---- persistence ------------------------------------------------------------------------------
    def to_state(self) -> dict:
        self._check()
        return {"header_order": list(self.header_order), "top_ports": self.top_ports,
                "spikes": [self.spikes.max_spikes, self.spikes.min_share], "n_bins": self.n_bins,
                "start_bins": self.start_bins, "kind": self.kind_, "max_len": self.max_len_,
                "top_addresses": self.top_addresses, "min_key_flows": self.min_key_flows,
                "proto": self.proto_.to_state(), "keys": {k: v.to_state() for k, v in self.keys_.items()},
                "length": self.length_.to_state(), "start": self.start_.to_state(), "fields": self.fields_,
                "field_tokenizers": {k: {"type": type(v).__name__, **v.to_state()}
                                     for k, v in self.field_tokenizers_.items()}}

    @classmethod
    def from_state(cls, config: TraceSynthConfig, state: dict) -> "FlowTokenizer":
        obj = cls(config, tuple(state["header_order"]), state["top_ports"], SpikeRule(*state["spikes"]),
                  state["n_bins"], state["start_bins"], state["top_addresses"], state["min_key_flows"])
        obj.kind_, obj.max_len_ = state["kind"], int(state["max_len"])
        obj.proto_ = Categories.from_state(state["proto"])
        obj.keys_ = {k: KeyTokens.from_state(v) for k, v in state["keys"].items()}
        obj.length_ = SpikyBins.from_state(state["length"])
        obj.start_ = SpikyBins.from_state(state["start"])
        obj.fields_ = list(state["fields"])
        kinds = {"SpikyBins": SpikyBins, "Categories": Categories}
        obj.field_tokenizers_ = {k: kinds[v["type"]].from_state(v) for k, v in state["field_tokenizers"].items()}
        obj.slots_ = obj._slots()
        return obj
