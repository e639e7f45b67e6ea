"""Sampling a synthetic trace from fitted chunk models (NETSHARE.md section 6), sized to a target.

Rounds: each round samples attributes from every chunk that is still short of its target, merges
them by flow tags (`generation.merge_by_tags`), generates time series conditioned on the merged lists,
decodes them and keeps the records inside each chunk's window; a round runs in waves of bounded size,
each wave the same share of every chunk's rows. Rounds repeat until every chunk has
at least its share of the requested records (its share of the training records, times the scale);
then `generation.select_records` drops whole random flows and cuts the last one short so the chunk
holds exactly its share. The output therefore has exactly the requested number of records (unless
the models cannot produce enough in 10 rounds, which is logged) and keeps the real time profile.
Sizing wastes little: the first round is a pilot below the training-ratio estimate, later rounds
draw from each chunk's measured yield, and a chunk's merged list is thinned to what it still misses
(copies from earlier chunks can bring more), since every drawn row costs the 4x512 attribute MLP.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._parallel import using_threads
from ..progress import ProgressCallback, emit
from ..runtime import GenerationOptions
from ..schema import canonicalize, columns_for
from . import generation as gen

log = logging.getLogger(__name__)

MAX_ROUNDS = 10
#: attribute rows drawn at once over all chunks (a wave; see `_waves`). Waves keep every array of
#: generation small (64k rows x ~1 KB for caida), so memory is reused between waves instead of being
#: mapped afresh (page faults cost up to a fifth of generation time on the 2-core VM), peak memory is
#: bounded, and the progress bar moves every wave
WAVE_ROWS = 65536
#: flows whose series are generated and decoded together (per-batch overheads vs. memory)
GENERATE_BATCH = 8192
#: the first round draws this share of the attribute rows the training ratio suggests (no margin): a
#: pilot that measures each chunk's real yield (records per drawn row, after the tag merge and the
#: window cut), so later rounds draw close to exactly what is missing instead of overshooting
PILOT_SHARE = 0.9
#: safety margin on the missing records once the yield has been measured
MEASURED_MARGIN = 1.05
#: attribute rows drawn at least per chunk and round once the yield is known: a few records short must
#: not cost one round each (rounds are capped at MAX_ROUNDS)
MIN_DRAW = 64


@dataclass
class ChunkPlan:
    """What sampling needs to know about one fitted chunk."""

    index: int
    window: tuple[float, float]
    real_records: int          # records of the real chunk (sizing weight)
    records_per_flow: float    # mean records per training flow sample (first-round guess)
    model: object              # DoppelGANger with loaded weights


def decode_records(encoder, kind: str, attrs: np.ndarray, records: np.ndarray, lengths: np.ndarray,
                   window: tuple[float, float], last: bool) -> pd.DataFrame:
    """Decode generated flows (packed, as `DoppelGANger.generate` gives them) into canonical records
    (+ a `_flow` column) inside the chunk window."""
    per_flow, per_record = encoder.decode_columns(attrs, records, lengths, window)
    fid = per_record["flow_id"]
    times = gen.absolute_times(per_flow["flow_start"], fid, per_record["iat"])
    time_col = "time" if kind == "packets" else "ts"
    cols = {time_col: times}
    for name in columns_for(kind):
        if name == time_col:
            continue
        if name in per_record:
            cols[name] = per_record[name]
        elif name in per_flow:
            cols[name] = per_flow[name][fid]
    if "label" in per_record and kind == "flows":
        cols["label"] = per_record["label"]
    cols["_flow"] = fid
    if kind == "packets":
        gen.header_consistency(cols)
    inside = gen.window_mask(times, window, last)
    return pd.DataFrame({name: values[inside] for name, values in cols.items()})


#: what generation runs with unless the caller says otherwise: every core, precision auto
DEFAULT_OPTIONS = GenerationOptions()


def sample_chunks(plans: list[ChunkPlan], encoder, layout: gen.AttributeLayout | None, kind: str, target: int,
                  seed: int, progress: ProgressCallback | None = None,
                  options: GenerationOptions = DEFAULT_OPTIONS) -> pd.DataFrame:
    """Generate `target` records over all chunks (see module docstring); sorted by time. `options`:
    threads and matmul precision (both change the output for a seed, so the caller fixes them)."""
    with generation_threads(options.resolved_threads()):
        return _sample_chunks(plans, encoder, layout, kind, target, seed, progress, options)


@contextlib.contextmanager
def generation_threads(threads: int):
    """Torch's intra-op threads and the decoders' row threads (`_parallel.map_rows`) set to `threads`,
    restored after (training workers keep their single thread), and numpy's BLAS held to one thread
    meanwhile: its pool and torch's OpenMP pool would otherwise spin against each other between calls
    (measured: decoding 2.3x slower on two cores); numpy's work here is split over threads by the
    decoders themselves. Generation's torch work is mostly large matmuls (the attribute MLP, the
    LSTM's input projection) that scale with cores: docs/benchmarks.md, "## Pipeline", has one and two
    threads on two cores."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=1, user_api="blas"), using_threads(threads):
            yield
    finally:
        torch.set_num_threads(before)


