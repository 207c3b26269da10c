"""irl.json from finished cells: return ratios and reward transfer, computed by hand."""

from __future__ import annotations

import pytest

from drml_ray.irl.results import summarise, transfer_results

EXPERTS = {"pendulum": {"return": -100.0, "random_return": -1100.0,
                        "transfer": {"task": {"m": 1.5}, "return": -200.0, "random_return": -1200.0,
                                     "curve": [-1200.0, -600.0, -200.0]}}}  # fmt: skip


def test_return_ratios_are_scaled_between_random_and_expert_and_averaged_over_seeds():
    cells = {"gail/pendulum/4/1": {"return": -100.0}, "gail/pendulum/4/2": {"return": -600.0}}
    cell = summarise(cells, EXPERTS)["gail"]["pendulum"]["4"]
    assert cell["return_ratio"] == pytest.approx({"mean": 0.75, "std": 0.25})  # 1.0 and 0.5
    assert cell["return_over_expert"]["mean"] == pytest.approx((1.0 + 6.0) / 2) and cell["seeds"] == 2


def test_reward_transfer_compares_with_ppo_on_the_true_reward_of_the_changed_dynamics():
    cells = {"airl/pendulum/16/1": {"return": -100.0, "transfer": {"carried": -700.0, "reward": {
                 "return": -200.0, "curve": [-1200.0, -400.0, -200.0]}}},
             "gail/pendulum/16/1": {"return": -100.0, "transfer": {"carried": -1200.0}},
             "gail/pendulum/4/1": {"return": -100.0, "transfer": {"carried": 0.0}}}  # fmt: skip
    result = transfer_results(cells, EXPERTS, demos=16)["pendulum"]
    ratios = {name: row["return_ratio"]["mean"] for name, row in result["methods"].items()}
    assert ratios == pytest.approx({"airl policy carried over": 0.5, "airl reward, new PPO policy": 1.0,
                                    "gail policy carried over": 0.0})  # fmt: skip
    assert result["airl_reward_vs_true_reward"]["jumpstart"] == 0.0  # both curves start at -1200
