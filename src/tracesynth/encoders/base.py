"""The encoder contract shared by every field encoder (scikit-learn style).

`__init__` stores parameters only; `fit` learns state into attributes ending in `_` and returns self;
`transform` maps values to float32 columns laid out as `spans`; `inverse_transform` maps them back.
The model builds one output head per `Span` from this data, never from class names.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import NotFittedError

Activation = Literal["softmax", "sigmoid", "tanh"]


@dataclass(frozen=True)
class Span:
    """One output head: `dim` columns passed through `activation` (softmax over the span)."""

    dim: int
    activation: Activation

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"Span.dim must be >= 1, got {self.dim}")
        if self.activation not in ("softmax", "sigmoid", "tanh"):
            raise ValueError(f"unknown activation {self.activation!r}")


def total_dim(spans: list[Span]) -> int:
    return int(sum(s.dim for s in spans))


class Encoder(ABC):
    """Base class: subclasses implement `fit`, `transform`, `inverse_transform` and `spans`."""

    def _check_fitted(self) -> None:
        fitted = [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]
        if not fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first")

    @abstractmethod
    def fit(self, values: np.ndarray) -> "Encoder":
        """Learn the encoder's state from `values`; return self."""

    @abstractmethod
    def transform(self, values: np.ndarray) -> np.ndarray:
        """Values -> float32 columns laid out as `spans`."""

    @abstractmethod
    def inverse_transform(self, encoded: np.ndarray) -> np.ndarray:
        """Encoded (possibly soft, generated) columns -> values."""

    def fit_transform(self, values: np.ndarray) -> np.ndarray:
        return self.fit(values).transform(values)

    @property
    @abstractmethod
    def spans(self) -> list[Span]:
        """The output layout, one Span per head."""
