"""Continuous fields: optional log1p (heavy tails), then min-max to [0, 1] (sigmoid) or [-1, 1] (tanh).

The range comes from the data (`fit`) or is fixed (`value_range`, required in DP mode so that the
encoding does not read private data). Values outside a fixed range are clipped, and a warning says how
many (unless `report_counts` is off: in DP mode such a count is a private statistic). Decoding clips to the range, so generated values always map back inside it; integer fields are
rounded back to their dtype.

`SpikyNumericEncoder` (field option `spikes`) puts a one-hot span of the most frequent exact values ahead
of that column, for spiky fields (pkt_len 1500, tos 0, byt 992).
"""
from __future__ import annotations

import logging

import numpy as np

from ..errors import UserError
from .base import Encoder, Span
from .tokens import SpikeRule, top_values

log = logging.getLogger(__name__)


class NumericEncoder(Encoder):
    def __init__(self, log1p: bool = False, scale: str = "zero_one",
                 value_range: tuple[float, float] | None = None, name: str = "value", report_counts: bool = True):
        self.log1p = log1p
        self.scale = scale
        self.value_range = value_range
        self.name = name
        self.report_counts = report_counts

    def _forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.log1p(x) if self.log1p else x

    def fit(self, values: np.ndarray) -> "NumericEncoder":
        if self.scale not in ("zero_one", "minus_one_one"):
            raise ValueError(f"{self.name}: scale must be zero_one or minus_one_one, got {self.scale!r}")
        values = np.asarray(values)
        self.dtype_ = str(values.dtype)
        if self.value_range is not None:
            lo, hi = self._forward(np.asarray(self.value_range, dtype=np.float64))
        elif values.size:
            if self.log1p and np.min(values) < 0:
                raise UserError(f"{self.name}: log1p needs non-negative values, found {float(np.min(values)):g}; "
                                "clip the column at 0 or set log1p: false for this field")
            f = self._forward(values)
            lo, hi = float(np.min(f)), float(np.max(f))
        else:
            lo, hi = 0.0, 1.0
        self.min_, self.max_ = float(lo), float(hi)
        return self

    @property
    def spans(self) -> list[Span]:
        return [Span(1, "sigmoid" if self.scale == "zero_one" else "tanh")]

    def transform(self, values: np.ndarray) -> np.ndarray:
        """float64 [n, 1] in the scale's interval (the caller casts to float32)."""
        self._check_fitted()
        f = self._forward(values)
        width = self.max_ - self.min_
        unit = (f - self.min_) / width if width > 0 else np.zeros_like(f)
        outside = (unit < 0) | (unit > 1)
        if outside.any():
            if self.report_counts:
                log.warning("%s: %d value(s) outside the range [%g, %g] were clipped", self.name,
                            int(outside.sum()), *self._range())
            unit = np.clip(unit, 0.0, 1.0)
        out = unit if self.scale == "zero_one" else unit * 2.0 - 1.0
        return out.reshape(-1, 1)

    def inverse_transform(self, encoded: np.ndarray) -> np.ndarray:
        self._check_fitted()
        e = np.asarray(encoded, dtype=np.float64).reshape(-1)
        unit = e if self.scale == "zero_one" else (e + 1.0) / 2.0
        f = np.clip(unit, 0.0, 1.0) * (self.max_ - self.min_) + self.min_
        x = np.expm1(f) if self.log1p else f
        dtype = np.dtype(self.dtype_)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return np.clip(np.rint(x), info.min, info.max).astype(dtype)
        return x.astype(dtype if dtype.kind == "f" else np.float64)

    def _range(self) -> tuple[float, float]:
        lo, hi = self.min_, self.max_
        return (float(np.expm1(lo)), float(np.expm1(hi))) if self.log1p else (lo, hi)

    def state(self) -> dict:
        self._check_fitted()
        return {"log1p": self.log1p, "scale": self.scale, "value_range": self.value_range, "name": self.name,
                "dtype_": self.dtype_, "min_": self.min_, "max_": self.max_}

    @classmethod
    def from_state(cls, state: dict) -> "NumericEncoder":
        rng = state["value_range"]
        enc = cls(state["log1p"], state["scale"], None if rng is None else tuple(rng), state["name"])
        enc.dtype_, enc.min_, enc.max_ = state["dtype_"], state["min_"], state["max_"]
        return enc


