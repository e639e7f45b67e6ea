"""The benchmark scorecard: every metric of a candidate table against the held-out part of a split.

Each metric is declared once in `METRICS` (SDMetrics style): a flat name (`jsd.SA`, `pairs.tv_mean`,
`privacy.mia_auc`, ...), its range, its direction (`min`, `max`, or `match`: should equal the held-out
data's own value, see `reference`) and a one-line description. Metrics that share intermediate results
(flow summaries, nearest-neighbour sets) are computed together by one `Family`; `score` runs them all and
returns one flat `{name: float}` (NaN where a metric does not apply, for example `tstr.accuracy` without
labels, or `expert.*` without tshark). The computations live in the evaluation modules (`fidelity`,
`pairs`, `structure`, `tcp`, `expert`, `privacy`, `downstream`); this module only names, wires and documents them.

The `real` row of a benchmark is the training part itself scored against the held-out part
(`candidate_is_train=True`): the floor a perfect non-copying generator reaches. The privacy metrics then
query with the training flows outside the member subset S, which they never compare with, so the floor
reads ~0.5 as it should.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Callable, Literal

import numpy as np
import pandas as pd

from ..errors import UserError
from ..schema import TIME_COLUMN, TraceKind, table_kind
from . import metrics as m
from .flowstats import FlowView, flow_summary, flow_view, within_flow_gaps

log = logging.getLogger(__name__)
Direction = Literal["min", "max", "match"]
KINDS: tuple[TraceKind, ...] = ("packets", "flows")


@dataclass(frozen=True)
class Metric:
    """One scorecard entry: its flat name, range [low, high], direction and what it measures."""

    name: str
    low: float
    high: float
    direction: Direction
    description: str
    kinds: tuple[TraceKind, ...] = KINDS


@dataclass
class Inputs:
    """The tables one score compares, with the flow summaries every family shares (computed once)."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    candidate: pd.DataFrame
    kind: TraceKind
    seed: int = 0
    candidate_is_train: bool = False
    max_rows: int = 5_000  # classifier rows per side and privacy query flows: keeps `score` a few seconds
    max_candidate_flows: int = 50_000  # candidate flows the membership attack measures distances to

    def view(self, which: str) -> FlowView:
        return self._views[which]

    def summary(self, which: str) -> pd.DataFrame:
        return self._summaries[which]

    @cached_property
    def _views(self) -> dict[str, FlowView]:
        return {w: flow_view(getattr(self, w)) for w in ("train", "holdout", "candidate")}

    @cached_property
    def _summaries(self) -> dict[str, pd.DataFrame]:
        return {w: flow_summary(getattr(self, w), self._views[w]) for w in ("train", "holdout", "candidate")}


@dataclass(frozen=True)
class Family:
    """Metrics computed together: `compute(inputs)` returns a value for each of `metrics` (by name)."""

    metrics: tuple[Metric, ...]
    compute: Callable[[Inputs], dict[str, float]] = field(repr=False)


FAMILIES: list[Family] = []
METRICS: dict[str, Metric] = {}


def family(*metrics: Metric):
    """Register `metrics` and the function that computes them."""
    def register(fn: Callable[[Inputs], dict[str, float]]):
        FAMILIES.append(Family(tuple(metrics), fn))
        METRICS.update({mt.name: mt for mt in metrics})
        return fn
    return register


JSD_RANGE = (0.0, m.JSD_MAX)
INF = float("inf")

# --- NetShare's per-field metrics ---------------------------------------------------------------------
_NETSHARE_JSD = {"SA": "source IP popularity-rank", "DA": "destination IP popularity-rank",
                 "SP": "source port (65,536 bins)", "DP": "destination port (65,536 bins)",
                 "PR": "protocol (256 bins)"}
_NETSHARE_EMD = {"PS": ("packets", "packet length"), "PAT": ("packets", "arrival time from own start"),
                 "FS": ("packets", "packets per 5-tuple"), "TS": ("flows", "flow start from own start"),
                 "TD": ("flows", "flow duration"), "PKT": ("flows", "packets per record"),
                 "BYT": ("flows", "bytes per record")}


@family(*[Metric(f"jsd.{k}", *JSD_RANGE, "min", f"NetShare JSD of the {d} distribution vs held-out")
          for k, d in _NETSHARE_JSD.items()],
        Metric("jsd.mean", *JSD_RANGE, "min", "mean of jsd.SA, DA, SP, DP, PR (NetShare's headline)"),
        *[Metric(f"emd.{k}", 0.0, INF, "min", f"NetShare EMD of {d}, divided by the held-out range", (kind,))
          for k, (kind, d) in _NETSHARE_EMD.items()])
