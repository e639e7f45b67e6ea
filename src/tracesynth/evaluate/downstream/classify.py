"""Traffic-type prediction on labelled flow records (NetShare's first downstream task).

Five scikit-learn classifiers are trained once on real training flows and once on synthetic flows, and
both are tested on the same real held-out flows. A useful synthetic trace gives similar accuracies and,
above all, the same *ordering* of the classifiers (Spearman rank correlation near 1).
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from ...schema import FLOW_LABEL
from ..metrics import ip_octets, spearman

log = logging.getLogger(__name__)

CLASSIFIERS = ("DT", "LR", "RF", "GB", "MLP")


def make_classifier(name: str, seed: int):
    """A fresh classifier by NetShare's short name; GB is histogram gradient boosting (fast on big tables)."""
    if name == "DT":
        return DecisionTreeClassifier(random_state=seed)
    if name == "LR":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    if name == "RF":
        return RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1)
    if name == "GB":
        return HistGradientBoostingClassifier(max_iter=50, random_state=seed)
    if name == "MLP":
        return make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=100, random_state=seed))
    raise ValueError(f"unknown classifier {name!r}")


def flow_features(table: pd.DataFrame) -> np.ndarray:
    """Per-record features: IP octets, ports, protocol, log1p of duration, packets and bytes."""
    parts = [ip_octets(table["srcip"].to_numpy()), ip_octets(table["dstip"].to_numpy()),
             table[["srcport", "dstport", "proto"]].to_numpy(np.float64),
             np.log1p(table[["td", "pkt", "byt"]].to_numpy(np.float64).clip(min=0))]
    return np.hstack([p.astype(np.float64) for p in parts])


def group_rare(labels: np.ndarray, keep: list[str]) -> np.ndarray:
    """Labels outside `keep` (the most frequent real classes) become "other": bounded cost per classifier."""
    return np.where(np.isin(labels, keep), labels, "other")


def is_labelled(table: pd.DataFrame) -> bool:
    return "ts" in table.columns and FLOW_LABEL in table.columns and table[FLOW_LABEL].nunique() > 1


def _subsample(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator):
    if len(y) <= n:
        return x, y
    idx = rng.choice(len(y), n, replace=False)
    return x[idx], y[idx]


def accuracies(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
               seed: int = 0) -> dict[str, float]:
    """Test accuracy of each of CLASSIFIERS trained on (x, y); one class only: the share of it in the test."""
    out: dict[str, float] = {}
    for name in CLASSIFIERS:
        if len(np.unique(y)) < 2:  # one class only: the "classifier" always says it
            out[name] = float(np.mean(y_test == y[0])) if len(y) else float("nan")
            continue
        with threadpool_limits(limits=1), warnings.catch_warnings():  # 1 thread: OpenMP oversubscribes
            warnings.simplefilter("ignore", ConvergenceWarning)  # a capped MLP/LR is still a fair comparison
            out[name] = float(make_classifier(name, seed).fit(x, y).score(x_test, y_test))
    return out


def traffic_type(real: pd.DataFrame, synth: pd.DataFrame, *, seed: int = 0, max_train: int = 20_000,
                 test_fraction: float = 0.3, max_classes: int = 10) -> dict | None:
    """Accuracy on a real held-out split of each classifier trained on real vs on synthetic, and Spearman.

    Only the `max_classes` most frequent real labels are kept as classes; the rest are merged into "other".
    None when either side lacks a `label` column with at least two classes (the task needs labels).
    """
    if not (is_labelled(real) and FLOW_LABEL in synth.columns):
        return None
    rng = np.random.default_rng(seed)
    keep = real[FLOW_LABEL].astype(str).value_counts().index[:max_classes].tolist()
    x, y = flow_features(real), group_rare(real[FLOW_LABEL].astype(str).to_numpy(), keep)
    counts = pd.Series(y).value_counts()
    stratify = y if counts.min() >= 2 else None
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=stratify)
    x_sy, y_sy = flow_features(synth), group_rare(synth[FLOW_LABEL].astype(str).to_numpy(), keep)
    sides = {"real": _subsample(x_tr, y_tr, max_train, rng), "synthetic": _subsample(x_sy, y_sy, max_train, rng)}
    acc = {side: accuracies(xs, ys, x_te, y_te, seed=seed) for side, (xs, ys) in sides.items()}
    log.info("traffic-type accuracies: %s", acc)
    return {"accuracy": acc, "classes": int(len(counts)), "test_rows": int(len(y_te)),
            "spearman": spearman([acc["real"][c] for c in CLASSIFIERS], [acc["synthetic"][c] for c in CLASSIFIERS])}


def train_test_accuracies(train: pd.DataFrame, test: pd.DataFrame, *, classes_from: pd.DataFrame | None = None,
                          seed: int = 0, max_train: int = 20_000, max_classes: int = 10) -> dict[str, float] | None:
    """Accuracy on the labelled flows `test` of each classifier trained on `train` (train-on-X, test-on-real).

    The classes are the `max_classes` most frequent labels of `classes_from` (default `test`), the rest
    "other", so every candidate is judged on the same classes. None when a table lacks a `label` column
    (a test side of one class is fine: accuracy is still defined).
    """
    ref = test if classes_from is None else classes_from
    if not all(FLOW_LABEL in t.columns for t in (train, test, ref)) or len(train) == 0 or len(test) == 0:
        return None
    keep = ref[FLOW_LABEL].astype(str).value_counts().index[:max_classes].tolist()
    x, y = _subsample(flow_features(train), group_rare(train[FLOW_LABEL].astype(str).to_numpy(), keep), max_train,
                      np.random.default_rng(seed))
    return accuracies(x, y, flow_features(test), group_rare(test[FLOW_LABEL].astype(str).to_numpy(), keep), seed=seed)
