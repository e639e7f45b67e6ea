"""NetShare's metrics on real captures agree with a direct scipy computation written independently here."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from tracesynth.evaluate.fidelity import fidelity


def _direct_rank_jsd(a, b):
    ra = sorted(Counter(a.tolist()).values(), reverse=True)
    rb = sorted(Counter(b.tolist()).values(), reverse=True)
    n = max(len(ra), len(rb))
    ra, rb = ra + [0] * (n - len(ra)), rb + [0] * (n - len(rb))
    return jensenshannon(np.array(ra) / sum(ra), np.array(rb) / sum(rb)) ** 2


def _direct_hist_jsd(a, b, bins):
    ha, _ = np.histogram(a, bins=np.arange(bins + 1))
    hb, _ = np.histogram(b, bins=np.arange(bins + 1))
    return jensenshannon(ha / ha.sum(), hb / hb.sum()) ** 2


def _direct_jsd(real, synth):
    return {"SA": _direct_rank_jsd(real.srcip, synth.srcip), "DA": _direct_rank_jsd(real.dstip, synth.dstip),
            "SP": _direct_hist_jsd(real.srcport, synth.srcport, 65536),
            "DP": _direct_hist_jsd(real.dstport, synth.dstport, 65536),
            "PR": _direct_hist_jsd(real.proto, synth.proto, 256)}


def _halves(table, key):
    order = np.argsort(table[key].to_numpy(), kind="stable")
    half = len(table) // 2
    return table.iloc[order[:half]].reset_index(drop=True), table.iloc[order[half:]].reset_index(drop=True)


def test_pcap_metrics_match_scipy(caida_table):
    real, synth = _halves(caida_table, "time")  # two different real slices: every metric is non-trivial
    got = fidelity(real, synth, "packets")["netshare"]
    want = _direct_jsd(real, synth)
    fs = lambda t: list(Counter(zip(t.srcip, t.dstip, t.srcport, t.dstport, t.proto)).values())  # noqa: E731
    want.update(PS=wasserstein_distance(real.pkt_len, synth.pkt_len),
                PAT=wasserstein_distance(real.time - real.time.min(), synth.time - synth.time.min()),
                FS=wasserstein_distance(fs(real), fs(synth)))
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert all(got[k] > 0 for k in ("SA", "DA", "SP", "DP", "PS", "FS"))


def test_netflow_metrics_match_scipy(ugr_table):
    real, synth = _halves(ugr_table, "ts")
    got = fidelity(real, synth, "flows")["netshare"]
    want = _direct_jsd(real, synth)
    want.update(TS=wasserstein_distance(real.ts - real.ts.min(), synth.ts - synth.ts.min()),
                TD=wasserstein_distance(real.td, synth.td), PKT=wasserstein_distance(real.pkt, synth.pkt),
                BYT=wasserstein_distance(real.byt, synth.byt))
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("name", ["caida_table", "ugr_table"])
def test_identical_traces_score_zero_everywhere(name, request):
    table = request.getfixturevalue(name)
    kind = "packets" if "time" in table.columns else "flows"
    f = fidelity(table, table, kind)
    assert all(v == 0 for v in f["netshare"].values())
    assert all(v == 0 for v in f["emd_scaled"].values())
    assert f["avg_jsd"] == 0 and f["avg_emd_scaled"] == 0


def test_scaled_emd_ranks_a_perturbation(caida_table, perturb):
    f = fidelity(caida_table, perturb(caida_table), "packets")
    assert f["emd_scaled"]["pkt_len"] > 0 and f["emd_scaled"]["ttl"] == 0
    assert f["netshare"]["DP"] > 0 and f["netshare"]["SA"] == 0
    assert math.isclose(f["netshare_emd_scaled"]["PS"],
                        f["netshare"]["PS"] / np.ptp(caida_table.pkt_len.to_numpy(float)))