def _netshare(x: Inputs) -> dict[str, float]:
    from .fidelity import netshare_emd, netshare_jsd

    js = netshare_jsd(x.holdout, x.candidate)
    _, scaled = netshare_emd(x.holdout, x.candidate, x.kind)
    return {**{f"jsd.{k}": v for k, v in js.items()}, "jsd.mean": float(np.mean(list(js.values()))),
            **{f"emd.{k}": v for k, v in scaled.items()}}


# --- a marginal distance for every modelled field -------------------------------------------------------
#: field -> how it is compared: "jsd" exact-value JSD (spiky or discrete), "emd" scale-free EMD,
#: "log_emd" scale-free EMD of log1p (heavy-tailed counts and durations), "gap" scale-free EMD of the
#: gaps between consecutive records divided by their mean (shape of the arrival process, not its rate:
#: a 20% held-out part has a fifth of the rate of the whole trace).
FIELD_MEASURES: dict[TraceKind, dict[str, str]] = {
    "packets": {"pkt_len": "jsd", "ttl": "jsd", "tos": "jsd", "id": "emd", "flag": "jsd", "off": "jsd",
                "tcp_flags": "jsd", "time_gap": "gap"},
    "flows": {"td": "log_emd", "pkt": "log_emd", "byt": "log_emd", "label": "jsd", "ts_gap": "gap"},
}
_MEASURE_TEXT = {"jsd": "exact-value JSD", "emd": "scale-free EMD", "log_emd": "scale-free EMD of log1p"}


def field_distance(reference: pd.DataFrame, candidate: pd.DataFrame, name: str, how: str, kind: TraceKind) -> float:
    """One field's marginal distance (see FIELD_MEASURES); NaN when the field is missing on a side."""
    col = TIME_COLUMN[kind] if how == "gap" else name
    if col not in reference.columns or col not in candidate.columns:
        return float("nan")
    if how == "jsd":
        return m.categorical_jsd(reference[col].astype(str).to_numpy(), candidate[col].astype(str).to_numpy()) \
            if col == "label" else m.categorical_jsd(reference[col].to_numpy(), candidate[col].to_numpy())
    a, b = (t[col].to_numpy(np.float64) for t in (reference, candidate))
    if how == "log_emd":
        a, b = np.log1p(a.clip(min=0)), np.log1p(b.clip(min=0))
    elif how == "gap":
        a, b = (_relative_gaps(v) for v in (a, b))
    return m.scaled_emd(a, b)


def _relative_gaps(times: np.ndarray) -> np.ndarray:
    gaps = np.diff(np.sort(times))
    mean = gaps.mean() if gaps.size else 0.0
    return gaps / mean if mean > 0 else gaps


def _field_text(name: str, how: str, kind: TraceKind) -> str:
    if how == "gap":
        return f"scale-free EMD of the gaps between consecutive {TIME_COLUMN[kind]} values, each over its " \
               "side's mean gap (arrival shape, not rate), vs held-out"
    return f"{_MEASURE_TEXT[how]} of {name} vs held-out"


@family(*[Metric(f"field.{f}", 0.0, m.JSD_MAX if how == "jsd" else INF, "min", _field_text(f, how, kind), (kind,))
          for kind, fields in FIELD_MEASURES.items() for f, how in fields.items()])
def _fields(x: Inputs) -> dict[str, float]:
    return {f"field.{f}": field_distance(x.holdout, x.candidate, f, how, x.kind)
            for f, how in FIELD_MEASURES[x.kind].items()}


# --- joint structure ------------------------------------------------------------------------------------
@family(Metric("pairs.tv_mean", 0.0, 1.0, "min", "mean total-variation distance of the 2-way marginals of all "
               "field pairs (binned by the held-out data: top values, IP /8 /16 /24, quantiles)"),
        Metric("pairs.tv_max", 0.0, 1.0, "min", "the worst field pair's 2-way total-variation distance"))
def _pairs(x: Inputs) -> dict[str, float]:
    from .pairs import fit_binnings, pair_tv

    tv = list(pair_tv(x.holdout, x.candidate, fit_binnings(x.holdout, x.kind)).values())
    return {"pairs.tv_mean": float(np.mean(tv)) if tv else float("nan"),
            "pairs.tv_max": float(np.max(tv)) if tv else float("nan")}


@family(Metric("auc.records", 0.0, 1.0, "min", "classifier two-sample ROC AUC, records vs held-out records "
               "(header fields, no time), folds grouped by 5-tuple (0.5 = indistinguishable)"),
        Metric("auc.flows", 0.0, 1.0, "min", "the same on per-flow summaries (5-tuple, records, bytes, "
               "duration, mean gap)"))
