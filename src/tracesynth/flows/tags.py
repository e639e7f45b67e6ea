"""NetShare flow tags: tie together the samples of one flow that spans several chunks.

For every 5-tuple, the set of chunks it has records in. A chunk's flow sample gets `starts_here`
(this chunk is the first chunk of its 5-tuple) and `in_chunk_i` for every chunk i (the 5-tuple has records
in chunk i). NetShare's "v2" semantics: the `in_chunk_i` bits are set on every sample, continuations too.
Tags are uint8 0/1 columns; the encoder turns each into a 2-way one-hot.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import flow_key_words


def tag_columns(n_chunks: int) -> list[str]:
    """Names of the tag columns, in encoding order: starts_here, in_chunk_0 .. in_chunk_{N-1}."""
    return ["starts_here"] + [f"in_chunk_{i}" for i in range(n_chunks)]


@dataclass
class ChunkMembership:
    """Which chunks each 5-tuple appears in. `index` maps a packed 5-tuple to a row of `member`."""

    index: pd.MultiIndex
    member: np.ndarray  # bool [n_keys, n_chunks]
    first_chunk: np.ndarray  # int64 [n_keys]

    @classmethod
    def from_records(cls, table: pd.DataFrame, chunk_of_record: np.ndarray, n_chunks: int) -> "ChunkMembership":
        """Membership from every record's 5-tuple and chunk number (vectorised)."""
        hi, lo = flow_key_words(table)
        codes, index = _factorize_keys(hi, lo)
        member = np.zeros((len(index), n_chunks), dtype=bool)
        member[codes, np.asarray(chunk_of_record, dtype=np.int64)] = True
        first = np.argmax(member, axis=1).astype(np.int64) if n_chunks else np.zeros(len(index), np.int64)
        return cls(index, member, first)

    @property
    def n_chunks(self) -> int:
        return self.member.shape[1]

    def tags_for(self, attributes: pd.DataFrame, chunk: int) -> pd.DataFrame:
        """The tag columns for the flow samples `attributes` of chunk `chunk` (uint8 0/1)."""
        hi, lo = flow_key_words(attributes)
        rows = self.index.get_indexer(pd.MultiIndex.from_arrays([hi, lo]))
        if np.any(rows < 0):
            raise ValueError(f"chunk {chunk}: {int(np.sum(rows < 0))} flow(s) missing from the chunk membership")
        out = {"starts_here": (self.first_chunk[rows] == chunk).astype(np.uint8)}
        for i in range(self.n_chunks):
            out[f"in_chunk_{i}"] = self.member[rows, i].astype(np.uint8)
        return pd.DataFrame(out, index=attributes.index)

    def spanning(self) -> int:
        """Number of 5-tuples with records in more than one chunk."""
        return int(np.sum(self.member.sum(axis=1) > 1))


def _factorize_keys(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, pd.MultiIndex]:
    """Number the distinct packed 5-tuples (a sort, much faster than factorising tuples)."""
    order = np.lexsort((lo, hi))
    h, l = hi[order], lo[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (h[1:] != h[:-1]) | (l[1:] != l[:-1])
    codes = np.empty(len(order), dtype=np.int64)
    codes[order] = np.cumsum(new) - 1
    return codes, pd.MultiIndex.from_arrays([h[new], l[new]], names=["hi", "lo"])
