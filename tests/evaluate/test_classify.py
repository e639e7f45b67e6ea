"""Traffic-type prediction on labelled real flow records (nDPI flows with application labels)."""
from __future__ import annotations

import functools

import pytest

from tracesynth.evaluate.baseline import column_shuffle
from tracesynth.evaluate.downstream.classify import CLASSIFIERS, traffic_type
from tracesynth.io import read_trace


@functools.lru_cache(maxsize=1)
def _read(path: str):
    return read_trace(path).table.iloc[::3].reset_index(drop=True)  # a third of the flows keeps it quick


@pytest.fixture
def ndpi(shared_data):
    return _read(str(shared_data("flows/ndpi-flows.csv")))


def test_real_as_synthetic_trains_every_classifier(ndpi):
    res = traffic_type(ndpi, ndpi, max_train=1500)
    assert set(res["accuracy"]["real"]) == set(CLASSIFIERS)
    assert res["classes"] == 11  # ten most frequent labels + "other"
    # a real copy as "synthetic" is trained on more real rows (it includes the test split): at least as good
    assert min(res["accuracy"]["real"].values()) > 0.5


def test_shuffled_labels_lose_accuracy(ndpi):
    res = traffic_type(ndpi, column_shuffle(ndpi, seed=2), max_train=1500)
    real, shuf = res["accuracy"]["real"], res["accuracy"]["synthetic"]
    assert sum(shuf.values()) < sum(real.values()) - 1.0  # five classifiers, each clearly worse on average


def test_unlabelled_records_skip_the_task(ugr_table):
    assert traffic_type(ugr_table.drop(columns=["label"]), ugr_table) is None
