"""Ports and protocols as word2vec embeddings ("IP2Vec", NetShare idea 2), with gensim 4.

One sentence per record, `[port:SRC, port:DST, proto:P]`: typed tokens keep port 6 and protocol 6 apart.
Training is seeded and single-threaded, so the same records give the same vectors. In DP mode the model
is loaded from a file trained on a public trace instead (`PortProtoEmbedding.load`).

Values encode as their L2-normalised vector (tanh head); decoding picks the exact cosine nearest
neighbour among the known values of the same type (ports or protocols), in batched numpy.

Hybrid ports (`top_k` > 0): a few ports carry most traffic (CAIDA: 443 and 80 are 68% of packets), but in
a 10-dim space they sit among rare ports within cosine 0.95, so a generated vector rarely lands nearest to
them. The K most frequent ports therefore get a one-hot softmax span of K+1 slots (the last is "other")
ahead of the vector: a top port decodes by argmax, exactly as often as the softmax says; "other" decodes
by exact cosine nearest neighbour over the non-top ports only.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .._parallel import map_rows, row_threads
from ..errors import NotFittedError, UserError
from .base import Encoder, Span

log = logging.getLogger(__name__)

TOKEN_PREFIX = {"port": "port:", "proto": "proto:"}
#: similarity matrix elements computed per batch when decoding: 1M float32 = 4 MB stays in cache (measured
#: 3x faster than 64 MB blocks on caida's 3.6k ports; much smaller blocks pay per-call overheads)
_BATCH_ELEMENTS = 1 << 20


def sentences(srcport: np.ndarray, dstport: np.ndarray, proto: np.ndarray) -> list[list[str]]:
    """One typed sentence per record. Tokens are built per distinct value, then gathered (vectorised)."""
    def tokens(values: np.ndarray, prefix: str) -> np.ndarray:
        uniq, inverse = np.unique(np.asarray(values, dtype=np.int64), return_inverse=True)
        names = np.array([f"{prefix}{v}" for v in uniq.tolist()], dtype=object)
        return names[inverse]

    cols = [tokens(srcport, "port:"), tokens(dstport, "port:"), tokens(proto, "proto:")]
    return np.stack(cols, axis=1).tolist()


def training_records(srcport: np.ndarray, dstport: np.ndarray, proto: np.ndarray, max_sentences: int | None,
                     seed: int) -> np.ndarray:
    """Indices of the records word2vec trains on: all of them, or (above `max_sentences`) one record of
    every distinct (srcport, dstport, proto) so that every value gets a vector, plus a seeded uniform
    sample of the rest, which keeps the co-occurrence frequencies. Sorted, so time order is kept."""
    n = len(srcport)
    if max_sentences is None or n <= max_sentences:
        return np.arange(n)
    packed = (np.asarray(srcport, np.int64) << 24) | (np.asarray(dstport, np.int64) << 8) | np.asarray(proto, np.int64)
    _, first = np.unique(packed, return_index=True)
    budget = max(max_sentences - len(first), 0)
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(budget, n), replace=False)
    return np.union1d(first, sample)


class PortProtoEmbedding:
    """The shared word2vec model over port and protocol tokens (NetShare: vector 10, window 5, CBOW)."""

    def __init__(self, vector_size: int = 10, window: int = 5, min_count: int = 1, epochs: int = 5,
                 sg: int = 0, seed: int = 0, max_sentences: int | None = None):
        self.vector_size, self.window, self.min_count = vector_size, window, min_count
        self.epochs, self.sg, self.seed, self.max_sentences = epochs, sg, seed, max_sentences

    def fit(self, srcport: np.ndarray, dstport: np.ndarray, proto: np.ndarray) -> "PortProtoEmbedding":
        from gensim.models import Word2Vec

        rows = training_records(srcport, dstport, proto, self.max_sentences, self.seed)
        corpus = sentences(np.asarray(srcport)[rows], np.asarray(dstport)[rows], np.asarray(proto)[rows])
        if not corpus:
            raise UserError("word2vec: no records to train the port/protocol embedding on")
        model = Word2Vec(corpus, vector_size=self.vector_size, window=self.window, min_count=self.min_count,
                         sg=self.sg, epochs=self.epochs, seed=self.seed, workers=1)
        self.wv_ = model.wv
        return self

    @classmethod
    def load(cls, path: str | Path) -> "PortProtoEmbedding":
        """A saved model: a `save` of this class, or any gensim Word2Vec/KeyedVectors with typed tokens."""
        from gensim.models import KeyedVectors, Word2Vec

        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: word2vec model not found; check word2vec.pretrained")
        try:
            obj = KeyedVectors.load(str(path))
        except Exception as exc:  # gensim raises a variety of unpickling errors on foreign files
            raise UserError(f"{path}: not a gensim word2vec model ({type(exc).__name__}: {exc})") from None
        wv = obj.wv if isinstance(obj, Word2Vec) else obj
        emb = cls(vector_size=wv.vector_size)
        emb.wv_ = wv
        if not any(k.startswith(("port:", "proto:")) for k in wv.index_to_key[:1000]):
            raise UserError(f"{path}: the model has no 'port:N' / 'proto:N' tokens; train it with tracesynth")
        return emb

    def save(self, path: str | Path) -> Path:
        """gensim's own format (KeyedVectors.save); write it under a temporary name, then rename."""
        from .._atomic import atomic_path

        if not hasattr(self, "wv_"):
            raise NotFittedError("PortProtoEmbedding is not fitted yet; call fit() first")
        with atomic_path(path) as tmp:
            self.wv_.save(str(tmp))
        return Path(path)

    def vocabulary(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(values sorted ascending int64, their raw vectors float32) for `kind` 'port' or 'proto'."""
        prefix = TOKEN_PREFIX[kind]
        keys = [k for k in self.wv_.index_to_key if k.startswith(prefix)]
        values = np.array([int(k[len(prefix):]) for k in keys], dtype=np.int64)
        vectors = self.wv_[keys] if keys else np.zeros((0, self.wv_.vector_size), np.float32)
        order = np.argsort(values)
        return values[order], np.asarray(vectors, dtype=np.float32)[order]


class Word2VecEncoder(Encoder):
    """One field (a port or the protocol) through a shared `PortProtoEmbedding`.

    `unknown`: what to do with a value the embedding never saw: "error", or "nearest_value" (use the
    numerically closest known value of the same type; for a public model in DP mode).
    """

    def __init__(self, embedding: PortProtoEmbedding, kind: str = "port", unknown: str = "error",
                 name: str = "value", top_k: int = 0, top_choices: list | None = None,
                 report_counts: bool = True):
        self.embedding = embedding
        #: log how many values were mapped (off in DP mode: the count is a private statistic)
        self.report_counts = report_counts
        self.kind = kind
        self.unknown = unknown
        self.name = name
        self.top_k = top_k
        self.top_choices = top_choices

    def fit(self, values: np.ndarray | None = None, weights: np.ndarray | None = None) -> "Word2VecEncoder":
        """Read the known values and their unit vectors from the (fitted) embedding.

        With `top_k`, the top values are `top_choices` when given, else the `top_k` most frequent of
        `values` (each counted `weights` times: records per flow), else, without values (a public model
        in DP mode), the embedding's own most frequent tokens, so no private data is read."""
        if not hasattr(self.embedding, "wv_"):
            raise NotFittedError(f"{self.name}: the word2vec embedding is not fitted yet; fit it first")
        if self.kind not in TOKEN_PREFIX:
            raise ValueError(f"kind must be 'port' or 'proto', got {self.kind!r}")
        values_, vectors = self.embedding.vocabulary(self.kind)
        if not len(values_):
            raise UserError(f"{self.name}: the word2vec model has no {self.kind} tokens")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.values_ = values_
        self.unit_vectors_ = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        self.top_values_ = self._top_values(values, weights) if self.top_k else np.zeros(0, np.int64)
        return self

    def _top_values(self, values: np.ndarray | None, weights: np.ndarray | None) -> np.ndarray:
        """The ports with a one-hot slot, most frequent first (ties: lower port first)."""
        if self.top_choices is not None:
            return np.asarray([int(c) for c in self.top_choices], dtype=np.int64)
        if values is None:
            prefix = TOKEN_PREFIX[self.kind]
            keys = [k for k in self.embedding.wv_.index_to_key if k.startswith(prefix)][:self.top_k]
            return np.array([int(k[len(prefix):]) for k in keys], dtype=np.int64)
        uniq, inverse = np.unique(np.asarray(values, dtype=np.int64), return_inverse=True)
        w = np.ones(len(inverse)) if weights is None else np.asarray(weights, dtype=np.float64)
        counts = np.bincount(inverse.ravel(), weights=w, minlength=len(uniq))
        order = np.lexsort((uniq, -counts))[:self.top_k]
        return uniq[order]

    def restore_top(self, top_values) -> "Word2VecEncoder":
        """Set the saved top values after `fit()` (a loaded run must decode with the fitted slots)."""
        self.top_values_ = np.asarray(top_values, dtype=np.int64)
        return self

    @property
    def spans(self) -> list[Span]:
        vector = Span(self.embedding.vector_size, "tanh")
        if not self.top_k:
            return [vector]
        self._check_fitted()
        return [Span(len(self.top_values_) + 1, "softmax"), vector]

    def _top_slots(self, values: np.ndarray) -> np.ndarray:
        """Slot of each value among the top values; len(top_values_) ("other") for the rest."""
        slots = pd.Index(self.top_values_).get_indexer(np.asarray(values, dtype=np.int64))
        return np.where(slots < 0, len(self.top_values_), slots)

    def _codes(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.int64)
        idx = np.clip(np.searchsorted(self.values_, v), 0, len(self.values_) - 1)
        missing = self.values_[idx] != v
        if missing.any():
            if self.unknown != "nearest_value":
                bad = np.unique(v[missing])[:5].tolist()
                raise UserError(f"{self.name}: {self.kind} value(s) {bad} are not in the word2vec vocabulary; "
                                "train the embedding on this trace or use a model that covers them")
            left = np.clip(idx - 1, 0, len(self.values_) - 1)
            closer_left = np.abs(self.values_[left] - v) < np.abs(self.values_[idx] - v)
            idx = np.where(missing & closer_left, left, idx)
            if self.report_counts:
                log.warning("%s: %d value(s) not in the word2vec vocabulary mapped to the nearest known value",
                            self.name, int(missing.sum()))
        return idx

    def transform(self, values: np.ndarray) -> np.ndarray:
        self._check_fitted()
        vectors = self.unit_vectors_[self._codes(values)]
        if not self.top_k:
            return vectors
        onehot = np.zeros((len(vectors), len(self.top_values_) + 1), dtype=np.float32)
        onehot[np.arange(len(vectors)), self._top_slots(values)] = 1.0
        return np.concatenate([onehot, vectors], axis=1)

    def inverse_transform(self, encoded: np.ndarray) -> np.ndarray:
        """Exact cosine nearest neighbour among the known values, in row batches; with `top_k`, argmax of
        the one-hot span first, and the nearest neighbour among the non-top values for "other"."""
        self._check_fitted()
        encoded = np.asarray(encoded, dtype=np.float32)
        if not self.top_k:
            return self.values_[_nearest(encoded, self.unit_vectors_)]
        k = len(self.top_values_)
        slots = np.argmax(encoded[:, :k + 1], axis=1)
        out = self.top_values_[np.minimum(slots, max(k - 1, 0))] if k else np.zeros(len(slots), np.int64)
        other = slots == k
        if other.any():
            pool = np.flatnonzero(~np.isin(self.values_, self.top_values_))
            if not len(pool):  # every known value has a slot: fall back to all of them
                pool = np.arange(len(self.values_))
            out[other] = self.values_[pool[_nearest(encoded[other, k + 1:], self.unit_vectors_[pool])]]
        return out


def _nearest(queries: np.ndarray, unit_vectors: np.ndarray) -> np.ndarray:
    """Row index of the exact cosine nearest neighbour of each query: in row blocks whose similarity
    matrix stays in cache, the blocks split over `row_threads()` threads (numpy releases the GIL)."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    step = max(1, _BATCH_ELEMENTS // max(1, len(unit_vectors)))

    def blocks(part: np.ndarray) -> np.ndarray:
        out = np.empty(len(part), dtype=np.int64)
        for start in range(0, len(part), step):
            out[start:start + step] = np.argmax(part[start:start + step] @ unit_vectors.T, axis=1)
        return out

    return map_rows(blocks, q, np.empty(len(q), dtype=np.int64), row_threads())
