"""Protocol realism (evaluate/expert.py): tshark's expert counts parsed from a real run on real captures,
the pcap writer adding no complaints a real capture does not have, skips and failures that say why."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from tsdata import shared
from tracesynth.evaluate import evaluate_tables
from tracesynth.evaluate.expert import (ExpertError, compare, connection_sample, expert_counts, kind_l1,
                                        table_expert_counts, unavailable)
from tracesynth.evaluate.report import render
from tracesynth.evaluate.scorecard import score
from tracesynth.io import read_trace

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                  reason="tshark is not installed (apt-get install tshark, or `make tshark`)")
RST = 0x04


@needs_tshark
def test_parses_tsharks_output_on_a_real_capture():
    path = shared("caida/caida-1k.pcapng")
    table = read_trace(path).table
    got = expert_counts(path)
    assert got.packets == 1000
    tcp = table[table["proto"] == 6]
    # tshark warns once per reset; the table says how many packets carry RST
    assert got.counts[("Warns", "TCP", "Connection reset (RST)")] == int((tcp["tcp_flags"] & RST > 0).sum())
    assert ("Notes", "IPv4", '"Time To Live" only N') in got.counts        # numbers in summaries become N
    assert got.severity_per_1k("Warns") == pytest.approx(sum(v for k, v in got.counts.items() if k[0] == "Warns"))
    assert all(sev in ("Errors", "Warns", "Notes") for sev, _, _ in got.counts)  # chats are not complaints


@needs_tshark
@pytest.mark.parametrize("name", ["caida/caida-10k.pcapng", "iot23/honeypot-4-1.pcap", "ndpi/KakaoTalk_talk.pcap",
                                  "ndpi/WebattackXSS.pcap", "ndpi/synscan.pcap"])
def test_rewritten_real_capture_stays_within_2x_of_the_original(name):
    """The writer must not invent anomalies: no kind of complaint is more than twice as frequent in the
    rewritten capture as in the original (per 1,000 packets; one occurrence of slack for rare kinds)."""
    path = shared(name)
    original, rewritten = expert_counts(path), table_expert_counts(read_trace(path).table)
    a, b = original.per_1k(), rewritten.per_1k()
    slack = 1000.0 / rewritten.packets
    for kind, rate in b.items():
        assert rate <= 2 * a.get(kind, 0.0) + slack, (kind, rate, a.get(kind, 0.0))


@needs_tshark
@pytest.mark.parametrize("name", ["caida/caida-10k.pcapng", "iot23/honeypot-4-1.pcap"])
def test_rewritten_real_totals_within_2x(name):
    """All complaints together stay within 2x: what the table cannot carry (lost segments, SACK blocks,
    real data retransmissions: caida's warnings fall from 13.3 to 5.3 per 1,000) goes, the rest stays."""
    path = shared(name)
    original, rewritten = expert_counts(path), table_expert_counts(read_trace(path).table)
    real, rw = (sum(c.severity_per_1k(s) for s in ("Errors", "Warns", "Notes")) for c in (original, rewritten))
    assert real / 2 <= rw <= 2 * real, (real, rw)


@needs_tshark
def test_compare_reports_real_beside_synthetic_and_kind_l1():
    real = read_trace(shared("caida/caida-1k.pcapng")).table
    synth = real.copy()
    synth["tcp_flags"] = np.where(synth["proto"] == 6, 0x14, synth["tcp_flags"])  # every TCP packet RST|ACK
    out = compare(real, synth)
    assert out["tool"].startswith("tshark ") and out["packets"] == {"real": 1000, "synthetic": 1000}
    rst = next(k for k in out["kinds"] if k["kind"] == "Warns TCP: Connection reset (RST)")
    assert rst["synthetic"] > 10 * rst["real"] > 0
    assert out["kind_l1"] >= rst["synthetic"] - rst["real"]
    same = table_expert_counts(real)
    assert kind_l1(same, same) == 0.0


@needs_tshark
def test_failures_and_hangs_are_clear_errors(tmp_path):
    not_a_capture = tmp_path / "notes.pcap"
    not_a_capture.write_text("this is not a capture\n" * 10)
    with pytest.raises(ExpertError, match="notes.pcap: tshark exited with code"):
        expert_counts(not_a_capture)
    with pytest.raises(ExpertError, match="did not finish within"):
        expert_counts(shared("caida/caida-10k.pcapng"), timeout_s=0.001)


def test_without_tshark_the_metric_is_skipped_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))          # an empty PATH: no tshark
    assert "tshark is not installed" in unavailable()
    real = read_trace(shared("caida/caida-1k.pcapng")).table
    assert compare(real, real) == {"skipped": unavailable()}
    with pytest.raises(ExpertError, match="not installed"):
        expert_counts(shared("caida/caida-1k.pcapng"))
    half = len(real) // 2
    scores = score(real.iloc[:half], real.iloc[half:], real.iloc[:half], "packets")
    assert all(np.isnan(scores[m]) for m in ("expert.warns_per_1k", "expert.notes_per_1k", "expert.kind_l1"))
    result = evaluate_tables(real.iloc[:half], real.iloc[half:], downstream=False)
    assert result["protocol"] == {"skipped": unavailable()}
    page = render(real.iloc[:half], real.iloc[half:], result)
    assert "Skipped: tshark is not installed" in page and "was not measured: tshark is not installed" in page


@needs_tshark
def test_scorecard_and_evaluate_carry_the_expert_figures():
    real = read_trace(shared("caida/caida-1k.pcapng")).table
    half = len(real) // 2
    scores = score(real.iloc[:half], real.iloc[half:], real.iloc[:half], "packets", candidate_is_train=True)
    assert scores["expert.warns_per_1k"] > 0 and scores["expert.kind_l1"] >= 0
    result = evaluate_tables(real.iloc[:half], real.iloc[half:], downstream=False)
    assert set(result["protocol"]["per_1k"]) == {"Errors", "Warns", "Notes"}
    flows = read_trace(shared("ugr16/ugr16-1k.csv")).table
    assert "not applicable" in evaluate_tables(flows, flows, downstream=False)["protocol"]["skipped"]


def test_big_tables_are_analysed_on_whole_connections():
    table = read_trace(shared("ndpi/WebattackXSS.pcap")).table
    assert connection_sample(table, len(table)) is table
    part = connection_sample(table, 2000)
    assert 0 < len(part) <= 2000 and part.index.is_monotonic_increasing
    def ends(r):
        return frozenset([(r.srcip, r.srcport), (r.dstip, r.dstport)])

    kept = {ends(r) for r in part.itertuples()}
    whole = [r for r in table.itertuples() if ends(r) in kept]
    assert len(whole) == len(part)                      # every packet of a kept connection, both directions
    assert connection_sample(table, 2000).equals(part)  # seeded
