"""Heavy-hitter estimation with four streaming sketches, in vectorised numpy (NetShare's second task).

Count-Min, Count Sketch, UnivMon and NitroSketch each get the same memory budget (4-byte counters).
Each sketch is fed the whole trace at once: one `np.bincount` per hash row, never a loop per packet.
The task: estimate the packet counts of the top-k keys (src IP, dst IP, 5-tuple) and measure the mean
relative error against exact counts, on real and on synthetic; a synthetic trace is useful for sketch
studies when it ranks the sketches (and key types) as the real trace does.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...schema import FLOW_KEY, table_kind
from ..metrics import spearman

COUNTER_BYTES = 4
SKETCHES = ("count_min", "count_sketch", "univmon", "nitrosketch")
KEY_TYPES = ("srcip", "dstip", "five_tuple")


def mix64(keys: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix64 finaliser of `keys` xor a seed-derived constant: a fast, well-spread 64-bit hash."""
    with np.errstate(over="ignore"):
        z = np.asarray(keys, dtype=np.uint64) ^ np.uint64((0x9E3779B97F4A7C15 * (seed + 1)) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class CountMin:
    """`depth` rows of `width` counters; a key's estimate is its smallest counter (never underestimates)."""

    def __init__(self, memory_bytes: int, depth: int = 4, seed: int = 0):
        self.depth = depth
        self.width = max(1, memory_bytes // COUNTER_BYTES // depth)
        self.seed = seed

    def _rows(self, keys: np.ndarray) -> list[np.ndarray]:
        return [(mix64(keys, self.seed * 131 + d) % np.uint64(self.width)).astype(np.int64) for d in range(self.depth)]

    def fit(self, keys: np.ndarray, weights: np.ndarray) -> "CountMin":
        self.table_ = np.stack([np.bincount(r, weights=weights, minlength=self.width) for r in self._rows(keys)])
        return self

    def query(self, keys: np.ndarray) -> np.ndarray:
        return np.min([self.table_[d, r] for d, r in enumerate(self._rows(keys))], axis=0)


class CountSketch(CountMin):
    """Signed counters; a key's estimate is the median over rows of sign * counter (unbiased)."""

    def _signs(self, keys: np.ndarray) -> list[np.ndarray]:
        return [1.0 - 2.0 * (mix64(keys, self.seed * 131 + 1000 + d) >> np.uint64(63)).astype(np.float64)
                for d in range(self.depth)]

    def _row_weights(self, weights: np.ndarray, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(n), weights

    def fit(self, keys: np.ndarray, weights: np.ndarray) -> "CountSketch":
        rows, signs, table = self._rows(keys), self._signs(keys), []
        for d in range(self.depth):
            idx, w = self._row_weights(weights, d, len(keys))
            table.append(np.bincount(rows[d][idx], weights=signs[d][idx] * w, minlength=self.width))
        self.table_ = np.stack(table)
        return self

    def query(self, keys: np.ndarray) -> np.ndarray:
        rows, signs = self._rows(keys), self._signs(keys)
        return np.median([signs[d] * self.table_[d, rows[d]] for d in range(self.depth)], axis=0)


class NitroSketch(CountSketch):
    """Count Sketch whose rows each take an update with probability `p`, scaled by 1/p (NitroSketch's
    sampled updates, drawn here as independent Bernoulli trials per row: same distribution, vectorised)."""

    def __init__(self, memory_bytes: int, depth: int = 4, seed: int = 0, p: float = 0.125):
        super().__init__(memory_bytes, depth, seed)
        self.p = p
        self.rng = np.random.default_rng(seed)

    def _row_weights(self, weights: np.ndarray, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.flatnonzero(self.rng.random(n) < self.p)
        return idx, weights[idx] / self.p


class UnivMon:
    """`levels` Count Sketches; level j sees the keys whose sampling hash has j trailing one-bits (rate 2^-j).

    A key's frequency is read from the deepest level it is sampled into: the key's full count is there and
    fewer other keys collide with it.
    """

    def __init__(self, memory_bytes: int, depth: int = 4, seed: int = 0, levels: int = 4):
        self.levels = levels
        self.seed = seed
        self.sketches = [CountSketch(memory_bytes // levels, depth, seed * 17 + j) for j in range(levels)]

    def _level(self, keys: np.ndarray) -> np.ndarray:
        h = mix64(keys, self.seed * 131 + 7777)
        level = np.zeros(len(keys), dtype=np.int64)
        for j in range(1, self.levels):
            level += ((h >> np.uint64(j - 1)) & np.uint64(1)).astype(bool) & (level == j - 1)
        return level

    def fit(self, keys: np.ndarray, weights: np.ndarray) -> "UnivMon":
        level = self._level(keys)
        for j, sketch in enumerate(self.sketches):
            sel = level >= j
            sketch.fit(keys[sel], weights[sel])
        return self

    def query(self, keys: np.ndarray) -> np.ndarray:
        level, out = self._level(keys), np.zeros(len(keys))
        for j, sketch in enumerate(self.sketches):
            sel = level == j
            if sel.any():
                out[sel] = sketch.query(keys[sel])
        return out


def make_sketch(name: str, memory_bytes: int, seed: int = 0):
    """A fresh sketch by name (one of SKETCHES) with `memory_bytes` of 4-byte counters."""
    return {"count_min": CountMin, "count_sketch": CountSketch, "univmon": UnivMon,
            "nitrosketch": NitroSketch}[name](memory_bytes, seed=seed)


def stream_keys(table: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """uint64 keys per key type and per-record packet weights (1 per packet; `pkt` per flow record)."""
    five = pd.util.hash_pandas_object(table[list(FLOW_KEY)], index=False).to_numpy()
    keys = {"srcip": table["srcip"].to_numpy(np.uint64), "dstip": table["dstip"].to_numpy(np.uint64),
            "five_tuple": five}
    weights = np.ones(len(table)) if table_kind(table) == "packets" else table["pkt"].to_numpy(np.float64)
    return keys, weights


def heavy_hitter_errors(table: pd.DataFrame, *, memory_bytes: int = 64 * 1024, top_k: int = 100,
                        seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean relative error of each sketch on the top-k keys of each key type: {key_type: {sketch: err}}."""
    keys, weights = stream_keys(table)
    out: dict[str, dict[str, float]] = {}
    for key_type, k in keys.items():
        uniq, inv = np.unique(k, return_inverse=True)
        exact = np.bincount(inv.ravel(), weights=weights, minlength=len(uniq))
        top = np.argsort(exact, kind="stable")[::-1][:top_k]
        out[key_type] = {}
        for name in SKETCHES:
            est = make_sketch(name, memory_bytes, seed).fit(k, weights).query(uniq[top])
            out[key_type][name] = float(np.mean(np.abs(est - exact[top]) / exact[top])) if len(top) else float("nan")
    return out


def heavy_hitters(real: pd.DataFrame, synth: pd.DataFrame, *, memory_bytes: int = 64 * 1024, top_k: int = 100,
                  seed: int = 0) -> dict:
    """Sketch errors on both sides and how well synthetic preserves their ranking (Spearman)."""
    er = heavy_hitter_errors(real, memory_bytes=memory_bytes, top_k=top_k, seed=seed)
    es = heavy_hitter_errors(synth, memory_bytes=memory_bytes, top_k=top_k, seed=seed)
    flat_r = [er[k][s] for k in KEY_TYPES for s in SKETCHES]
    flat_s = [es[k][s] for k in KEY_TYPES for s in SKETCHES]
    return {
        "memory_bytes": memory_bytes, "top_k": top_k,
        "relative_error": {"real": er, "synthetic": es},
        "error_gap": {k: {s: abs(es[k][s] - er[k][s]) / er[k][s] if er[k][s] > 0 else float("nan")
                          for s in SKETCHES} for k in KEY_TYPES},
        "spearman_by_key": {k: spearman([er[k][s] for s in SKETCHES], [es[k][s] for s in SKETCHES])
                            for k in KEY_TYPES},
        "spearman": spearman(flat_r, flat_s),
    }