def _sample_chunks(plans: list[ChunkPlan], encoder, layout: gen.AttributeLayout | None, kind: str, target: int,
                   seed: int, progress: ProgressCallback | None, options: GenerationOptions) -> pd.DataFrame:
    import torch

    rng = np.random.default_rng(seed)
    targets = gen.split_target(target, np.array([p.real_records for p in plans]))
    have = np.zeros(len(plans), dtype=np.int64)
    drawn = np.zeros(len(plans), dtype=np.int64)       # attribute rows sampled per chunk so far
    series = np.zeros(len(plans), dtype=np.int64)      # merged rows given time series per chunk so far
    pieces: list[list[pd.DataFrame]] = [[] for _ in plans]
    next_flow = 0
    for rnd in range(MAX_ROUNDS):
        want = np.array([_flows_to_draw(t, h, d, p.records_per_flow, rnd)
                         for t, h, d, p in zip(targets, have, drawn, plans)], dtype=np.int64)
        if not want.any():
            break
        attribute_noise = [torch.Generator().manual_seed(_seed(seed, rnd, p.index, 0)) for p in plans]
        series_noise = [torch.Generator().manual_seed(_seed(seed, rnd, p.index, 1)) for p in plans]
        for take in _waves(want):
            if (have >= targets).all():
                break
            per_chunk = [plan.model.generate_attributes(int(n), generator=g, precision=options.precision)
                         if n else _empty_attrs(plan.model)
                         for plan, n, g in zip(plans, take, attribute_noise)]
            drawn += take
            merged = per_chunk if layout is None else gen.merge_by_tags(per_chunk, layout, rng)
            del per_chunk                               # the drawn rows are not needed past the merge
            for j, plan in enumerate(plans):
                if len(merged[j]) == 0 or have[j] >= targets[j]:
                    continue
                if series[j] and have[j]:  # copies from earlier chunks may bring more flows than are missing
                    need = gen.flows_needed(int(targets[j]), have[j] / series[j], int(have[j]),
                                            margin=MEASURED_MARGIN)
                    merged[j] = gen.thin_rows(merged[j], max(MIN_DRAW, need), rng)
                series[j] += len(merged[j])
                for attrs, rows, lengths in plan.model.iter_generate(len(merged[j]), generator=series_noise[j],
                                                                     attributes=merged[j], batch_size=GENERATE_BATCH,
                                                                     precision=options.precision):
                    records = decode_records(encoder, kind, attrs, rows, lengths, plan.window, j == len(plans) - 1)
                    records["_flow"] += next_flow
                    next_flow += len(attrs)
                    pieces[j].append(records)
                    have[j] += len(records)
            emit(progress, "generate", float(np.minimum(have, targets).sum()), float(target), "records", round=rnd)
    if (have < targets).any():
        log.warning("the models produced %d of the %d requested records after %d rounds",
                    int(np.minimum(have, targets).sum()), target, MAX_ROUNDS)
    return _assemble(pieces, targets, kind, rng)


def _waves(want: np.ndarray) -> list[np.ndarray]:
    """Split a round's rows per chunk into waves of about WAVE_ROWS rows in all, each wave the same share
    of every chunk's rows (so every wave's merge sees the chunks in the round's proportions)."""
    n_waves = max(1, int(np.ceil(want.sum() / WAVE_ROWS)))
    edges = want[:, None] * np.arange(n_waves + 1)[None, :] // n_waves      # [chunks, waves + 1]
    return [edges[:, w + 1] - edges[:, w] for w in range(n_waves)]


def _flows_to_draw(target: int, have: int, drawn: int, records_per_flow: float, rnd: int) -> int:
    """Attribute rows to sample next: from the yield seen so far (records kept per drawn row), or a
    pilot share of the training ratio's estimate at first."""
    if have >= target:
        return 0
    if drawn and have:
        return max(MIN_DRAW, gen.flows_needed(target, have / drawn, have, margin=MEASURED_MARGIN))
    if rnd == 0:
        return max(1, int(np.ceil(PILOT_SHARE * target / max(records_per_flow, 1e-9))))
    return gen.flows_needed(target, records_per_flow / (2.0 ** min(rnd, 4)), have)


def _seed(seed: int, rnd: int, chunk: int, stage: int) -> int:
    return int(np.random.SeedSequence([int(seed), rnd, chunk, stage]).generate_state(1)[0])


def _empty_attrs(model) -> np.ndarray:
    width = sum(s.dim for s in model.attribute_spans) if hasattr(model, "attribute_spans") else 0
    return np.zeros((0, width), dtype=np.float32)


def _assemble(pieces: list[list[pd.DataFrame]], targets: np.ndarray, kind: str,
              rng: np.random.Generator) -> pd.DataFrame:
    """Trim every chunk to its target by whole random flows, concatenate, sort by time."""
    time_col = "time" if kind == "packets" else "ts"
    kept = []
    for parts, target in zip(pieces, targets):
        if not parts or target <= 0:
            continue
        records = pd.concat(parts, ignore_index=True)
        flow = records["_flow"].to_numpy()
        mask = gen.select_records(flow, np.ones(len(records), bool), int(target), rng)
        kept.append(records[mask])
    if not kept:
        from ..schema import empty_table

        return empty_table(kind)
    out = pd.concat(kept, ignore_index=True).drop(columns="_flow")
    return gen.sort_by_time(canonicalize(out, kind), time_col)
