"""Merging by flow tags, output sizing and trimming, on hand-made arrays with known answers."""
from __future__ import annotations

import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesynth.pipeline import generation as gen

# attribute row: [flow_start, starts_here(0,1), in_chunk_0(0,1), in_chunk_1(0,1), in_chunk_2(0,1), marker]
LAYOUT = gen.AttributeLayout(flow_start=0, starts_here=(1, 2), in_chunk=((3, 4), (5, 6), (7, 8)))


def row(start, starts_here, bits, marker):
    r = [start, 1 - starts_here, starts_here]
    for b in bits:
        r += [1 - b, b]
    return r + [marker]


def test_merge_keeps_starting_rows_and_copies_forward():
    chunk0 = np.array([row(0.1, 1, (1, 0, 1), 10),     # starts in 0, continues into 2
                       row(0.2, 1, (1, 1, 0), 11),     # starts in 0, continues into 1
                       row(0.3, 0, (1, 1, 0), 12)],    # not starting here: dropped
                      dtype=np.float32)
    chunk1 = np.array([row(0.4, 1, (0, 1, 1), 20),     # starts in 1, continues into 2
                       row(0.05, 0, (1, 1, 0), 21),    # continuation: only its flow_start is reused
                       row(0.5, 1, (0, 0, 1), 22)],    # claims to start in 1 but bit 1 unset: dropped
                      dtype=np.float32)
    chunk2 = np.array([row(0.6, 1, (0, 0, 1), 30)], dtype=np.float32)
    merged = gen.merge_by_tags([chunk0, chunk1, chunk2], LAYOUT, np.random.default_rng(0))
    markers = [sorted(m[:, -1].astype(int).tolist()) for m in merged]
    assert markers == [[10, 11], [11, 20], [10, 20, 30]]
    copied = merged[1][merged[1][:, -1] == 11][0]
    assert not gen.tag_set(copied[None], LAYOUT.starts_here)[0]
    assert copied[0] == np.float32(0.05)              # flow start drawn from chunk 1's continuations
    copied2 = merged[2][merged[2][:, -1] == 10][0]
    assert copied2[0] == 0.0                          # chunk 2 generated no continuations: window start


def test_absolute_times_cumulate_within_each_flow():
    starts = np.array([100.0, 200.0])
    fid = np.array([0, 0, 0, 1, 1])
    iat = np.array([0.0, 1.0, 2.0, 0.5, 0.25])
    assert np.allclose(gen.absolute_times(starts, fid, iat), [100, 101, 103, 200.5, 200.75])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=40), st.integers(0, 1000), st.integers(0, 2**31))
def test_select_records_hits_target_exactly(lengths, target, seed):
    fid = np.repeat(np.arange(len(lengths)), lengths)
    mask = gen.select_records(fid, np.ones(len(fid), bool), target, np.random.default_rng(seed))
    assert mask.sum() == min(target, len(fid))
    kept_flows, counts = np.unique(fid[mask], return_counts=True)
    full = np.asarray(lengths)[kept_flows]
    assert (counts < full).sum() <= 1                  # at most one flow is cut short
    # the cut flow keeps its earliest records
    for f in kept_flows:
        idx = np.flatnonzero(fid == f)
        assert mask[idx].tolist() == sorted(mask[idx].tolist(), reverse=True)


@given(st.integers(0, 10**6), st.lists(st.floats(0, 1000), min_size=1, max_size=20))
def test_split_target_sums_exactly(total, weights):
    parts = gen.split_target(total, np.array(weights))
    assert parts.sum() == total and (parts >= 0).all()


def test_target_records_count_and_scale():
    assert gen.target_records(1000, 250, None) == 250
    assert gen.target_records(1000, None, 1.5) == 1500
    assert gen.target_records(1000, None, None) == 1000


def test_window_mask_last_window_is_closed():
    t = np.array([0.0, 5.0, 10.0])
    assert gen.window_mask(t, (0, 10), last=False).tolist() == [True, True, False]
    assert gen.window_mask(t, (0, 10), last=True).tolist() == [True, True, True]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(0, 50), st.integers(0, 2**31 - 1))
def test_thin_rows_is_an_ordered_subset_of_the_requested_size(n, keep, seed):
    rows = np.arange(n, dtype=np.float32).reshape(n, 1) * np.ones((1, 3), np.float32)
    out = gen.thin_rows(rows, keep, np.random.default_rng(seed))
    assert len(out) == min(n, keep)
    assert len(np.unique(out[:, 0])) == len(out)                 # no row twice
    assert np.all(np.diff(out[:, 0]) > 0)                         # original order kept
    assert np.isin(out[:, 0], rows[:, 0]).all()
    again = gen.thin_rows(rows, keep, np.random.default_rng(seed))
    np.testing.assert_array_equal(out, again)                     # reproducible for a seed


