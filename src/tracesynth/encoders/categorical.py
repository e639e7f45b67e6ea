"""Categorical fields: one-hot over the values seen in `fit` (or the configured choices); decode by argmax.

Choices keep the field's own type (numbers stay numbers, labels stay strings), so decoding gives back
exactly the values that went in. A value outside the choices is a user error naming the field.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError
from .base import Encoder, Span


class CategoricalEncoder(Encoder):
    def __init__(self, choices: list | None = None, name: str = "value"):
        self.choices = choices
        self.name = name

    def fit(self, values: np.ndarray) -> "CategoricalEncoder":
        values = np.asarray(values)
        self.dtype_ = str(values.dtype)
        if self.choices is not None:
            choices = pd.Index(self.choices)
            if values.dtype.kind in "iuf":
                choices = pd.Index(pd.to_numeric(pd.Series(list(self.choices))).to_numpy().astype(values.dtype))
            elif values.dtype.kind in "OSU":
                choices = pd.Index([str(c) for c in self.choices], dtype=object)
        else:
            choices = pd.Index(pd.unique(values)).sort_values()
        if len(choices) == 0:
            raise UserError(f"{self.name}: no values to learn categories from; give fields.choices")
        self.choices_ = choices.tolist()
        self._index = pd.Index(self.choices_)
        return self

    @property
    def spans(self) -> list[Span]:
        self._check_fitted()
        return [Span(len(self.choices_), "softmax")]

    def transform(self, values: np.ndarray) -> np.ndarray:
        self._check_fitted()
        values = np.asarray(values)
        if values.dtype.kind in "OSU":
            values = values.astype(object)
        codes = self._index.get_indexer(values)
        if np.any(codes < 0):
            bad = [v.item() if hasattr(v, "item") else v for v in pd.unique(values[codes < 0])[:5]]
            raise UserError(f"{self.name}: value(s) {bad} not among the choices {self.choices_[:20]}; "
                            f"add them to fields.choices or leave choices out to learn them")
        out = np.zeros((len(codes), len(self.choices_)), dtype=np.float32)
        out[np.arange(len(codes)), codes] = 1.0
        return out

    def inverse_transform(self, encoded: np.ndarray) -> np.ndarray:
        self._check_fitted()
        codes = np.argmax(np.asarray(encoded), axis=1)
        dtype = np.dtype(self.dtype_)
        choices = np.asarray(self.choices_, dtype=dtype if dtype.kind != "U" else object)
        return choices[codes]

    def state(self) -> dict:
        self._check_fitted()
        return {"choices": self.choices, "name": self.name, "dtype_": self.dtype_,
                "choices_": [c.item() if hasattr(c, "item") else c for c in self.choices_]}

    @classmethod
    def from_state(cls, state: dict) -> "CategoricalEncoder":
        enc = cls(state["choices"], state["name"])
        enc.dtype_ = state["dtype_"]
        enc.choices_ = list(state["choices_"])
        enc._index = pd.Index(enc.choices_)
        return enc
