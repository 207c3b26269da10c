"""Transfer metrics on hand-made curves."""

from __future__ import annotations

import pytest

from drml_ray.rl.transfer_metrics import area, transfer_metrics


def test_metrics_by_hand():
    transfer = [4.0, 6.0, 8.0, 9.0, 9.0]
    scratch = [0.0, 2.0, 4.0, 6.0, 8.0]
    m = transfer_metrics(transfer, scratch, threshold=8.0, tail=2)
    assert m["jumpstart"] == 4.0
    assert m["asymptotic"] == {"transfer": 9.0, "scratch": 7.0, "gain": 2.0}
    assert m["time_to_threshold"] == {"threshold": 8.0, "transfer": 2, "scratch": 4, "saved": 2}
    # floor = 0: trapezoids 5 + 7 + 8.5 + 9 = 29.5 against 1 + 3 + 5 + 7 = 16
    assert m["total_reward_ratio"] == pytest.approx((29.5 - 16) / 16)


def test_negative_returns_use_the_lowest_point_as_floor():
    transfer, scratch = [-2.0, -1.0], [-4.0, -3.0]
    assert area(transfer, -4.0) == 2.5 and area(scratch, -4.0) == 0.5
    m = transfer_metrics(transfer, scratch, threshold=-1.0)
    assert m["total_reward_ratio"] == pytest.approx((2.5 - 0.5) / 0.5)
    assert m["time_to_threshold"]["scratch"] is None and m["time_to_threshold"]["saved"] is None


def test_curves_must_match():
    with pytest.raises(ValueError, match="same length"):
        transfer_metrics([1.0, 2.0], [1.0], threshold=0.0)
