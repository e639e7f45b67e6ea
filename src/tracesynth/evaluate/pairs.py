"""2-way marginals: how well a candidate keeps the joint distribution of every pair of fields.

Each field is binned once, from the *reference* (held-out) table, and the same bins are applied to every
candidate, so rows of a benchmark are comparable: ports and other categorical fields by their top values
plus "other"; IP addresses as three fields, their /8, /16 and /24 prefixes (top values plus "other");
numeric fields by quantiles of the reference; time as the share of the table's own span. For each pair of
fields from different sources the metric is the total-variation distance of the two joint histograms,
0.5 * sum |p - q| (0 = same joint distribution, 1 = disjoint); `pairs.tv_mean` averages over pairs.
Independent columns (the `marginals` baseline) keep every 1-way marginal but lose these.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import TIME_COLUMN, TraceKind

#: Fields binned by their top values (the rest is one "other" bin).
CATEGORICAL = ("srcport", "dstport", "proto", "tos", "flag", "tcp_flags", "ttl", "label")
#: Fields binned by quantiles of the reference.
NUMERIC = ("pkt_len", "id", "off", "td", "pkt", "byt")
IP_PREFIXES = (8, 16, 24)
TOP_VALUES = 10
QUANTILE_BINS = 10


@dataclass(frozen=True)
class Binning:
    """How one derived field is binned: its source column, how to derive it, and the bins."""

    name: str       # e.g. "srcip/16", "dstport", "time"
    source: str     # the canonical column it comes from (pairs of one source are skipped)
    values: np.ndarray | None = None  # top values (categorical); code = index, "other" = len(values)
    edges: np.ndarray | None = None   # inner quantile edges (numeric); code = searchsorted

    @property
    def n_bins(self) -> int:
        return len(self.values) + 1 if self.values is not None else len(self.edges) + 1

    def codes(self, table: pd.DataFrame) -> np.ndarray:
        """The bin of every row of `table` (int64 in [0, n_bins))."""
        raw = derive(table, self.name, self.source)
        if self.values is not None:
            pos = np.searchsorted(self.values, raw)
            pos = np.clip(pos, 0, max(len(self.values) - 1, 0))
            hit = (self.values[pos] == raw) if len(self.values) else np.zeros(len(raw), bool)
            return np.where(hit, pos, len(self.values)).astype(np.int64)
        return np.searchsorted(self.edges, raw.astype(np.float64), side="right").astype(np.int64)


def derive(table: pd.DataFrame, name: str, source: str) -> np.ndarray:
    """The values a binning reads: an IP prefix, time as a share of its span, or the column itself."""
    if "/" in name:
        bits = int(name.split("/")[1])
        return table[source].to_numpy(np.uint32) >> np.uint32(32 - bits)
    if source in TIME_COLUMN.values():
        t = table[source].to_numpy(np.float64)
        return (t - t.min()) / (np.ptp(t) or 1.0) if t.size else t
    col = table[source]
    return col.astype(str).to_numpy() if source == "label" else col.to_numpy()


def fit_binnings(reference: pd.DataFrame, kind: TraceKind) -> list[Binning]:
    """Bins of every field of `reference` (the held-out table): the same for every candidate."""
    out = [Binning(f"{ip}/{b}", ip, values=_top(derive(reference, f"{ip}/{b}", ip)))
           for ip in ("srcip", "dstip") for b in IP_PREFIXES]
    out += [Binning(c, c, values=_top(derive(reference, c, c))) for c in CATEGORICAL if c in reference.columns]
    numeric = [c for c in NUMERIC if c in reference.columns] + [TIME_COLUMN[kind]]
    probs = np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]
    out += [Binning(c, c, edges=np.unique(np.quantile(derive(reference, c, c).astype(np.float64), probs)))
            for c in numeric]
    return out


def _top(values: np.ndarray) -> np.ndarray:
    """The TOP_VALUES most frequent values, sorted (for searchsorted lookup)."""
    uniq, counts = np.unique(values, return_counts=True)
    return np.sort(uniq[np.argsort(-counts, kind="stable")[:TOP_VALUES]])


def pair_tv(reference: pd.DataFrame, candidate: pd.DataFrame, binnings: list[Binning]) -> dict[str, float]:
    """Total-variation distance of each pair's joint histogram, keyed "a~b" (fields present on both sides)."""
    usable = [b for b in binnings if b.source in candidate.columns]
    ref = {b.name: b.codes(reference) for b in usable}
    cand = {b.name: b.codes(candidate) for b in usable}
    out = {}
    for i, a in enumerate(usable):
        for b in usable[i + 1:]:
            if a.source == b.source:
                continue
            size = a.n_bins * b.n_bins
            p = np.bincount(ref[a.name] * b.n_bins + ref[b.name], minlength=size) / max(len(reference), 1)
            q = np.bincount(cand[a.name] * b.n_bins + cand[b.name], minlength=size) / max(len(candidate), 1)
            out[f"{a.name}~{b.name}"] = float(0.5 * np.abs(p - q).sum())
    return out