def _auc(x: Inputs) -> dict[str, float]:
    from .structure import two_sample_tests

    auc = two_sample_tests(x.holdout, x.candidate, x.kind, seed=x.seed, max_rows=x.max_rows, with_time=False)
    return {"auc.records": auc["records_auc"], "auc.flows": auc["flows_auc"]}


_FLOW_SHAPES = {"records": "records per flow", "packets": "packets per flow", "bytes": "bytes per flow",
                "duration": "flow duration", "gap": "gaps between records inside a flow"}


@family(*[Metric(f"flow.{k}_emd", 0.0, INF, "min", f"scale-free EMD of {d} vs held-out flows",
                 ("flows",) if k == "packets" else KINDS) for k, d in _FLOW_SHAPES.items()])
def _flow_shapes(x: Inputs) -> dict[str, float]:
    def shapes(which: str) -> dict[str, np.ndarray]:
        s = x.summary(which)
        return {"records": s["records"].to_numpy(), "packets": s["packets"].to_numpy(),
                "bytes": s["bytes"].to_numpy(), "duration": s["duration"].to_numpy(),
                "gap": within_flow_gaps(x.view(which))}

    a, b = shapes("holdout"), shapes("candidate")
    keys = [k for k in _FLOW_SHAPES if k != "packets" or x.kind == "flows"]
    return {f"flow.{k}_emd": m.scaled_emd(a[k], b[k]) for k in keys}


@family(Metric("tcp.syn_open", 0.0, 1.0, "match", "share of TCP flows whose first packet has SYN", ("packets",)),
        Metric("tcp.fin_rst_close", 0.0, 1.0, "match", "share of TCP flows whose last packet has FIN or RST",
               ("packets",)),
        Metric("tcp.bigram_jsd", *JSD_RANGE, "min", "JSD of in-flow TCP flag bigrams vs held-out", ("packets",)))
def _tcp(x: Inputs) -> dict[str, float]:
    from .tcp import bigram_jsd, fin_rst_close_share, syn_open_share, tcp_flows

    ref, cand = tcp_flows(x.holdout), tcp_flows(x.candidate)
    return {"tcp.syn_open": syn_open_share(cand), "tcp.fin_rst_close": fin_rst_close_share(cand),
            "tcp.bigram_jsd": bigram_jsd(ref, cand)}


@family(Metric("expert.warns_per_1k", 0.0, INF, "match", "tshark expert warnings per 1,000 packets (table written "
               "with the pcap writer); NaN without tshark", ("packets",)),
        Metric("expert.notes_per_1k", 0.0, INF, "match", "tshark expert notes per 1,000 packets; NaN without tshark",
               ("packets",)),
        Metric("expert.kind_l1", 0.0, INF, "min", "sum over tshark expert kinds (severity, protocol, summary) of "
               "|candidate - held-out| per 1,000 packets; NaN without tshark", ("packets",)))
def _expert(x: Inputs) -> dict[str, float]:
    from .expert import ExpertError, kind_l1, table_expert_counts, unavailable

    why = unavailable()
    try:
        if why is None:
            cand = table_expert_counts(x.candidate)
            held = table_expert_counts(x.holdout) if x.candidate is not x.holdout else cand
            return {"expert.warns_per_1k": cand.severity_per_1k("Warns"),
                    "expert.notes_per_1k": cand.severity_per_1k("Notes"), "expert.kind_l1": kind_l1(held, cand)}
    except ExpertError as exc:
        why = str(exc)
    _skipped(why)
    return {}


@lru_cache(maxsize=None)
def _skipped(why: str) -> None:
    """Say once per reason (not once per row and seed) why the expert metrics are NaN."""
    log.warning("expert.* metrics skipped: %s", why)


# --- usefulness -----------------------------------------------------------------------------------------
@family(Metric("tstr.accuracy", 0.0, 1.0, "max", "mean accuracy on held-out flows of the traffic-type "
               "classifiers (DT, LR, RF, GB, MLP) trained on the candidate; NaN without labels", ("flows",)))
def _tstr(x: Inputs) -> dict[str, float]:
    from .downstream.classify import train_test_accuracies

    acc = train_test_accuracies(x.candidate, x.holdout, classes_from=x.train, seed=x.seed, max_train=x.max_rows)
    return {"tstr.accuracy": float(np.mean(list(acc.values()))) if acc else float("nan")}


