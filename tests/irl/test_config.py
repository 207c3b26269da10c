"""The inverse-RL file's per-method discriminator and per-family demonstrations, as the cells and experts see them."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from drml_ray.errors import UserError
from drml_ray.irl.config import IRLExperiment
from drml_ray.irl.demos import Episode, write_episodes
from drml_ray.irl.driver import (
    EXPERT_FILE,
    cell_budget,
    cells_to_run,
    demo_digests,
    expert_dir,
    expert_identity,
    load_expert,
)
from drml_ray.irl.worker import DEMOS_FILE
from drml_ray.runtime.runfiles import atomic_write_json


def test_a_method_has_its_own_discriminator_and_a_family_its_own_kind_of_demonstrations():
    cfg = IRLExperiment.model_validate({
        "name": "x", "expert": {"explore": False},
        "irl": {"families": {"nav2d": {"explore": True}, "cartpole": {}}, "disc": {"history": 100},
                "method_disc": {"gail": {"grad_penalty": 10.0}}},
    })  # fmt: skip
    assert cfg.disc_of("airl").history == 100 and cfg.disc_of("airl").grad_penalty == 0.0
    assert cfg.disc_of("gail").grad_penalty == 10.0 and cfg.disc_of("gail").history == 0  # whole, not merged
    assert cfg.explore_of("nav2d") and not cfg.explore_of("cartpole")
    assert expert_identity(cfg, "nav2d")["explore"] and not expert_identity(cfg, "cartpole")["explore"]
    gail, airl = cell_budget(cfg, "nav2d", "gail")["disc"], cell_budget(cfg, "nav2d", "airl")["disc"]
    assert gail["grad_penalty"] == 10.0 and "history" not in gail and airl["history"] == 100
    assert "policy_logp" not in airl  # at its default: cells measured before it existed stay valid
    own = {"nav2d": {"disc": {"airl": {"policy_logp": False}}}, "pendulum": {}}
    cfg = IRLExperiment.model_validate({"name": "x", "irl": {"families": own, "method_disc": {"airl": {"lr": 0.01}}}})
    assert cell_budget(cfg, "nav2d", "airl")["disc"]["policy_logp"] is False  # the family's own, whole
    assert cfg.disc_of("airl", "nav2d").lr == 1e-3 and cfg.disc_of("airl", "pendulum").lr == 0.01
    assert cfg.disc_of("gail", "nav2d") == cfg.irl.disc and "policy_logp" not in cell_budget(cfg, "pendulum", "airl")
    assert "lr_final" not in cell_budget(cfg, "nav2d", "gail")  # unset: cells measured before it stay valid


def test_a_decaying_ppo_rate_is_part_of_a_cells_budget_but_not_bcs():
    cfg = IRLExperiment.model_validate({"name": "x", "irl": {"families": {"pendulum": {"lr_final": 1e-4}}}})
    assert cell_budget(cfg, "pendulum", "airl")["lr_final"] == 1e-4
    assert "lr_final" not in cell_budget(cfg, "pendulum", "bc")
    with pytest.raises(ValidationError, match="lr_final"):
        IRLExperiment.model_validate({"name": "x", "irl": {"families": {"pendulum": {"lr_final": -1e-4}}}})


def test_a_longer_reward_transfer_is_part_of_airls_budget_only():
    family = {"iters": 150, "transfer_task": {"m": 1.5}}
    plain, longer = (
        IRLExperiment.model_validate({"name": "x", "irl": {"families": {"pendulum": family | extra}}})
        for extra in ({}, {"transfer_iters": 300})
    )
    assert plain.families()["pendulum"].transfer_iters_of() == 150  # the default: as many as imitation
    assert longer.families()["pendulum"].transfer_iters_of() == 300
    assert cell_budget(longer, "pendulum", "airl") == cell_budget(plain, "pendulum", "airl") | {"transfer_iters": 300}
    assert cell_budget(longer, "pendulum", "gail") == cell_budget(plain, "pendulum", "gail")


def test_cells_measured_on_other_demonstrations_are_measured_again(tmp_path):
    """An expert recorded again, or a demonstrations file replaced in irl.experts_dir: a continued drml rl irl
    reruns the cells learned from the old file, and keeps those from before digests were recorded."""
    cfg = IRLExperiment.model_validate({"name": "x", "irl": {"methods": ["gail"], "demos": [4], "seeds": [1, 2, 3]}})
    path = expert_dir(tmp_path, "nav2d") / DEMOS_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"first")
    first = demo_digests(cfg, tmp_path)
    path.write_bytes(b"second")
    second = demo_digests(cfg, tmp_path)
    assert first.keys() == {"nav2d"} and first != second
    budget = cell_budget(cfg, "nav2d", "gail")
    cells = {"gail/nav2d/4/1": {"budget": budget, "demonstrations": first["nav2d"]},
             "gail/nav2d/4/2": {"budget": budget, "demonstrations": second["nav2d"]},
             "gail/nav2d/4/3": {"budget": budget}}  # fmt: skip
    assert cells_to_run(cfg, cells, first) == [("gail", "nav2d", 4, 2)]
    assert cells_to_run(cfg, cells, second) == [("gail", "nav2d", 4, 1)]


def test_a_transfer_length_needs_a_transfer_task():
    with pytest.raises(ValidationError, match="transfer_iters is set without a transfer_task"):
        IRLExperiment.model_validate({"name": "x", "irl": {"families": {"pendulum": {"transfer_iters": 300}}}})


def test_bc_has_no_discriminator_to_set():
    with pytest.raises(ValidationError, match="method_disc.bc"):
        IRLExperiment.model_validate({"name": "x", "irl": {"method_disc": {"bc": {}}}})


def test_an_expert_no_better_than_random_is_refused_or_said_before_any_cell_runs(tmp_path, capsys):
    cfg = IRLExperiment.model_validate({"name": "x", "irl": {"families": {"cartpole": {"horizon": 5}}}})
    record = {**expert_identity(cfg, "cartpole"), "return": 5.0, "random_return": 5.0, "demo_returns": [5.0]}
    atomic_write_json(expert_dir(tmp_path, "cartpole") / EXPERT_FILE, record)
    with pytest.raises(
        UserError,
        match=r"the cartpole expert's return \(5.0\) is no better than a random policy's "
        r"\(5.0\), so return ratios against it mean nothing: train it longer \(irl.families.cartpole",
    ):
        load_expert(tmp_path, cfg, "cartpole")  # every ratio would divide by 0
    atomic_write_json(expert_dir(tmp_path, "cartpole") / EXPERT_FILE, record | {"return": 3.0})
    with pytest.raises(UserError, match="transitions.parquet: no demonstrations file there"):
        load_expert(tmp_path, cfg, "cartpole")
    cartpole = Episode(np.zeros((3, 4), np.float32), np.array([0, 1]), np.ones(2), True)
    write_episodes(expert_dir(tmp_path, "cartpole") / DEMOS_FILE, [cartpole] * cfg.expert.episodes)
    assert load_expert(tmp_path, cfg, "cartpole")["return"] == 3.0  # upside down, and said
    assert "warning: the cartpole expert's return (3.0) is no better" in capsys.readouterr().out
