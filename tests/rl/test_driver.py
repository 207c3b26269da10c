"""The RL driver's bookkeeping without Ray: metric aggregation, task streams, starting points."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from drml_ray.errors import UserError
from drml_ray.rl.config import RLExperiment
from drml_ray.rl.driver import (
    heldout_tasks,
    load_weights,
    train_tasks,
    trained_starts,
    validation_tasks,
)
from drml_ray.rl.results import summarise, transfer_summary


def test_summarise_averages_tasks_then_seeds_and_computes_the_gap_closed():
    curves = {
        "meta": {1: [[-10.0, -4.0], [-20.0, -8.0]], 2: [[-12.0, -6.0], [-18.0, -6.0]]},
        "scratch": {1: [[-30.0, -20.0], [-30.0, -20.0]], 2: [[-40.0, -24.0], [-20.0, -16.0]]},
        "oracle": {1: [[-2.0, -2.0], [-4.0, -4.0]]},
    }
    table = summarise(curves, adapt_iters=1)
    meta = table["meta"]
    # seed 1: before (-10 - 20) / 2 = -15, after -6; seed 2: before -15, after -6
    assert meta["episode_return_mean"] == -15.0 and meta["episode_return_mean_adapt_1"] == -6.0
    assert meta["adaptation_delta"] == 9.0 and meta["std"]["episode_return_mean"] == 0.0
    assert [s["seed"] for s in meta["seeds"]] == [1, 2] and meta["seeds"][0]["tasks"] == 2
    # scratch after 1: seed 1 -20, seed 2 -20 -> -20; oracle before: -3
    assert meta["gap_closed"]["episode_return_mean_adapt_1"] == pytest.approx((-6.0 + 20.0) / (-3.0 + 20.0))
    assert table["scratch"]["std"]["episode_return_mean"] == pytest.approx(0.0)  # both seeds average -30
    assert "gap_closed" not in table["scratch"]


def test_transfer_summary_uses_one_threshold_for_every_seed():
    curves = {1: {"transfer": [10.0, 50.0, 90.0], "scratch": [0.0, 20.0, 60.0]},
              2: {"transfer": [20.0, 60.0, 100.0], "scratch": [0.0, 40.0, 100.0]}}  # fmt: skip
    out = transfer_summary(curves, threshold=None, tail=1)
    # mean curves: transfer 15, 55, 95; scratch 0, 30, 80 -> threshold 0 + 0.9 * 95 = 85.5
    assert out["time_to_threshold"]["threshold"] == pytest.approx(85.5)
    assert out["time_to_threshold"]["transfer"] == 2 and out["time_to_threshold"]["reached"] == {
        "transfer": 2,
        "scratch": 1,
    }
    assert out["jumpstart"] == 15.0 and out["asymptotic"]["gain"] == pytest.approx(15.0)
    assert out["mean_curves"]["scratch"] == [0.0, 30.0, 80.0]


def test_meta_training_and_evaluation_never_share_a_task():
    cfg = RLExperiment(name="x", meta={"meta_batch": 4}, eval={"tasks": 3})
    assert train_tasks(cfg, 0) == train_tasks(cfg, 0) and train_tasks(cfg, 0) != train_tasks(cfg, 1)
    seen = [t for step in range(50) for t in train_tasks(cfg, step)]
    assert not any(task in seen for task in heldout_tasks(cfg))


def test_validation_tasks_are_neither_trained_on_nor_evaluated():
    cfg = RLExperiment(name="x", meta={"meta_batch": 4}, eval={"tasks": 3})
    seen = [t for step in range(50) for t in train_tasks(cfg, step)] + heldout_tasks(cfg)
    chosen_on = validation_tasks(cfg, 2)
    assert chosen_on == validation_tasks(cfg, 2) and not any(task in seen for task in chosen_on)


def test_trained_starts_are_loaded_and_a_missing_one_is_named(tmp_path):
    weights = {"pi.log_std": torch.tensor([-1.0, -0.5]), "pi.net.mlp.0.bias": torch.ones(4)}
    (tmp_path / "multitask").mkdir()
    torch.save({"weights": weights}, tmp_path / "multitask" / "weights.pt")
    cfg = RLExperiment(name="x", eval={"methods": ["multitask", "scratch"]})
    assert torch.equal(trained_starts(cfg, tmp_path, None)["multitask"]["pi.log_std"], weights["pi.log_std"])
    reset = trained_starts(
        cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"reset_log_std": True})}), tmp_path, None
    )
    assert reset["multitask"]["pi.log_std"].tolist() == [0.0, 0.0] and torch.equal(
        reset["multitask"]["pi.net.mlp.0.bias"], torch.ones(4)
    )
    assert torch.equal(load_weights(tmp_path / "multitask")["pi.net.mlp.0.bias"], torch.ones(4))
    with pytest.raises(UserError, match="meta/weights.pt: no trained meta policy; run `drml rl meta-train`"):
        trained_starts(RLExperiment(name="x", eval={"methods": ["meta"]}), tmp_path, None)


def test_the_task_streams_never_collide_over_10000_meta_steps():
    """Training draws a stream per meta-step; validation and test tasks have streams of their own. (Before,
    validation used the stream of meta-step 5,555 and the test tasks that of meta-step 7,777.)"""
    cfg = RLExperiment(name="x", meta={"meta_batch": 2, "meta_steps": 10_000}, eval={"tasks": 5})
    trained = {tuple(t.values()) for step in range(10_000) for t in train_tasks(cfg, step)}
    assert len(trained) == 20_000  # no stream repeats another
    held_out = {tuple(t.values()) for t in heldout_tasks(cfg) + validation_tasks(cfg, 5)}
    assert len(held_out) == 10 and not held_out & trained


@pytest.mark.parametrize("free_log_std", [False, True])
def test_a_transfer_mapping_is_checked_against_the_policy_head_rllib_builds(free_log_std):
    """The outputs drml counts as the config is read are the rows of RLlib's own policy head (a mean and a log-std per
    continuous action, the means alone with ppo.free_log_std): a mapping of another length stopped the run only
    after the source policy had trained."""
    from drml_ray.rl.envs import make_env
    from drml_ray.rl.ppo import ppo_config
    from drml_ray.rl.spaces import policy_outputs

    def nav2d_to_pendulum(observation: list, action: list) -> RLExperiment:
        return RLExperiment.model_validate({
            "name": "t", "env": {"family": "nav2d"}, "ppo": {"free_log_std": free_log_std},
            "transfer": {"source": {}, "target": {}, "target_family": "pendulum",
                         "mapping": {"observation": observation, "action": action}},
        })  # fmt: skip

    outputs = 1 if free_log_std else 2
    cfg = nav2d_to_pendulum([0, None, 1], [1] * outputs)
    for family in ("nav2d", "pendulum", "cartpole"):
        module = ppo_config(cfg.env, cfg.ppo, 0, family=family).get_rl_module_spec(env=make_env(family)).build()
        head = max((k for k in module.get_state() if k.startswith("pi.net.mlp.")), key=lambda k: int(k.split(".")[3]))
        assert policy_outputs(make_env(family).action_space, free_log_std) == module.get_state()[head].shape[0]
    for observation, action, error in [
        ([0, 1], [0] * outputs, "transfer.mapping.observation has 2 entries; the target has 3 observation dim"),
        ([0, 1, 2], [0] * outputs, "transfer.mapping.observation: 2 out of range: the source's observation dimensions "
         "are 0 to 1"),
        ([0, None, 1], [0] * 3, f"transfer.mapping.action has 3 entries; the target has {outputs} policy output"),
    ]:  # fmt: skip
        with pytest.raises(ValidationError, match=error):  # (as the config is read: nothing has trained)
            nav2d_to_pendulum(observation, action)
    assert cfg.transfer.mapping.action == [1] * outputs  # (a mapping that fits)
