"""NetML-style anomaly detection on flows (NetShare's third downstream task).

The `netml` package pins numpy 2.0 / pandas 2.2 / scikit-learn 1.5 and cannot be installed beside this
project's stack, so its six flow representations are computed here, vectorised, following netml 0.7.1's
`pparser/parser.py`: per flow (5-tuple, at least 2 records) with `dim` = 90th percentile of records per flow:
- IAT: the first dim-1 inter-arrival times; SIZE: the first dim record sizes;
- IAT_SIZE: iat0, size0, iat1, size1, ..., last size (2*dim-1 values);
- STATS: duration, packet rate, byte rate, mean, std, q1, median, q3, min, max of sizes, packets, bytes;
- SAMP_NUM / SAMP_SIZE: packets / bytes in consecutive windows of length = 30th percentile of flow
  durations, from the flow's first record (dim-1 windows).
Shorter flows are zero-padded, longer ones cut (as netml does). `dim` and the window come from REAL and are
applied to both sides. netml's optional subflow splitting is not applied.
For each mode an IsolationForest is trained on real training flows and, separately, on synthetic flows;
both score the same real held-out flows. Anomaly ratio = share flagged; the modes' ranking by ratio is
compared with Spearman.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..flowstats import FlowView, flow_view
from ..metrics import spearman

MODES = ("IAT", "SIZE", "IAT_SIZE", "STATS", "SAMP_NUM", "SAMP_SIZE")


def multi_record_flows(table: pd.DataFrame, max_flows: int, rng: np.random.Generator) -> FlowView:
    """The flow view restricted to flows with at least two records, subsampled to `max_flows` flows."""
    v = flow_view(table)
    keep = np.flatnonzero(v.counts >= 2)
    if len(keep) > max_flows:
        keep = np.sort(rng.choice(keep, max_flows, replace=False))
    remap = np.full(v.n_flows, -1)
    remap[keep] = np.arange(len(keep))
    sel = remap[v.flow] >= 0
    return FlowView(remap[v.flow[sel]], v.time[sel], v.end[sel], v.size[sel], v.packets[sel],
                    v.first_row[keep], len(keep))


def flow_params(view: FlowView) -> tuple[int, float]:
    """netml's `dim` (90th percentile of records per flow, at least 2) and window (30th pct of duration)."""
    counts = view.counts
    dim = max(2, int(np.floor(np.quantile(counts, 0.9)))) if len(counts) else 2
    durations = np.maximum.reduceat(view.end, view.starts) - view.time[view.starts] if len(counts) else np.zeros(1)
    window = float(np.quantile(durations, 0.3))
    if window <= 0:
        positive = durations[durations > 0]
        window = float(positive.min()) if positive.size else 1e-6
    return dim, window


def _place(n_flows: int, width: int, flow: np.ndarray, col: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Scatter values into an (n_flows, width) matrix, dropping columns past `width` (netml's cut)."""
    out = np.zeros((n_flows, width))
    ok = (col >= 0) & (col < width)
    np.add.at(out, (flow[ok], col[ok]), values[ok])
    return out


def mode_features(view: FlowView, mode: str, dim: int, window: float) -> np.ndarray:
    """The (n_flows, width) feature matrix of one NetML mode."""
    n, starts = view.n_flows, view.starts
    pos = np.arange(len(view.flow)) - starts[view.flow]
    counts = view.counts
    iat = np.r_[0.0, np.diff(view.time)] if len(view.time) else view.time
    if mode == "IAT":
        return _place(n, dim - 1, view.flow, pos - 1, iat)
    if mode == "SIZE":
        return _place(n, dim, view.flow, pos, view.size)
    if mode == "IAT_SIZE":
        last = pos == counts[view.flow] - 1
        sizes = _place(n, 2 * dim - 1, view.flow, np.where(last, 2 * pos, 2 * pos + 1), view.size)
        return sizes + _place(n, 2 * dim - 1, view.flow, 2 * (pos - 1), iat)
    if mode in ("SAMP_NUM", "SAMP_SIZE"):
        t0 = view.time[starts][view.flow]
        col = np.floor((view.time - t0) / window).astype(np.int64)
        vals = view.packets if mode == "SAMP_NUM" else view.size
        return _place(n, dim - 1, view.flow, col, vals)
    if mode == "STATS":
        return _stats(view)
    raise ValueError(f"unknown NetML mode {mode!r}; choose one of {', '.join(MODES)}")


def _stats(view: FlowView) -> np.ndarray:
    """netml STATS: duration, pkt rate, byte rate, mean, std, q1, q2, q3, min, max, packets, bytes."""
    sizes = pd.Series(view.size).groupby(view.flow)
    q = sizes.quantile([0.25, 0.5, 0.75]).unstack().to_numpy()
    starts = view.starts
    duration = np.maximum.reduceat(view.end, starts) - view.time[starts]
    packets = np.bincount(view.flow, weights=view.packets, minlength=view.n_flows)
    total = sizes.sum().to_numpy()
    rate = np.divide(1.0, duration, out=np.zeros_like(duration), where=duration > 0)
    return np.column_stack([duration, packets * rate, total * rate, sizes.mean().to_numpy(),
                            sizes.std(ddof=0).to_numpy(), q, sizes.min().to_numpy(), sizes.max().to_numpy(),
                            packets, total])


def _split(n: int, rng: np.random.Generator, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    cut = int(round(n * (1 - test_fraction)))
    return perm[:cut], perm[cut:]


def anomaly_detection(real: pd.DataFrame, synth: pd.DataFrame, *, seed: int = 0, max_flows: int = 20_000,
                      test_fraction: float = 0.3, min_flows: int = 20) -> dict | None:
    """Anomaly ratios per NetML mode on real held-out flows, detectors trained on real vs on synthetic.

    None when either side has fewer than `min_flows` flows with two or more records.
    """
    rng = np.random.default_rng(seed)
    rv, sv = multi_record_flows(real, max_flows, rng), multi_record_flows(synth, max_flows, rng)
    if min(rv.n_flows, sv.n_flows) < min_flows:
        return None
    dim, window = flow_params(rv)
    train, test = _split(rv.n_flows, rng, test_fraction)
    ratios: dict[str, dict[str, float]] = {"real": {}, "synthetic": {}, "synthetic_self": {}}
    for mode in MODES:
        xr, xs = mode_features(rv, mode, dim, window), mode_features(sv, mode, dim, window)
        for side, x_train in (("real", xr[train]), ("synthetic", xs)):
            det = make_pipeline(StandardScaler(), IsolationForest(n_estimators=100, random_state=seed))
            det.fit(x_train)
            ratios[side][mode] = float(np.mean(det.predict(xr[test]) == -1))
            if side == "synthetic":
                ratios["synthetic_self"][mode] = float(np.mean(det.predict(xs) == -1))
    return {"dim": dim, "window_s": window, "flows": {"real": rv.n_flows, "synthetic": sv.n_flows},
            "anomaly_ratio": ratios,
            "spearman": spearman([ratios["real"][m] for m in MODES], [ratios["synthetic"][m] for m in MODES])}