@family(Metric("hh.spearman", -1.0, 1.0, "max", "Spearman correlation of the 12 sketch heavy-hitter errors "
               "(4 sketches x src IP, dst IP, 5-tuple) with the held-out trace's"))
def _heavy_hitters(x: Inputs) -> dict[str, float]:
    from .downstream.sketches import heavy_hitters

    return {"hh.spearman": heavy_hitters(x.holdout, x.candidate, seed=x.seed)["spearman"]}


# --- privacy --------------------------------------------------------------------------------------------
@family(Metric("privacy.closer_to_train", 0.0, 1.0, "min", "share of candidate flows nearer to a training flow "
               "(subset S, as many as held-out) than to a held-out flow; 0.5 = no memorisation"),
        Metric("privacy.exact_copy", 0.0, 1.0, "min", "share of candidate records equal to a training record "
               "(all fields but time); the real row: held-out records"),
        Metric("privacy.mia_auc", 0.0, 1.0, "min", "ROC AUC of a distance attack telling S from held-out flows "
               "by their distance to the nearest candidate flow; 0.5 = nothing leaks"))
def _privacy(x: Inputs) -> dict[str, float]:
    from .privacy import (closer_to_train, exact_match_share, flow_matrix, member_sets, membership_auc,
                          scale_by)

    train = flow_matrix(x.summary("train"))
    sets = member_sets(train, flow_matrix(x.summary("holdout")), seed=x.seed)
    cand = sets.unseen_train if x.candidate_is_train else scale_by(train, flow_matrix(x.summary("candidate")))[0]
    rng = np.random.default_rng(x.seed)
    copies = exact_match_share(x.train, x.holdout if x.candidate_is_train else x.candidate, x.kind)
    return {"privacy.closer_to_train": closer_to_train(sets, _subsample(cand, x.max_rows, rng)),
            "privacy.exact_copy": copies,
            "privacy.mia_auc": membership_auc(sets, _subsample(cand, x.max_candidate_flows, rng))}


def _subsample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most `n` rows, drawn without replacement (all of them when there are fewer)."""
    return rows if len(rows) <= n else rows[rng.choice(len(rows), n, replace=False)]


# --- entry points ---------------------------------------------------------------------------------------
def metrics_for(kind: TraceKind) -> list[Metric]:
    """The metrics that apply to a kind of table, in scorecard order."""
    return [mt for fam in FAMILIES for mt in fam.metrics if kind in mt.kinds]


def _check(tables: dict[str, pd.DataFrame], kind: TraceKind) -> None:
    for name, table in tables.items():
        try:
            actual = table_kind(table)
        except ValueError as exc:
            raise UserError(f"cannot score the {name} table: {exc}") from None
        if actual != kind:
            raise UserError(f"the {name} table holds {actual} but the trace is {kind}: score a {kind} table "
                            "(for example `tracesynth flows PCAP OUT.csv` turns packets into flow records)")
        if len(table) == 0:
            raise UserError(f"the {name} table has no records to score")


def _run(x: Inputs, keep: Callable[[Metric], bool]) -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    out: dict[str, float] = {}
    with threadpool_limits(limits=1), np.errstate(all="ignore"):  # 1 thread: a shared 2-core machine
        for fam in FAMILIES:
            wanted = [mt.name for mt in fam.metrics if x.kind in mt.kinds and keep(mt)]
            if wanted:
                values = fam.compute(x)
                out.update({name: float(values.get(name, float("nan"))) for name in wanted})
    return out


def score(train: pd.DataFrame, holdout: pd.DataFrame, candidate: pd.DataFrame, kind: TraceKind, *, seed: int = 0,
          candidate_is_train: bool = False) -> dict[str, float]:
    """Every metric of `candidate` against `holdout` (flat name -> value; NaN where one does not apply).

    `train` is what the generator was fitted on (privacy metrics; class set of `tstr`). Pass the training
    table itself as candidate with `candidate_is_train=True` for the `real` floor row.
    """
    _check({"train": train, "held-out": holdout, "candidate": candidate}, kind)
    return _run(Inputs(train, holdout, candidate, kind, seed, candidate_is_train), lambda mt: True)


def reference(holdout: pd.DataFrame, train: pd.DataFrame, kind: TraceKind) -> dict[str, float]:
    """The held-out data's own value of each `match` metric (shown beside every row's value)."""
    _check({"train": train, "held-out": holdout}, kind)
    return _run(Inputs(train, holdout, holdout, kind), lambda mt: mt.direction == "match")


__all__ = ["Metric", "METRICS", "FAMILIES", "FIELD_MEASURES", "Inputs", "metrics_for", "score", "reference"]
