"""Pure distance functions shared by every evaluation module (no tables, no I/O).

Conventions follow NetShare's paper harness (NETSHARE.md section 8) so figures are comparable with it:
JSD is scipy's Jensen-Shannon *distance* squared with the natural log (range [0, ln 2]); EMD is scipy's
1-D Wasserstein distance in the field's own units.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr, wasserstein_distance

from ..io.ipaddr import ip_octets  # noqa: F401  (octets as classifier features; one implementation)

#: Largest possible JSD under the natural-log convention (disjoint supports).
JSD_MAX = float(np.log(2.0))


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two histograms (unnormalised counts are fine), natural log.

    Two empty histograms are identical (0); one empty against one non-empty is maximally apart (ln 2).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in length: {p.shape} vs {q.shape}")
    ps, qs = p.sum(), q.sum()
    if ps == 0 or qs == 0:
        return 0.0 if ps == qs else JSD_MAX
    return float(jensenshannon(p, q) ** 2)


def bincount_jsd(real: np.ndarray, synth: np.ndarray, n_bins: int) -> float:
    """JSD of two integer fields over a fixed number of bins (65,536 for ports, 256 for protocols)."""
    return jsd(np.bincount(np.asarray(real, dtype=np.int64), minlength=n_bins)[:n_bins],
               np.bincount(np.asarray(synth, dtype=np.int64), minlength=n_bins)[:n_bins])


def popularity_ranks(values: np.ndarray) -> np.ndarray:
    """Per-value counts sorted descending: the popularity-rank distribution of IPs (NetShare SA/DA)."""
    _, counts = np.unique(np.asarray(values), return_counts=True)
    return np.sort(counts)[::-1]


def rank_jsd(real: np.ndarray, synth: np.ndarray) -> float:
    """JSD between popularity-rank distributions, zero-padded to equal length (NetShare SA/DA)."""
    a, b = popularity_ranks(real), popularity_ranks(synth)
    n = max(len(a), len(b))
    return jsd(np.pad(a, (0, n - len(a))), np.pad(b, (0, n - len(b))))


def categorical_jsd(real: np.ndarray, synth: np.ndarray) -> float:
    """JSD over the union of observed values of any hashable field (labels, flags, ...)."""
    real, synth = np.asarray(real), np.asarray(synth)
    _, codes = np.unique(np.concatenate([real, synth]), return_inverse=True)
    n = int(codes.max()) + 1 if codes.size else 1
    return jsd(np.bincount(codes[:len(real)], minlength=n), np.bincount(codes[len(real):], minlength=n))


def emd(real: np.ndarray, synth: np.ndarray) -> float:
    """Earth mover's distance between two samples, in the field's own units (NetShare raw EMD)."""
    real = np.asarray(real, dtype=np.float64)
    synth = np.asarray(synth, dtype=np.float64)
    if real.size == 0 or synth.size == 0:
        return float("nan")
    return float(wasserstein_distance(real, synth))


def scaled_emd(real: np.ndarray, synth: np.ndarray) -> float:
    """EMD with both sides min-max scaled by the *real* data's range, so fields compare on one scale.

    Wasserstein distance is translation invariant and scales linearly, so this is the raw EMD divided by
    the real range (a constant real field uses range 1, i.e. raw units).
    """
    real = np.asarray(real, dtype=np.float64)
    if real.size == 0:
        return float("nan")
    span = float(real.max() - real.min())
    return emd(real, synth) / (span if span > 0 else 1.0)


def relative_to_own_start(times: np.ndarray) -> np.ndarray:
    """Times minus the side's own first time (NetShare TS/PAT), so traces from different epochs compare."""
    times = np.asarray(times, dtype=np.float64)
    return times - times.min() if times.size else times


def spearman(a, b) -> float:
    """Spearman rank correlation; NaN where either side is constant or too short to rank."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def ecdf(values: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF as (x, F(x)), thinned to at most `max_points` quantiles for plotting."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        return values, values
    probs = np.linspace(0, 1, min(max_points, values.size))
    return np.quantile(values, probs), probs
