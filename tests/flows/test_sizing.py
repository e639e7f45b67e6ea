"""The automatic choice of chunks and batch size (flows/sizing.py): the rule on hand-made traces, the
sample counts against `split_chunks`, explicit values honoured, and the errors that name what would work."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from tracesynth.config import config_from_dict, preset
from tracesynth.errors import UserError
from tracesynth.flows.chunking import split_chunks
from tracesynth.flows.sizing import (MIN_BATCH, MIN_FLOWS, STEPS_PER_EPOCH, auto_batch, choose_sizing,
                                     chunk_flow_samples, resolve_sizing)
from tracesynth.pipeline.runners import default_workers
from tracesynth.schema import canonicalize


def packets(flow_starts: np.ndarray, records_per_flow: int = 1) -> pd.DataFrame:
    """One TCP flow per start time (distinct source ports), `records_per_flow` packets 1 ms apart."""
    n = len(flow_starts)
    rows = np.repeat(np.arange(n), records_per_flow)
    step = np.tile(np.arange(records_per_flow), n)
    table = pd.DataFrame({"time": 1e9 + flow_starts[rows] + step * 1e-3, "srcip": 0x0A000001, "dstip": 0x0A000002,
                          "srcport": 1024 + rows, "dstport": 80, "proto": 6, "pkt_len": 60, "tos": 0, "id": 0,
                          "flag": 2, "off": 0, "ttl": 64, "tcp_flags": 16})
    return canonicalize(table.sort_values("time", kind="stable").reset_index(drop=True), "packets")


def config(**sections):
    d = preset("pcap").model_dump(mode="json")
    for name, values in sections.items():
        d[name].update(values)
    return config_from_dict(d)


def test_presets_leave_chunks_and_batch_to_fit():
    for name, bound in (("pcap", 100), ("netflow", 50)):
        cfg = preset(name)
        assert cfg.training.min_flows == MIN_FLOWS
        assert cfg.chunking.n_chunks is None and cfg.chunking.max_chunks == 10
        assert cfg.training.batch_size is None and cfg.training.max_batch_size == bound


def test_large_uniform_trace_keeps_netshare_sizes():
    s = choose_sizing(packets(np.linspace(0, 100, 5000)), preset("pcap"))
    assert (s.n_chunks, s.batch_size, s.flows) == (10, 100, 5000) and s.chose_chunks and s.chose_batch


def test_chunks_follow_chunk_zero_not_the_mean():
    """Most flows late in the trace: chunk 0 of a split holds few, so fewer chunks are chosen."""
    starts = np.r_[np.linspace(0, 10, 60), np.linspace(90, 100, 940)]   # 6% in the first 10% of time
    s = choose_sizing(packets(starts), preset("pcap"))
    counts = chunk_flow_samples(packets(starts), preset("pcap"), s.n_chunks)
    assert counts[0] >= 100 and chunk_flow_samples(packets(starts), preset("pcap"), s.n_chunks + 1)[0] < 100
    assert s.batch_size == auto_batch(int(counts[0]), 100)


def test_batch_is_the_bound_once_chunk_zero_holds_one():
    """Traces that fitted with NetShare's sizes train exactly as before (same batch, same cost)."""
    assert [auto_batch(n, 100) for n in (100, 150, 409, 5000)] == [100] * 4
    assert [auto_batch(n, 100) for n in (99, 60, 33, 20)] == [24, 15, 8, 8]


def test_small_trace_one_chunk_quarter_batches():
    s = choose_sizing(packets(np.linspace(0, 10, 60)), preset("pcap"))
    assert (s.n_chunks, s.batch_size) == (1, 60 // STEPS_PER_EPOCH)
    s = choose_sizing(packets(np.linspace(0, 10, MIN_FLOWS)), preset("pcap"))
    assert (s.n_chunks, s.batch_size) == (1, max(MIN_BATCH, MIN_FLOWS // STEPS_PER_EPOCH))
    s = choose_sizing(packets(np.linspace(0, 10, 20)), config(training={"min_flows": 20}))
    assert (s.n_chunks, s.batch_size) == (1, MIN_BATCH)


def test_below_minimum_is_refused_in_one_line():
    with pytest.raises(UserError, match=f"{MIN_FLOWS - 1} flow.*at least {MIN_FLOWS}") as err:
        choose_sizing(packets(np.linspace(0, 10, MIN_FLOWS - 1), records_per_flow=50), preset("pcap"))
    assert "\n" not in str(err.value)


def test_explicit_values_are_honoured():
    table = packets(np.linspace(0, 100, 5000))
    s = choose_sizing(table, config(chunking={"n_chunks": 3}, training={"batch_size": 7}))
    assert (s.n_chunks, s.batch_size, s.chose_chunks, s.chose_batch) == (3, 7, False, False)
    resolved, _ = resolve_sizing(table, config(chunking={"n_chunks": 3}))
    assert resolved.chunking.n_chunks == 3 and resolved.training.batch_size == 100


def test_impossible_explicit_chunks_name_the_largest_that_works():
    table = packets(np.linspace(0, 100, 500))                  # 50 flows per tenth of the time
    with pytest.raises(UserError, match=r"at most 5 chunk\(s\) would hold a batch \(--chunks 5\)"):
        choose_sizing(table, config(chunking={"n_chunks": 10}, training={"batch_size": 100}))
    with pytest.raises(UserError, match="the largest batch that fits is 50"):
        choose_sizing(table, config(chunking={"n_chunks": 10}, training={"batch_size": 100}))


def test_dp_mode_reads_nothing_from_the_trace():
    d = preset("pcap").model_dump(mode="json")
    d["privacy"] = {"epsilon": 4.0}
    s = choose_sizing(packets(np.linspace(0, 1, 3)), config_from_dict(d))   # far below the minimum: not looked at
    assert (s.n_chunks, s.batch_size, s.flows) == (10, 100, -1) and "DP mode" in s.describe()


@settings(max_examples=40)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=300), st.integers(1, 12), st.integers(1, 5),
       st.sampled_from([1, 2, 3, 100]))
def test_sample_counts_match_split_chunks(starts, n_chunks, per_flow, cap):
    """What the rule counts is what `split_chunks` builds: flow samples per window after the length cap."""
    table = packets(np.asarray(starts), per_flow)
    cfg = config(chunking={"n_chunks": n_chunks}, flow_length={"max_flow_len": cap}, model={"sample_len": 1})
    expected = [c.flows.n_flows for c in split_chunks(table, cfg)]
    assert chunk_flow_samples(table, cfg, n_chunks).tolist() == expected


def test_default_workers_capped_by_fine_tuned_chunks(monkeypatch):
    import tracesynth.pipeline.runners as runners

    monkeypatch.setattr(runners, "available_cores", lambda: 2)
    assert [default_workers(n) for n in (1, 2, 3, 10)] == [1, 1, 2, 2]
    monkeypatch.setattr(runners, "available_cores", lambda: 16)
    assert default_workers(10) == 9
