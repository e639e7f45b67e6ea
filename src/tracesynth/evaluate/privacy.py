"""Privacy signals: does the synthetic trace copy its training data?

Record-level signals, each with the same figure for real held-out data as the reference (real traffic from the
same network also repeats 5-tuples; only *more* repetition than that suggests copying):
- share of synthetic records equal to a training record (all fields but time);
- share of synthetic records whose 5-tuple appears in training;
- nearest-neighbour distance from each synthetic flow to the training flows, divided by the same distance
  for real held-out flows (near 1 is healthy; far below 1 means the generator reproduces training flows).
When the training split is unknown, REAL is split in time: the first `train_fraction` is "training".

For the held-out protocol (`scorecard`): `member_sets` draws a subset S of training flows as large as the
held-out set; `closer_to_train` (share of candidate flows nearer to S than to held-out flows) and
`membership_auc` (a distance attack telling S from held-out flows) then read 0.5 when nothing is memorised.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from ..schema import FLOW_KEY, TIME_COLUMN, TraceKind, columns_for
from . import metrics as m
from .flowstats import flow_summary


def time_split(real: pd.DataFrame, kind: TraceKind, train_fraction: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split REAL by time: records before the `train_fraction` quantile of time train, the rest are held out."""
    t = real[TIME_COLUMN[kind]].to_numpy(np.float64)
    order = np.argsort(t, kind="stable")
    cut = int(round(len(t) * train_fraction))
    return real.iloc[np.sort(order[:cut])], real.iloc[np.sort(order[cut:])]


