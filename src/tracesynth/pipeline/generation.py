"""Generation helpers on plain arrays: merging attributes by flow tags, output sizing, trimming.

NETSHARE.md section 6: every chunk's model samples attributes; a row is kept by the chunk where the
flow starts (`starts_here` = 1 and its own `in_chunk_i` bit) and copied forward, with `starts_here` = 0,
into every later chunk whose bit is set; each chunk then generates time series for its merged list.
Nothing here touches models or files, so the logic is tested on hand-made arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import ICMP_PROTOS

#: the shortest IPv4 packet (IP header + transport header) a first fragment of TCP / UDP / ICMP can be
MIN_PKT_LEN = {6: 40, 17: 28, 1: 28}


@dataclass(frozen=True)
class AttributeLayout:
    """Where the chunking fields sit in an encoded attribute row.

    `flow_start`: column of the min-max scaled flow start; `starts_here`: the (value 0, value 1)
    columns of its 2-way one-hot; `in_chunk`: the same pair for each chunk bit.
    """

    flow_start: int
    starts_here: tuple[int, int]
    in_chunk: tuple[tuple[int, int], ...]

    @property
    def n_chunks(self) -> int:
        return len(self.in_chunk)


def tag_set(attrs: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    """Discretise a 2-way one-hot tag: True where the 'set' column wins (ties count as unset)."""
    return attrs[:, pair[1]] > attrs[:, pair[0]]


def _set_tag(attrs: np.ndarray, pair: tuple[int, int], value: bool) -> None:
    attrs[:, pair[0]] = 0.0 if value else 1.0
    attrs[:, pair[1]] = 1.0 if value else 0.0


def merge_by_tags(per_chunk: list[np.ndarray], layout: AttributeLayout,
                  rng: np.random.Generator) -> list[np.ndarray]:
    """Return each chunk's merged attribute list: its own starting flows plus earlier chunks' flows
    that continue into it.

    A copied row gets `starts_here` = 0 and a flow start drawn from the rows the destination chunk's
    own model generated as continuations (`starts_here` = 0 there), since a continuing flow's first
    record in a chunk sits where that chunk's model says continuations sit; with none, the window start.
    Rows are picked by index and copied once, straight into their merged list (rows are ~1 KB each).
    """
    per_chunk = [np.asarray(attrs, dtype=np.float32) for attrs in per_chunk]
    own, pools, in_chunk = [], [], []
    for i, attrs in enumerate(per_chunk):
        starts = tag_set(attrs, layout.starts_here)
        bits = np.stack([tag_set(attrs, pair) for pair in layout.in_chunk], axis=1) if layout.n_chunks \
            else np.zeros((len(attrs), 0), bool)                        # [n_i, chunks] in_chunk_j set
        mine = bits[:, i] if i < layout.n_chunks else np.ones(len(attrs), bool)
        own.append(np.flatnonzero(starts & mine))
        in_chunk.append(bits)
        pools.append(attrs[~starts, layout.flow_start])
    merged = []
    for j, attrs in enumerate(per_chunk):
        sources = [(i, own[i][in_chunk[i][own[i], j]]) for i in range(j) if j < layout.n_chunks]
        sources = [(j, own[j])] + [(i, rows) for i, rows in sources if len(rows)]
        out = np.empty((sum(len(rows) for _, rows in sources), attrs.shape[1]), np.float32)
        at = 0
        for i, rows in sources:
            np.take(per_chunk[i], rows, axis=0, out=out[at:at + len(rows)], mode="clip")  # clip: unbuffered
            if i != j:
                copied = out[at:at + len(rows)]
                _set_tag(copied, layout.starts_here, False)
                copied[:, layout.flow_start] = rng.choice(pools[j], size=len(rows)) if len(pools[j]) else 0.0
            at += len(rows)
        merged.append(out)
    return merged


def thin_rows(rows: np.ndarray, keep: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform random subset of `keep` rows, in their original order (all rows when fewer).

    Merged flows are exchangeable and `select_records` later drops whole random flows anyway, so
    dropping surplus rows before their time series are generated changes no distribution; it only
    saves generating and decoding series that would be thrown away."""
    if keep >= len(rows):
        return rows
    return rows[np.sort(rng.choice(len(rows), size=max(0, keep), replace=False))]


