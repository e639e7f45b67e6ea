"""The benchmark scorecard on real traces: the `real` floor, and the two baselines each caught where they fail.

Rows follow the benchmark protocol: split flows 80/20, score each candidate against the held-out part.
Figures these bounds come from (caida-10k, seed 0): real AUC records/flows 0.52/0.48, marginals 0.75/0.92,
copy MIA 0.84 and exact copy 1.0; docs/evaluation.md has the full tables.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from tsdata import shared
from tracesynth.errors import UserError
from tracesynth.evaluate import scorecard as sc
from tracesynth.evaluate.baseline import copy, marginals
from tracesynth.evaluate.fidelity import fidelity
from tracesynth.evaluate.split import split_flows
from tracesynth.evaluate.tcp import fin_rst_close_share, syn_open_share, tcp_flows
from tracesynth.io import read_trace


def rows(table, seed: int = 0) -> dict[str, dict[str, float]]:
    """The benchmark's real / marginals / copy rows for one trace."""
    sp = split_flows(table, holdout=0.2, seed=seed)
    n = len(sp.train)
    cand = {"real": sp.train, "marginals": marginals(sp.train, n, seed + 1), "copy": copy(sp.train, n, seed + 1)}
    out = {name: sc.score(sp.train, sp.holdout, c, sp.kind, seed=seed, candidate_is_train=name == "real")
           for name, c in cand.items()}
    out["_split"], out["_cand"] = sp, cand
    return out


@pytest.fixture(scope="module")
def caida_rows(caida_table):
    return rows(caida_table)


@pytest.fixture(scope="module")
def ugr_rows(ugr_table):
    return rows(ugr_table)


def test_every_metric_is_declared():
    for mt in sc.METRICS.values():
        assert mt.direction in ("min", "max", "match") and mt.low < mt.high and mt.description
        assert "\n" not in mt.description and set(mt.kinds) <= {"packets", "flows"}
    names = {k: {mt.name for mt in sc.metrics_for(k)} for k in ("packets", "flows")}
    assert "tcp.syn_open" in names["packets"] - names["flows"]
    assert {"tstr.accuracy", "field.label", "flow.packets_emd"} <= names["flows"] - names["packets"]


@pytest.mark.parametrize("which, kind", [("caida_rows", "packets"), ("ugr_rows", "flows")])
def test_score_is_flat_complete_and_in_range(which, kind, request):
    r = request.getfixturevalue(which)
    names = [mt.name for mt in sc.metrics_for(kind)]
    for row in ("real", "marginals", "copy"):
        assert list(r[row]) == names  # flat, every applicable metric, registry order
        for name, value in r[row].items():
            mt = sc.METRICS[name]
            assert math.isnan(value) or mt.low - 1e-12 <= value <= mt.high + 1e-12, (row, name, value)


@pytest.mark.parametrize("which", ["caida_rows", "ugr_rows"])
def test_real_row_is_the_floor(which, request):
    real = request.getfixturevalue(which)["real"]
    # grouped folds: two real flow-disjoint parts are indistinguishable (EVALUATION.md: 0.55 / 0.54)
    assert 0.4 < real["auc.records"] < 0.62 and 0.4 < real["auc.flows"] < 0.62
    # unseen training flows: as near to the held-out flows as to the member subset S
    assert 0.4 < real["privacy.closer_to_train"] < 0.6 and 0.4 < real["privacy.mia_auc"] < 0.6
    assert real["privacy.exact_copy"] < 0.05


@pytest.mark.parametrize("which", ["caida_rows", "ugr_rows"])
def test_copy_is_flagged_by_the_privacy_metrics(which, request):
    r = request.getfixturevalue(which)
    assert r["copy"]["privacy.exact_copy"] == 1.0
    assert r["copy"]["privacy.mia_auc"] > 0.65 > r["real"]["privacy.mia_auc"] + 0.05
    assert r["copy"]["privacy.closer_to_train"] > r["real"]["privacy.closer_to_train"] + 0.05
    # ...while its per-field fidelity is as good as the real floor
    assert r["copy"]["jsd.mean"] < r["real"]["jsd.mean"] + 0.02


@pytest.mark.parametrize("which", ["caida_rows", "ugr_rows"])
def test_marginals_is_caught_by_joint_metrics_not_by_per_field_jsd(which, request):
    r = request.getfixturevalue(which)
    sp, m = r["_split"], r["marginals"]
    assert fidelity(sp.train, r["_cand"]["marginals"], sp.kind)["avg_jsd"] < 0.04  # vs train: marginals kept
    assert abs(m["jsd.mean"] - r["real"]["jsd.mean"]) < 0.03  # per-field JSD vs held-out: at the floor
    assert m["pairs.tv_mean"] > r["real"]["pairs.tv_mean"] + 0.02  # but 2-way marginals are lost
    assert m["auc.records"] > r["real"]["auc.records"] + 0.15 and m["auc.flows"] > 0.8
    assert m["privacy.mia_auc"] < 0.6 and m["privacy.exact_copy"] < 0.02  # and nothing is memorised