def _row_hashes(table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(table[columns], index=False).to_numpy()


def exact_match_share(train: pd.DataFrame, other: pd.DataFrame, kind: TraceKind) -> float:
    """Share of `other`'s records equal to some training record on every canonical field except time."""
    cols = [c for c in columns_for(kind) if c != TIME_COLUMN[kind] and c in train.columns and c in other.columns]
    if len(other) == 0:
        return float("nan")
    return float(np.isin(_row_hashes(other, cols), _row_hashes(train, cols)).mean())


def five_tuple_overlap(train: pd.DataFrame, other: pd.DataFrame) -> float:
    """Share of `other`'s records whose 5-tuple occurs in training."""
    if len(other) == 0:
        return float("nan")
    return float(np.isin(_row_hashes(other, list(FLOW_KEY)), _row_hashes(train, list(FLOW_KEY))).mean())


def flow_matrix(summary: pd.DataFrame) -> np.ndarray:
    """Flow features for distances: IP octets, ports, protocol, log1p sizes and duration."""
    parts = [m.ip_octets(summary["srcip"].to_numpy()), m.ip_octets(summary["dstip"].to_numpy()),
             summary[["srcport", "dstport", "proto"]].to_numpy(np.float64),
             np.log1p(summary[["packets", "bytes", "duration"]].to_numpy(np.float64).clip(min=0))]
    return np.hstack([p.astype(np.float64) for p in parts])


def scale_by(reference: np.ndarray, *matrices: np.ndarray) -> tuple[np.ndarray, ...]:
    """Min-max scale every matrix by `reference`'s column ranges (a constant column keeps unit scale)."""
    lo, span = reference.min(axis=0), np.ptp(reference, axis=0)
    span = np.where(span == 0, 1.0, span)
    return tuple((x - lo) / span for x in matrices)


def nearest_distance(points: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query row to its nearest row of `points` (NaN when `points` is empty)."""
    if len(points) == 0:
        return np.full(len(queries), np.nan)
    if len(queries) == 0:
        return np.zeros(0)
    return NearestNeighbors(n_neighbors=1).fit(points).kneighbors(queries)[0][:, 0]


@dataclass(frozen=True)
class MemberSets:
    """Flow feature matrices for the memorisation tests, all scaled by the training flows' ranges.

    `members` is a random subset S of the training flows as large as the held-out set, so a distance to S
    and a distance to the held-out flows are comparable (equal set sizes: 0.5 means no memorisation).
    `unseen_train` holds the other training flows: the `real` row's query set, flows the tests never saw.
    """

    members: np.ndarray
    holdout: np.ndarray
    unseen_train: np.ndarray


def member_sets(train_flows: np.ndarray, holdout_flows: np.ndarray, *, seed: int = 0) -> MemberSets:
    """Draw S (as many training flows as held-out flows, seeded) and scale everything by the training ranges.

    The generator is keyed (seed, "members") so S is independent of a split drawn with the same seed.
    """
    rng = np.random.default_rng([seed, 0x6D656D62])
    in_s = np.zeros(len(train_flows), dtype=bool)
    in_s[rng.permutation(len(train_flows))[:min(len(holdout_flows), len(train_flows))]] = True
    members, holdout, unseen = scale_by(train_flows, train_flows[in_s], holdout_flows, train_flows[~in_s])
    return MemberSets(members, holdout, unseen)


def closer_to_train(sets: MemberSets, queries: np.ndarray) -> float:
    """Share of query flows nearer to a member flow (S) than to a held-out flow; ties count half.

    0.5 for a generator that never saw S; near 1 for one that reproduces its training flows.
    """
    if len(queries) == 0 or len(sets.members) == 0 or len(sets.holdout) == 0:
        return float("nan")
    d_s, d_h = nearest_distance(sets.members, queries), nearest_distance(sets.holdout, queries)
    return float(np.mean(d_s < d_h) + 0.5 * np.mean(d_s == d_h))


def membership_auc(sets: MemberSets, candidate: np.ndarray) -> float:
    """ROC AUC of a distance attack telling members (S) from held-out flows by closeness to the candidate.

    Score = minus the distance to the nearest candidate flow; 0.5 means the candidate leaks nothing about
    which flows were trained on, 1.0 means every member sits closer to the candidate than any non-member.
    """
    if len(candidate) == 0 or len(sets.members) == 0 or len(sets.holdout) == 0:
        return float("nan")
    score = -np.r_[nearest_distance(candidate, sets.members), nearest_distance(candidate, sets.holdout)]
    truth = np.r_[np.ones(len(sets.members)), np.zeros(len(sets.holdout))]
    return float(roc_auc_score(truth, score))


def nn_distance_ratio(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, *, seed: int = 0,
                      max_train: int = 50_000, max_query: int = 5_000) -> dict[str, float]:
    """Median distance of synthetic flows to their nearest training flow over that of real held-out flows.

    Features are min-max scaled by the training flows' ranges; both query sets are subsampled equally.
    """
    rng = np.random.default_rng(seed)
    tr, ho, sy = (flow_matrix(flow_summary(t)) for t in (train, holdout, synth))
    if min(len(tr), len(ho), len(sy)) == 0:
        return {"synthetic_median": float("nan"), "holdout_median": float("nan"), "ratio": float("nan"),
                "synthetic_zero_share": float("nan")}
    tr, ho, sy = scale_by(tr, tr, ho, sy)
    tr = tr[rng.choice(len(tr), min(len(tr), max_train), replace=False)]
    nn = NearestNeighbors(n_neighbors=1).fit(tr)
    d_ho = nn.kneighbors(ho[rng.choice(len(ho), min(len(ho), max_query), replace=False)])[0][:, 0]
    d_sy = nn.kneighbors(sy[rng.choice(len(sy), min(len(sy), max_query), replace=False)])[0][:, 0]
    h, s = float(np.median(d_ho)), float(np.median(d_sy))
    return {"synthetic_median": s, "holdout_median": h, "ratio": s / h if h > 0 else float("nan"),
            "synthetic_zero_share": float((d_sy == 0).mean()), "holdout_zero_share": float((d_ho == 0).mean())}


def privacy(real: pd.DataFrame, synth: pd.DataFrame, kind: TraceKind, *, train: pd.DataFrame | None = None,
            seed: int = 0) -> dict:
    """All privacy signals for `synth`, with real held-out data's figures as the reference."""
    if train is None:
        train, holdout = time_split(real, kind)
        split = "time split of REAL (first 80% of time = training)"
    else:
        cols = [c for c in columns_for(kind) if c in real.columns and c in train.columns]
        holdout = real[~np.isin(_row_hashes(real, cols), _row_hashes(train, cols))]
        split = "given training table; REAL records not in it are the held-out reference"
        if len(holdout) == 0:
            _, holdout = time_split(real, kind)
            split = "given training table covers REAL; last 20% of REAL's time is the reference"
    return {
        "split": split,
        "exact_match_share": {"synthetic": exact_match_share(train, synth, kind),
                              "holdout": exact_match_share(train, holdout, kind)},
        "five_tuple_overlap": {"synthetic": five_tuple_overlap(train, synth),
                               "holdout": five_tuple_overlap(train, holdout)},
        "nn_distance": nn_distance_ratio(train, holdout, synth, seed=seed),
    }
