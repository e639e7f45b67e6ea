"""Privacy signals: copying the training data is flagged; unrelated data is not."""
from __future__ import annotations

import numpy as np

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


def test_member_sets_are_as_large_as_the_holdout_and_disjoint():
    from tracesynth.evaluate.privacy import member_sets

    train = np.arange(100, dtype=float).reshape(50, 2)
    sets = member_sets(train, np.zeros((10, 2)), seed=1)
    assert len(sets.members) == 10 and len(sets.unseen_train) == 40
    seen = {tuple(r) for r in sets.members}
    assert not seen & {tuple(r) for r in sets.unseen_train}
    assert sets.members.min() >= 0 and sets.members.max() <= 1  # scaled by the training ranges


def test_closer_to_train_and_membership_auc_known_values():
    from tracesynth.evaluate.privacy import MemberSets, closer_to_train, membership_auc

    members, holdout = np.array([[0.0], [1.0]]), np.array([[10.0], [11.0]])
    sets = MemberSets(members, holdout, np.zeros((0, 1)))
    assert closer_to_train(sets, members) == 1.0  # copies of members: always nearer to S
    assert closer_to_train(sets, holdout) == 0.0
    assert closer_to_train(sets, np.array([[5.5]])) == 0.5  # a tie counts half
    assert membership_auc(sets, members) == 1.0  # members sit on the candidate, non-members far away
    assert membership_auc(sets, np.array([[5.5]])) == 0.5  # equidistant: nothing leaks
    assert np.isnan(membership_auc(sets, np.zeros((0, 1))))
