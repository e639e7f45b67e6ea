"""Privacy signals: copying the training data is flagged; unrelated data is not."""
from __future__ import annotations

from tracesynth.evaluate.baseline import column_shuffle
from tracesynth.evaluate.privacy import privacy, time_split


def test_a_copy_of_training_is_flagged(caida_table):
    train, holdout = time_split(caida_table, "packets")
    assert len(train) == 8000 and train.time.max() <= holdout.time.min()
    p = privacy(caida_table, train, "packets")
    assert p["exact_match_share"]["synthetic"] == 1.0
    assert p["five_tuple_overlap"]["synthetic"] == 1.0
    assert p["nn_distance"]["ratio"] == 0.0 and p["nn_distance"]["synthetic_zero_share"] == 1.0
    assert p["exact_match_share"]["holdout"] < 0.05  # real traffic rarely repeats a whole header


def test_unrelated_records_look_private(caida_table):
    p = privacy(caida_table, column_shuffle(caida_table, seed=1), "packets")
    assert p["exact_match_share"]["synthetic"] < 0.01
    assert p["nn_distance"]["ratio"] > 0.8


def test_given_training_table_uses_the_rest_of_real_as_reference(ugr_table):
    train, _ = time_split(ugr_table, "flows", 0.5)
    p = privacy(ugr_table, train, "flows", train=train)
    assert p["split"].startswith("given training table")
    assert p["exact_match_share"]["synthetic"] == 1.0
