"""Synchronous successive halving's bookkeeping against decisions worked out by hand."""

from __future__ import annotations

import math

import pytest

from drml_ray.errors import UserError
from drml_ray.tune.halving import SuccessiveHalving, halving_rungs

# Dev F1 after epoch 2 of the 12 trials of configs/tune/crossner_politics_grid12.yaml (BENCHMARKS.md)
EPOCH2 = {"5e-5 full": 0.0, "5e-5 top": 0.1, "5e-5 lora": 0.6, "1e-4 full": 0.0, "1e-4 top": 0.0,
          "1e-4 lora": 0.8, "2e-4 full": 7.8, "2e-4 top": 5.3, "2e-4 lora": 1.3, "4e-4 full": 11.3,
          "4e-4 top": 11.9, "4e-4 lora": 0.0}  # fmt: skip
EPOCH8 = {"2e-4 full": 59.2, "4e-4 full": 60.1, "4e-4 top": 48.3}


def test_rungs_follow_grace_and_reduction_factor():
    assert halving_rungs(2, 4, 12) == [2, 8]
    assert halving_rungs(1, 2, 8) == [1, 2, 4]
    with pytest.raises(UserError, match="reduction_factor > 1"):
        halving_rungs(1, 1, 8)


def test_the_grid_of_twelve_is_halved_as_by_hand():
    """12 trials, rungs at epochs 2 and 8, rf 4: 3 continue past epoch 2 (the best three there),
    1 past epoch 8 (the best of those three there): 12x2 + 3x6 + 1x4 = 46 trial-epochs."""
    h = SuccessiveHalving(12, [2, 8], 4)
    names = list(EPOCH2)
    for name in names[:-1]:  # every trial but the last waits at the rung
        assert h.on_result(name, 1, 0.5) == "continue"
        assert h.on_result(name, 2, EPOCH2[name]) == "pause"
    assert h.waiting() == set(names[:-1])
    assert h.on_result(names[-1], 2, EPOCH2[names[-1]]) == "stop"  # the last arrival decides the rung
    assert h.promoted[0] == ["4e-4 top", "4e-4 full", "2e-4 full"]
    assert h.waiting() == set()
    assert [h.promoted_waiting(n) for n in ("4e-4 full", "1e-4 full")] == [True, False]
    assert h.on_result("4e-4 full", 3, 39.8) == "continue"
    assert h.on_result("2e-4 full", 8, EPOCH8["2e-4 full"]) == "pause"
    assert h.on_result("4e-4 top", 8, EPOCH8["4e-4 top"]) == "pause"
    assert h.on_result("4e-4 full", 8, EPOCH8["4e-4 full"]) == "continue"
    assert h.promoted[1] == ["4e-4 full"]
    assert h.on_result("4e-4 full", 12, 62.1) == "continue"  # no rung at max_t: the trial ends by itself
    assert h.trial_epochs(12) == 46


def test_a_trial_that_ends_before_a_rung_is_not_waited_for():
    h = SuccessiveHalving(3, [1], 3)
    assert h.on_result("a", 1, 0.2) == "pause"
    h.on_end("b")  # early-stopped or errored before epoch 1
    assert h.promoted[0] is None
    assert h.on_result("c", 1, 0.5) == "continue"  # due 3, scored 2 + ended 1: decided, keep max(1, 3 // 3)
    assert h.promoted[0] == ["c"]
    h.on_end("a")  # stopped after the decision: nothing changes
    assert h.ended[0] == {"b"}


def test_a_resumed_trial_waits_again_and_nan_ranks_last():
    h = SuccessiveHalving(2, [1], 2, mode="min")
    assert h.on_result("a", 1, math.nan) == "pause"
    assert h.on_result("a", 2, 0.1) == "pause"  # rerun after --resume past the rung: still undecided
    assert h.on_result("b", 1, 3.0) == "continue"  # mode min: 3.0 beats NaN
    assert h.on_result("a", 2, 0.1) == "stop"