class SpikyNumericEncoder(Encoder):
    """A numeric field whose most frequent exact values ("spikes") get their own one-hot slot.

    Why: network fields are spiky (CAIDA pkt_len 1500 is 30% of packets, tos 0 is 88%; UGR16 byt 992 is
    17% of flows), but one sigmoid head smears a GAN's output over the range, so no synthetic packet is
    exactly 1500 bytes. As with hybrid ports (`Word2VecEncoder(top_k=...)`), the spikes own a softmax span
    of K+1 slots (the last is "other") ahead of the field's plain `NumericEncoder` column: a spike decodes
    by argmax, exactly as often as the softmax says; "other" decodes the numeric column as before.

    Spikes are `spike_values` when given (fixed, public: DP mode), else chosen from the fitting data by
    `tokens.top_values` (the autoregressive model's rule: at most `max_spikes`, each at least `min_share`
    of the records). The numeric column is fitted on all values and filled on every row (a spike row
    carries its own scaled value too, as a top port carries its vector), so its range is the field's as
    before. Without any spike (none reaches `min_share`) the layout is the numeric one alone.
    """

    def __init__(self, numeric: NumericEncoder, rule: SpikeRule = SpikeRule(),
                 spike_values: list[float] | None = None):
        self.numeric = numeric
        self.rule = rule
        self.spike_values = spike_values
        self.name = numeric.name

    def fit(self, values: np.ndarray, weights: np.ndarray | None = None) -> "SpikyNumericEncoder":
        """`weights`: how many records each value stands for (an attribute: records per flow)."""
        values = np.asarray(values)
        self.numeric.fit(values)
        if self.spike_values is not None:
            self.spikes_ = np.asarray(self.spike_values, dtype=np.float64)
        else:
            counted = values if weights is None else np.repeat(values, np.asarray(weights, dtype=np.int64))
            self.spikes_ = top_values(counted, self.rule)
        return self

    @property
    def spans(self) -> list[Span]:
        self._check_fitted()
        head = [Span(len(self.spikes_) + 1, "softmax")] if len(self.spikes_) else []
        return head + self.numeric.spans

    def _slots(self, values: np.ndarray) -> np.ndarray:
        """Slot of each value among the spikes; len(spikes_) ("other") for the rest."""
        k = len(self.spikes_)
        order = np.argsort(self.spikes_, kind="stable")
        ordered = self.spikes_[order]
        v = np.asarray(values, dtype=np.float64)
        pos = np.clip(np.searchsorted(ordered, v), 0, k - 1)
        return np.where(ordered[pos] == v, order[pos], k)

    def transform(self, values: np.ndarray) -> np.ndarray:
        self._check_fitted()
        column = self.numeric.transform(values)
        k = len(self.spikes_)
        if not k:
            return column
        onehot = np.zeros((len(column), k + 1), dtype=np.float64)
        onehot[np.arange(len(column)), self._slots(values)] = 1.0
        return np.concatenate([onehot, column], axis=1)

    def inverse_transform(self, encoded: np.ndarray) -> np.ndarray:
        """Argmax of the spike span; "other" -> the numeric column, decoded as `NumericEncoder` does."""
        self._check_fitted()
        e = np.asarray(encoded, dtype=np.float64)
        k = len(self.spikes_)
        out = self.numeric.inverse_transform(e[:, k + 1:] if k else e)
        if k:
            slots = np.argmax(e[:, :k + 1], axis=1)
            spike = slots < k
            out[spike] = self.spikes_[slots[spike]].astype(out.dtype)
        return out

    def state(self) -> dict:
        self._check_fitted()
        return {"numeric": self.numeric.state(), "spikes": self.spikes_.tolist(),
                "max_spikes": self.rule.max_spikes, "min_share": self.rule.min_share,
                "spike_values": self.spike_values}

    @classmethod
    def from_state(cls, state: dict) -> "SpikyNumericEncoder":
        enc = cls(NumericEncoder.from_state(state["numeric"]), SpikeRule(state["max_spikes"], state["min_share"]),
                  state.get("spike_values"))
        enc.spikes_ = np.asarray(state["spikes"], dtype=np.float64)
        return enc