def test_thin_rows_keeps_all_rows_when_not_too_many():
    rows = np.ones((5, 2), np.float32)
    assert gen.thin_rows(rows, 5, np.random.default_rng(0)) is rows
    assert gen.thin_rows(rows, 9, np.random.default_rng(0)) is rows


def test_flows_to_draw_pilots_then_follows_the_measured_yield():
    from tracesynth.pipeline import sampling

    # first round: a pilot share of the training ratio's estimate, no margin
    assert sampling._flows_to_draw(1000, 0, 0, 2.0, 0) == int(np.ceil(sampling.PILOT_SHARE * 500))
    # later: what is missing at the measured yield (600 records from 400 rows = 1.5 per row), with margin
    want = sampling._flows_to_draw(1000, 600, 400, 2.0, 1)
    assert want == int(np.ceil(sampling.MEASURED_MARGIN * 400 / 1.5))
    # a few records short still draws a useful batch; a full chunk draws nothing
    assert sampling._flows_to_draw(1000, 999, 400, 2.0, 2) == sampling.MIN_DRAW
    assert sampling._flows_to_draw(1000, 1000, 400, 2.0, 2) == 0


def test_generation_threads_follow_the_options_and_are_restored(monkeypatch):
    """sample_chunks' thread count: torch's, BLAS held to one, and the decoders' row threads, all from
    the options, restored after; the environment variable is the CLI's business, not read here."""
    import torch
    from threadpoolctl import threadpool_info

    from tracesynth._parallel import available_cores, row_threads
    from tracesynth.pipeline import sampling
    from tracesynth.runtime import GenerationOptions

    before = torch.get_num_threads()
    monkeypatch.setenv("TRACESYNTH_GENERATE_THREADS", "3")              # ignored by the library
    with sampling.generation_threads(GenerationOptions(threads=1).resolved_threads()):
        assert torch.get_num_threads() == 1 and row_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert torch.get_num_threads() == before and row_threads() == available_cores()
    with sampling.generation_threads(sampling.DEFAULT_OPTIONS.resolved_threads()):
        assert torch.get_num_threads() == row_threads() == available_cores()  # default: every core
    assert torch.get_num_threads() == before

@settings(max_examples=60)
@given(want=st.lists(st.integers(0, 300_000), min_size=1, max_size=12))
def test_waves_split_every_chunk_evenly(want):
    from tracesynth.pipeline.sampling import WAVE_ROWS, _waves

    want = np.array(want, dtype=np.int64)
    waves = _waves(want)
    assert len(waves) == max(1, int(np.ceil(want.sum() / WAVE_ROWS)))
    np.testing.assert_array_equal(np.sum(waves, axis=0), want)          # every row drawn exactly once
    for take in waves:                                                  # each wave: the same share of each
        assert (np.abs(take - want / len(waves)) <= 1).all()
        assert take.sum() <= WAVE_ROWS + len(want)


def test_header_consistency_keeps_icmp_type_code_and_header_lengths():
    """Both models' packets pass the same rules: ICMP keeps type/code (in the port columns), other
    protocols and non-first fragments lose ports and flags, a first fragment is at least its headers long."""
    from tracesynth.pipeline.generation import header_consistency

    cols = {"proto": np.array([1, 6, 17, 47, 6, 6], np.uint8),
            "srcport": np.array([8, 443, 53, 9, 80, 80], np.uint16),
            "dstport": np.array([0, 5000, 6000, 9, 81, 81], np.uint16),
            "tcp_flags": np.array([2, 16, 16, 16, 24, 24], np.uint8),
            "flag": np.array([0, 2, 0, 0, 1, 2], np.uint8),
            "off": np.array([0, 0, 0, 0, 185, 185], np.uint16),
            "pkt_len": np.array([20, 32, 20, 20, 20, 1500], np.uint16)}
    header_consistency(cols)
    assert cols["srcport"].tolist() == [8, 443, 53, 0, 0, 80] and cols["dstport"].tolist() == [0, 5000, 6000, 0, 0, 81]
    assert cols["tcp_flags"].tolist() == [0, 16, 0, 0, 0, 24]
    assert cols["off"].tolist() == [0, 0, 0, 0, 185, 0]                # don't-fragment: offset 0
    assert cols["pkt_len"].tolist() == [28, 40, 28, 20, 20, 1500]       # a later fragment may be short
