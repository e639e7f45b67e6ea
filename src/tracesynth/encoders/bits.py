"""IP addresses as bits (NetShare idea 2): each bit a 2-way one-hot, most significant bit first.

`n_bits` is a parameter: 32 for IPv4 (values are unsigned integers), 128 for IPv6 (values are a
[n, 16] uint8 matrix of big-endian address bytes, what `ipaddress.packed` gives). Decoding takes the argmax
of every bit's pair, so it accepts generated soft values as well as exact one-hots.
"""
from __future__ import annotations

import numpy as np

from .base import Encoder, Span


class BitsEncoder(Encoder):
    """Unsigned integers (up to 64 bits) or big-endian byte rows (any multiple of 8 bits) <-> bit one-hots."""

    def __init__(self, n_bits: int = 32):
        self.n_bits = n_bits

    def fit(self, values: np.ndarray) -> "BitsEncoder":
        if self.n_bits < 1 or self.n_bits % 8:
            raise ValueError(f"n_bits must be a positive multiple of 8, got {self.n_bits}")
        values = np.asarray(values)
        self.dtype_ = str(values.dtype) if values.ndim == 1 else "bytes"
        return self

    @property
    def spans(self) -> list[Span]:
        return [Span(2, "softmax")] * self.n_bits

    def _to_bytes(self, values: np.ndarray) -> np.ndarray:
        """[n, n_bits/8] uint8, big-endian."""
        n_bytes = self.n_bits // 8
        values = np.asarray(values)
        if values.ndim == 2:
            if values.shape[1] != n_bytes:
                raise ValueError(f"expected {n_bytes} address bytes per row, got {values.shape[1]}")
            return values.astype(np.uint8, copy=False)
        if self.n_bits > 64:
            raise ValueError(f"{self.n_bits}-bit addresses must be given as [n, {n_bytes}] byte rows")
        if values.size and (values.min() < 0 or (self.n_bits < 64 and values.max() >= (1 << self.n_bits))):
            raise ValueError(f"values outside the {self.n_bits}-bit range")
        as_bytes = values.astype(">u8").view(np.uint8).reshape(-1, 8)
        return as_bytes[:, 8 - n_bytes:]

    def transform(self, values: np.ndarray) -> np.ndarray:
        self._check_fitted()
        bits = np.unpackbits(self._to_bytes(values), axis=1).astype(np.float32)  # [n, n_bits]
        out = np.empty((bits.shape[0], self.n_bits, 2), dtype=np.float32)
        out[:, :, 0] = 1.0 - bits
        out[:, :, 1] = bits
        return out.reshape(bits.shape[0], 2 * self.n_bits)

    def inverse_transform(self, encoded: np.ndarray) -> np.ndarray:
        self._check_fitted()
        encoded = np.asarray(encoded)
        bits = (encoded[:, 1::2] > encoded[:, 0::2]).astype(np.uint8)
        packed = np.packbits(bits, axis=1)  # [n, n_bits/8]
        if self.dtype_ == "bytes":
            return packed
        full = np.zeros((packed.shape[0], 8), dtype=np.uint8)
        full[:, 8 - packed.shape[1]:] = packed
        return full.view(">u8").reshape(-1).astype(self.dtype_)

    def state(self) -> dict:
        self._check_fitted()
        return {"n_bits": self.n_bits, "dtype_": self.dtype_}

    @classmethod
    def from_state(cls, state: dict) -> "BitsEncoder":
        enc = cls(state["n_bits"])
        enc.dtype_ = state["dtype_"]
        return enc
