"""What per-field marginals miss: flow-level distributions, a classifier two-sample test, and pairwise
mutual information.

Shuffling each column of the real trace keeps every marginal (JSD ~ 0) but breaks flows and the links
between fields; these metrics catch that. The classifier test asks gradient-boosted trees to tell real rows
from synthetic rows: a cross-validated ROC AUC of 0.5 means indistinguishable, 1.0 means trivially apart.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits
from sklearn.metrics import mutual_info_score
from sklearn.model_selection import GroupKFold, cross_val_score

from ..schema import FLOW_KEY, TraceKind
from . import metrics as m
from .flowstats import flow_codes, flow_summary, flow_view, within_flow_gaps

#: Pairs whose dependence matters (NetShare's fields); the last uses bytes for flow records.
MI_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "packets": (("srcip", "dstport"), ("dstport", "proto"), ("proto", "pkt_len"), ("srcport", "dstport")),
    "flows": (("srcip", "dstport"), ("dstport", "proto"), ("proto", "byt"), ("srcport", "dstport")),
}


def flow_distributions(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Packets per flow, flow duration, inter-arrival within flows, bytes per flow (one value per flow/gap)."""
    view = flow_view(table)
    summary = flow_summary(table, view)
    return {"packets_per_flow": summary["packets"].to_numpy(), "flow_duration": summary["duration"].to_numpy(),
            "interarrival_in_flow": within_flow_gaps(view), "bytes_per_flow": summary["bytes"].to_numpy()}


