"""LocalRunner: in-process and spawned workers give the same results, in job order."""
from __future__ import annotations

import pytest

from tracesynth.errors import UserError
from tracesynth.pipeline.runners import LocalRunner, make_runner, RayRunner

from ._jobs import seeded_sum


def test_local_runner_workers_match_in_process():
    jobs = [(seed, 1000) for seed in range(4)]
    inline = LocalRunner(1).map(seeded_sum, jobs)
    pooled = LocalRunner(2).map(seeded_sum, jobs)
    assert inline == pooled
    assert len(set(inline)) == 4


def test_runner_choice_and_bad_workers():
    assert isinstance(make_runner(1, "local"), RayRunner)
    assert isinstance(make_runner(3, None), LocalRunner)
    with pytest.raises(UserError, match="--workers"):
        LocalRunner(0)