def test_tcp_metrics_and_reference_on_caida(caida_rows):
    sp = caida_rows["_split"]
    ref = sc.reference(sp.holdout, sp.train, "packets")
    assert set(ref) == {mt.name for mt in sc.metrics_for("packets") if mt.direction == "match"}
    assert ref["tcp.syn_open"] == syn_open_share(tcp_flows(sp.holdout))
    assert ref["tcp.fin_rst_close"] == fin_rst_close_share(tcp_flows(sp.holdout))
    real, m = caida_rows["real"], caida_rows["marginals"]
    assert abs(real["tcp.syn_open"] - ref["tcp.syn_open"]) < 0.05
    assert m["tcp.bigram_jsd"] > 10 * real["tcp.bigram_jsd"]  # per-packet flags lose their order
    assert sc.reference(sp.holdout, sp.train, "packets") == ref  # deterministic


def test_score_is_seeded(caida_small):
    sp = split_flows(caida_small, seed=2)
    cand = marginals(sp.train, len(sp.train), 3)
    a, b = (sc.score(sp.train, sp.holdout, cand, "packets", seed=4) for _ in range(2))
    assert a.keys() == b.keys() and all(np.isclose(a[k], b[k], equal_nan=True) for k in a)


def test_tstr_beside_train_on_real_where_labels_exist():
    table = read_trace(shared("flows/iot23-ctu-malware-20-1.csv")).table
    sp = split_flows(table, seed=0)
    real = sc.score(sp.train, sp.holdout, sp.train, "flows", candidate_is_train=True)
    assert 0.5 < real["tstr.accuracy"] <= 1.0
    unlabelled = sc.score(sp.train, sp.holdout, sp.train.drop(columns=["label"]), "flows")
    assert math.isnan(unlabelled["tstr.accuracy"]) and math.isnan(unlabelled["field.label"])


def test_candidate_of_the_other_kind_is_one_clear_line(caida_small, ugr_table):
    sp = split_flows(caida_small, seed=0)
    with pytest.raises(UserError, match="candidate table holds flows but the trace is packets") as err:
        sc.score(sp.train, sp.holdout, ugr_table, "packets")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no records"):
        sc.score(sp.train, sp.holdout, sp.train.iloc[:0], "packets")


def test_field_distance_known_values():
    import pandas as pd

    ref = pd.DataFrame({"time": np.arange(0.0, 100.0, 1.0), "ttl": np.r_[np.full(50, 64), np.full(50, 128)]})
    faster = pd.DataFrame({"time": np.arange(0.0, 50.0, 0.5), "ttl": np.full(100, 64)})
    # the same regular arrival process at twice the rate: gap shape identical
    assert sc.field_distance(ref, faster, "time_gap", "gap", "packets") == 0.0
    assert sc.field_distance(ref, faster, "ttl", "jsd", "packets") == pytest.approx(
        0.5 * (0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)) + 0.5 * np.log(1 / 0.75))
    flows = pd.DataFrame({"ts": [0.0, 1.0], "byt": [np.e - 1, np.e ** 3 - 1]})  # log1p: 1 and 3, range 2
    shifted = flows.assign(byt=[np.e ** 2 - 1, np.e ** 4 - 1])  # log1p: 2 and 4, EMD 1
    assert sc.field_distance(flows, shifted, "byt", "log_emd", "flows") == pytest.approx(0.5)
    assert np.isnan(sc.field_distance(flows, shifted, "label", "jsd", "flows"))


@pytest.mark.parametrize("fixture", ["caida_small", "ugr_table"])
def test_the_held_out_part_scored_against_itself_is_perfect(fixture, request):
    table = request.getfixturevalue(fixture)
    sp = split_flows(table, seed=1)
    r = sc.score(sp.train, sp.holdout, sp.holdout.copy(), sp.kind, seed=0)
    distances = [k for k, mt in sc.METRICS.items() if k in r and mt.direction == "min"
                 and k.split(".")[0] in ("jsd", "emd", "field", "pairs", "flow", "tcp")]
    assert distances and all(r[k] == 0 or math.isnan(r[k]) for k in distances), {k: r[k] for k in distances}
    assert abs(r["auc.records"] - 0.5) < 0.1 and abs(r["auc.flows"] - 0.5) < 0.1
    assert r["hh.spearman"] == pytest.approx(1.0)
    assert r["privacy.closer_to_train"] == 0.0 and r["privacy.mia_auc"] < 0.5  # it *is* the held-out part
