"""Field values as tokens: the vocabularies of the autoregressive flow model (`model/ar.py`).

Every modelled value becomes one token (a class index) or a few, so a categorical head with a
cross-entropy loss can learn it:

- `SpikyBins` (numeric fields: pkt_len, ttl, tos, iat, td, pkt, byt, flow length, flow start): the most
  frequent exact values get their own token ("spikes": pkt_len 1500/52/40, ttl 57-60, tos 0, byt 992,
  iat 0), the rest fall into quantile bins (optionally on a log1p scale). Sampling a bin token draws
  uniformly inside the bin, so generated values stay continuous and never collapse onto bin edges.
- `Categories` (categorical fields: proto, tcp_flags, flag, off, label): one token per value seen.
- ports and IPv4 addresses (`KeyTokens`): the K values seen in the most flows as tokens plus "other",
  then the value's bytes (only read for "other": two for a port, four octets for an address), so servers
  and popular hosts are exact, and rare ports and hosts are drawn from learnt byte patterns (octet by
  octet, each conditioned on the earlier ones, so prefixes and subnets are learnt).

Each tokenizer is scikit-learn style: `fit` learns attributes ending in `_`, `transform` maps values to
int64 tokens, `inverse` maps tokens back (numeric ones with a seeded Generator for the in-bin draw).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import NotFittedError


@dataclass(frozen=True)
class SpikeRule:
    """Which exact values of a numeric field get their own token."""

    #: at most this many exact values
    max_spikes: int = 32
    #: a value needs at least this share of the records to be a spike
    min_share: float = 0.005


def top_values(values: np.ndarray, rule: SpikeRule) -> np.ndarray:
    """The exact values that `rule` makes spikes, most frequent first (float64)."""
    values = np.asarray(values, dtype=np.float64)
    if rule.max_spikes <= 0 or len(values) == 0:
        return np.empty(0, dtype=np.float64)
    uniq, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")[: rule.max_spikes]
    keep = order[counts[order] >= rule.min_share * len(values)]
    return uniq[keep]


#: redraws of integer values whose rounding left their bin (a bin narrower than one integer keeps the last)
_REDRAWS = 64


class SpikyBins:
    """Numeric values -> spike tokens (exact values) then bin tokens (quantiles of the rest)."""

    def __init__(self, rule: SpikeRule = SpikeRule(), n_bins: int = 32, log1p: bool = False,
                 integer: bool = False, low: float | None = None, high: float | None = None):
        self.rule, self.n_bins, self.log1p, self.integer = rule, n_bins, log1p, integer
        self.low, self.high = low, high

    # -- scale ----------------------------------------------------------------------------------
    def _to_scale(self, v: np.ndarray) -> np.ndarray:
        return np.log1p(np.maximum(v, 0.0)) if self.log1p else v

    def _from_scale(self, t: np.ndarray) -> np.ndarray:
        return np.expm1(t) if self.log1p else t

    # -- fit / transform --------------------------------------------------------------------------
    def fit(self, values: np.ndarray) -> "SpikyBins":
        v = np.asarray(values, dtype=np.float64)
        self.spikes_ = top_values(v, self.rule)
        self._spike_order = np.argsort(self.spikes_, kind="stable")
        rest = v[~np.isin(v, self.spikes_)]
        if not len(rest):
            self.edges_ = np.empty(0)
        elif self.integer:   # bins of whole integers [a, b): edges half-way between integers
            ints = np.unique(np.round(np.quantile(rest, np.linspace(0.0, 1.0, self.n_bins + 1))))
            ints = np.r_[ints[:-1], ints[-1] + 1] if len(ints) > 1 else np.r_[ints, ints + 1]
            self.edges_ = self._to_scale(ints - 0.5) if not self.log1p else np.log1p(np.maximum(ints - 0.5, 0.0))
        else:
            edges = np.unique(np.quantile(self._to_scale(rest), np.linspace(0.0, 1.0, self.n_bins + 1)))
            self.edges_ = np.array([edges[0], edges[0]]) if len(edges) == 1 else edges  # one value: zero width
        return self

    @property
    def n_tokens(self) -> int:
        self._check()
        return max(1, len(self.spikes_) + max(len(self.edges_) - 1, 0))

    @property
    def n_spikes(self) -> int:
        self._check()
        return len(self.spikes_)

    def _check(self) -> None:
        if not hasattr(self, "spikes_"):
            raise NotFittedError("SpikyBins is not fitted yet; call fit() first")

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Tokens; a value outside the fitted range goes to the nearest bin (or, with no bins, spike)."""
        self._check()
        v = np.asarray(values, dtype=np.float64)
        out = np.zeros(len(v), dtype=np.int64)
        n_bins = max(len(self.edges_) - 1, 0)
        is_spike = np.zeros(len(v), dtype=bool)
        if len(self.spikes_):
            sorted_spikes = self.spikes_[self._spike_order]
            pos = np.clip(np.searchsorted(sorted_spikes, v), 0, len(sorted_spikes) - 1)
            is_spike = sorted_spikes[pos] == v
            out[is_spike] = self._spike_order[pos[is_spike]]
            if n_bins == 0:                           # every value is a spike: nearest one
                near = np.abs(v[:, None] - self.spikes_[None, :]).argmin(axis=1) if len(v) else out
                out[~is_spike] = near[~is_spike]
                return out
        if n_bins:
            t = self._to_scale(v[~is_spike])
            b = np.clip(np.searchsorted(self.edges_, t, side="right") - 1, 0, n_bins - 1)
            out[~is_spike] = len(self.spikes_) + b
        return out

    def inverse(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Values: a spike's exact value, or a uniform draw inside the bin (on the fitted scale)."""
        self._check()
        tok = np.asarray(tokens, dtype=np.int64)
        out = np.empty(len(tok), dtype=np.float64)
        k = len(self.spikes_)
        spike = tok < k
        out[spike] = self.spikes_[tok[spike]]
        n_bins = max(len(self.edges_) - 1, 0)
        if n_bins:
            rows = np.flatnonzero(~spike)
            out[rows] = self._draw_in_bins(np.clip(tok[rows] - k, 0, n_bins - 1), rng)
            if self.integer:  # a rounded draw may leave its bin or hit a spike: redraw those rows
                for _ in range(_REDRAWS):
                    wrong = rows[self.transform(self._finish(out[rows])) != tok[rows]]
                    if not len(wrong):
                        break
                    out[wrong] = self._draw_in_bins(np.clip(tok[wrong] - k, 0, n_bins - 1), rng)
        elif (~spike).any():
            out[~spike] = self.spikes_[0] if k else 0.0
        return self._finish(out)

    def _draw_in_bins(self, bins: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.edges_[bins], self.edges_[bins + 1]
        return self._from_scale(lo + (hi - lo) * rng.random(len(bins)))

    def _finish(self, values: np.ndarray) -> np.ndarray:
        if self.integer:
            values = np.rint(values)
        if self.low is not None or self.high is not None:
            values = np.clip(values, self.low, self.high)
        return values

    def to_state(self) -> dict:
        self._check()
        return {"spikes": self.spikes_.tolist(), "edges": self.edges_.tolist(), "n_bins": self.n_bins,
                "log1p": self.log1p, "integer": self.integer, "low": self.low, "high": self.high,
                "max_spikes": self.rule.max_spikes, "min_share": self.rule.min_share}

    @classmethod
    def from_state(cls, state: dict) -> "SpikyBins":
        obj = cls(SpikeRule(state["max_spikes"], state["min_share"]), state["n_bins"], state["log1p"],
                  state["integer"], state["low"], state["high"])
        obj.spikes_ = np.asarray(state["spikes"], dtype=np.float64)
        obj._spike_order = np.argsort(obj.spikes_, kind="stable")
        obj.edges_ = np.asarray(state["edges"], dtype=np.float64)
        return obj


class Categories:
    """Categorical values -> one token per value seen (most frequent first); unseen -> the most frequent."""

    def fit(self, values: np.ndarray) -> "Categories":
        counts = pd.Series(np.asarray(values)).value_counts(sort=True)
        self.values_ = list(counts.index) or [0]
        return self

    @property
    def n_tokens(self) -> int:
        return len(self.values_)

    def transform(self, values: np.ndarray) -> np.ndarray:
        idx = pd.Index(self.values_).get_indexer(np.asarray(values))
        return np.where(idx < 0, 0, idx).astype(np.int64)

    def inverse(self, tokens: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.asarray(self.values_, dtype=object)[np.asarray(tokens, dtype=np.int64)]

    def to_state(self) -> dict:
        return {"values": [v.item() if hasattr(v, "item") else v for v in self.values_]}

    @classmethod
    def from_state(cls, state: dict) -> "Categories":
        obj = cls()
        obj.values_ = list(state["values"])
        return obj


class KeyTokens:
    """A port (2 bytes) or IPv4 address (4 bytes) -> (class, byte, byte, ...): class < K is one of the K
    values seen in the most flows (at least `min_flows` of them; the bytes are then implied and not trained
    on), class K is "other" and the bytes, most significant first, carry the value.

    `min_flows` keeps a value seen in one or two flows (a client's ephemeral port, a one-off host) out of
    the vocabulary: the model should learn such values as byte patterns, not replay them."""

    def __init__(self, n_bytes: int, top_k: int = 128, min_flows: int = 3):
        self.n_bytes, self.top_k, self.min_flows = n_bytes, top_k, min_flows

    def fit(self, values: np.ndarray) -> "KeyTokens":
        """`values`: one per flow."""
        values = np.asarray(values, dtype=np.int64)
        uniq, counts = np.unique(values, return_counts=True)
        order = np.argsort(-counts, kind="stable")[: self.top_k]
        self.top_ = uniq[order[counts[order] >= self.min_flows]]
        return self

    @property
    def n_classes(self) -> int:
        return len(self.top_) + 1

    def transform(self, values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """(class, [bytes], bytes_used); `bytes_used` marks "other" values."""
        values = np.asarray(values, dtype=np.int64)
        hit = np.zeros(len(values), bool)
        cls = np.full(len(values), len(self.top_), dtype=np.int64)
        if len(self.top_):
            order = np.argsort(self.top_, kind="stable")
            sorted_top = self.top_[order]
            pos = np.clip(np.searchsorted(sorted_top, values), 0, len(sorted_top) - 1)
            hit = sorted_top[pos] == values
            cls[hit] = order[pos[hit]]
        shifts = [8 * (self.n_bytes - 1 - i) for i in range(self.n_bytes)]
        return cls, [(values >> s) & 0xFF for s in shifts], ~hit

    def inverse(self, cls: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
        cls = np.asarray(cls, dtype=np.int64)
        value = np.zeros(len(cls), dtype=np.int64)
        for part in parts:
            value = (value << 8) | np.asarray(part, dtype=np.int64)
        if not len(self.top_):
            return value
        return np.where(cls >= len(self.top_), value, self.top_[np.minimum(cls, len(self.top_) - 1)])

    def to_state(self) -> dict:
        return {"n_bytes": self.n_bytes, "top_k": self.top_k, "min_flows": self.min_flows, "top": self.top_.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> "KeyTokens":
        obj = cls(state["n_bytes"], state["top_k"], state["min_flows"])
        obj.top_ = np.asarray(state["top"], dtype=np.int64)
        return obj