def split_target(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` records over chunks in proportion to `weights` (largest remainder; sums exactly)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    share = total * weights / weights.sum()
    base = np.floor(share).astype(np.int64)
    rest = total - int(base.sum())
    if rest > 0:
        base[np.argsort(-(share - base), kind="stable")[:rest]] += 1
    return base


def target_records(real_records: int, count: int | None, scale: float | None) -> int:
    """The requested output size: `count` records, or `scale` x the training size (default 1.0).

    Bounded up front (`limits.check_generate_size`): a size past the documented cap or the memory the
    machine has is refused with an estimate, instead of generating until the OS kills the process."""
    from ..limits import check_generate_size

    if count is not None:
        return check_generate_size(int(count), "--count")
    return check_generate_size(real_records * (1.0 if scale is None else float(scale)), "--scale")


def absolute_times(flow_start: np.ndarray, flow_id: np.ndarray, iat: np.ndarray) -> np.ndarray:
    """Per-record time = its flow's start + the cumulative inter-arrival within the flow sample.

    `flow_id` must be grouped (records of a flow contiguous, in step order), as in FlowTable.series.
    """
    iat = np.asarray(iat, dtype=np.float64)
    flow_id = np.asarray(flow_id)
    csum = np.cumsum(iat)
    if len(flow_id) == 0:
        return csum
    first = np.r_[True, flow_id[1:] != flow_id[:-1]]
    group = np.cumsum(first) - 1
    before = (csum - iat)[first]           # cumulative sum just before each flow's first record
    return np.asarray(flow_start, dtype=np.float64)[flow_id] + csum - before[group]


def select_records(flow_id: np.ndarray, keep: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Choose which records to output so that exactly `min(target, kept)` remain.

    Whole flows are taken in random order until the target is reached; the last flow taken is cut
    short (its latest records dropped). Flows stay intact except that one, and the time profile of
    the chunk is kept because flows are dropped uniformly at random, never by time.
    `keep` marks records inside the chunk window; returns a boolean mask over records.
    """
    flow_id = np.asarray(flow_id)
    out = np.zeros(len(flow_id), dtype=bool)
    ids, counts = np.unique(flow_id[keep], return_counts=True)
    if len(ids) == 0 or target <= 0:
        return out
    order = rng.permutation(len(ids))
    csum = np.cumsum(counts[order])
    last = int(np.searchsorted(csum, target))          # index of the flow that crosses the target
    last = min(last, len(ids) - 1)
    chosen = ids[order[: last + 1]]
    out = keep & np.isin(flow_id, chosen)
    surplus = int(csum[last]) - target
    if surplus > 0:
        tail_flow = ids[order[last]]
        idx = np.flatnonzero(out & (flow_id == tail_flow))
        out[idx[len(idx) - surplus:]] = False
    return out


def flows_needed(target: int, records_per_flow: float, have: int, margin: float = 1.15) -> int:
    """How many more flow samples to generate for `target` records when `have` are already there."""
    short = target - have
    if short <= 0:
        return 0
    return max(1, int(np.ceil(margin * short / max(records_per_flow, 1e-9))))


def window_mask(times: np.ndarray, window: tuple[float, float], last: bool) -> np.ndarray:
    """Records inside a chunk window [start, end) — the last window is closed on the right."""
    start, end = window
    return (times >= start) & ((times <= end) if last else (times < end))


def sort_by_time(table: pd.DataFrame, time_column: str) -> pd.DataFrame:
    """Stable sort by time so equal timestamps keep their generation order (reproducible)."""
    return table.sort_values(time_column, kind="stable").reset_index(drop=True)


def header_consistency(packets: dict[str, np.ndarray]) -> None:
    """Make generated headers self-consistent as a packet on the wire would be (in place, on the record
    columns of either model): only TCP and UDP carry ports, ICMP its type and code in their place, only TCP
    carries flags, a don't-fragment packet has offset 0, a non-first fragment carries no ports or flags
    (the schema's rule: 0), and a first fragment is at least as long as its headers (a 32-byte TCP packet
    is malformed to every analyser). The models learn fields separately, so a generated packet may break
    a rule that no real packet can."""
    proto = packets["proto"]
    no_ports = ~np.isin(proto, (6, 17, *ICMP_PROTOS))
    first = np.ones(len(proto), bool)
    if "off" in packets:
        if "flag" in packets:               # a don't-fragment packet is never a fragment: offset 0
            packets["off"][(packets["flag"] & 2) > 0] = 0
        first = packets["off"] == 0
        no_ports |= ~first                  # a non-first fragment carries no transport header
    for col in ("srcport", "dstport"):
        packets[col][no_ports] = 0
    if "tcp_flags" in packets:
        packets["tcp_flags"][no_ports | (proto != 6)] = 0
    if "pkt_len" in packets:
        for number, shortest in MIN_PKT_LEN.items():
            short = first & (proto == number) & (packets["pkt_len"] < shortest)
            packets["pkt_len"][short] = shortest