def flow_level(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Scale-free and raw EMD of each flow-level distribution, plus each side's flow count."""
    a, b = flow_distributions(real), flow_distributions(synth)
    out = {name: {"emd_scaled": m.scaled_emd(a[name], b[name]), "emd": m.emd(a[name], b[name])} for name in a}
    out["flows"] = {"real": int(len(a["packets_per_flow"])), "synthetic": int(len(b["packets_per_flow"]))}
    return out


def record_features(table: pd.DataFrame, kind: TraceKind, *, with_time: bool = True) -> np.ndarray:
    """Row features for the classifier: IP octets, ports, protocol, the other header fields, time percentile.

    `with_time=False` leaves time out (the benchmark does: see `two_sample_tests`)."""
    cols = [m.ip_octets(table["srcip"].to_numpy()), m.ip_octets(table["dstip"].to_numpy())]
    fields = ("srcport", "dstport", "proto", "pkt_len", "tos", "id", "flag", "off", "ttl", "tcp_flags") \
        if kind == "packets" else ("srcport", "dstport", "proto", "td", "pkt", "byt")
    cols += [table[c].to_numpy(np.float64)[:, None] for c in fields if c in table.columns]
    if with_time:
        cols.append(time_percentile(table["time" if kind == "packets" else "ts"].to_numpy(np.float64))[:, None])
    return np.hstack([c.astype(np.float64) for c in cols])


def time_percentile(time: np.ndarray) -> np.ndarray:
    """Each record's time as its percentile within its own table (0..1, ties share the lowest rank).

    Epoch-free like NetShare's "time from own start", and robust where (time - min) / span is not: one record
    stamped years off (merged captures without a common time base, ndpi-flows.csv) squeezes every other
    record to 0 on one side only, and the trees then separate two halves of the same real trace.
    """
    if time.size == 0:
        return time
    return (np.searchsorted(np.sort(time), time, side="left") / max(time.size - 1, 1)).astype(np.float64)


def flow_features(table: pd.DataFrame, summary: pd.DataFrame | None = None) -> np.ndarray:
    """Per-flow summary features: 5-tuple (IP octets), records, packets, bytes, duration, mean gap."""
    s = flow_summary(table) if summary is None else summary
    parts = [m.ip_octets(s["srcip"].to_numpy()), m.ip_octets(s["dstip"].to_numpy()),
             s[["srcport", "dstport", "proto", "records", "packets", "bytes", "duration", "mean_gap"]].to_numpy()]
    return np.hstack([p.astype(np.float64) for p in parts])


def classifier_auc(real_x: np.ndarray, synth_x: np.ndarray, *, real_groups: np.ndarray | None = None,
                   synth_groups: np.ndarray | None = None, seed: int = 0, max_rows: int = 20_000,
                   folds: int = 3) -> float:
    """Cross-validated ROC AUC of gradient-boosted trees separating real rows from synthetic rows.

    Each side is subsampled to `max_rows` (balanced classes keep AUC meaningful); NaN if a side is too small.
    Folds are grouped: `real_groups` / `synth_groups` give each row a group id in one shared code space (the
    5-tuple flow, see `shared_flow_codes`), and a group never straddles folds. Otherwise the trees learn a
    flow's records in training and recognise its siblings in testing, which tells two *real* flow-disjoint
    halves apart (AUC 0.95 on caida-10k) and drives a copy of real below 0.5. Without groups, identical rows
    form the groups (the least that keeps a copied row out of both training and testing).
    """
    rng = np.random.default_rng(seed)
    n = min(len(real_x), len(synth_x), max_rows)
    if n < 2 * folds:
        return float("nan")
    ri, si = rng.choice(len(real_x), n, replace=False), rng.choice(len(synth_x), n, replace=False)
    x = np.vstack([real_x[ri], synth_x[si]])
    y = np.r_[np.ones(n), np.zeros(n)]
    if real_groups is None or synth_groups is None:
        _, groups = np.unique(x, axis=0, return_inverse=True)
    else:
        _, groups = np.unique(np.r_[np.asarray(real_groups)[ri], np.asarray(synth_groups)[si]], return_inverse=True)
    groups = rng.permutation(int(groups.max()) + 1)[groups.ravel()]  # spread groups across folds at random
    if len(np.unique(groups)) < folds:
        return 0.5  # fewer distinct groups than folds: nothing tells the sides apart
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    with threadpool_limits(limits=1), warnings.catch_warnings():  # 1 thread: OpenMP oversubscribes (20x slower)
        # a fold holding one giant flow can test a single class: its AUC is undefined (NaN, skipped below)
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        scores = cross_val_score(clf, x, y, groups=groups, cv=GroupKFold(folds), scoring="roc_auc")
    scores = scores[np.isfinite(scores)]
    return float(scores.mean()) if scores.size else float("nan")


def shared_flow_codes(*tables: pd.DataFrame) -> list[np.ndarray]:
    """5-tuple flow ids of every row of each table, in one code space (the same flow gets the same id)."""
    keys = pd.concat([t[list(FLOW_KEY)] for t in tables], ignore_index=True)
    codes, _ = flow_codes(keys)
    return np.split(codes, np.cumsum([len(t) for t in tables])[:-1])


def two_sample_tests(real: pd.DataFrame, synth: pd.DataFrame, kind: TraceKind, *, seed: int = 0,
                     max_rows: int = 20_000, with_time: bool = True) -> dict:
    """Classifier AUC on records and on per-flow summaries, folds grouped by 5-tuple (0.5 = indistinguishable).

    `with_time=False` drops the record time feature. Any per-table time normalisation leaks how a table was
    drawn where captures sit far apart in time (ndpi-flows.csv: two random flow-disjoint halves score 0.69
    with it, 0.51 without); the benchmark measures time with its own metrics instead.
    """
    rg, sg = shared_flow_codes(real, synth)
    sr, ss = flow_summary(real), flow_summary(synth)
    fr, fs = shared_flow_codes(sr, ss)
    rx, sx = (record_features(t, kind, with_time=with_time) for t in (real, synth))
    return {"records_auc": classifier_auc(rx, sx, seed=seed, real_groups=rg, synth_groups=sg, max_rows=max_rows),
            "flows_auc": classifier_auc(flow_features(real, sr), flow_features(synth, ss), seed=seed,
                                        real_groups=fr, synth_groups=fs, max_rows=max_rows)}


def mutual_information(real: pd.DataFrame, synth: pd.DataFrame, kind: TraceKind, *,
                       max_rows: int = 200_000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Mutual information (nats) of each field pair on both sides and their absolute difference."""
    rng = np.random.default_rng(seed)
    r, s = _subsample(real, max_rows, rng), _subsample(synth, max_rows, rng)
    out = {}
    for a, b in MI_PAIRS[kind]:
        if not all(c in t.columns for c in (a, b) for t in (r, s)):
            continue
        mi_r = float(mutual_info_score(r[a].to_numpy(), r[b].to_numpy()))
        mi_s = float(mutual_info_score(s[a].to_numpy(), s[b].to_numpy()))
        out[f"{a}~{b}"] = {"real": mi_r, "synthetic": mi_s, "abs_diff": abs(mi_r - mi_s)}
    return out


def _subsample(table: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(table) <= n:
        return table
    return table.iloc[np.sort(rng.choice(len(table), n, replace=False))]


def structure(real: pd.DataFrame, synth: pd.DataFrame, kind: TraceKind, *, seed: int = 0) -> dict:
    """Flow-level distributions, classifier two-sample tests and mutual information, in one dict."""
    return {"flow_level": flow_level(real, synth), "classifier": two_sample_tests(real, synth, kind, seed=seed),
            "mutual_information": mutual_information(real, synth, kind, seed=seed)}
