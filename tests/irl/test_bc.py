"""RLlib's BC module as drml builds it: on continuous actions, one log std for every state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from drml_ray.irl.worker import bc_model_config


def bc_outputs(space: gym.Space, obs: torch.Tensor) -> torch.Tensor:
    from ray.rllib.algorithms.bc.torch.default_bc_torch_rl_module import DefaultBCTorchRLModule
    from ray.rllib.core import Columns

    box = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    module = DefaultBCTorchRLModule(observation_space=box, action_space=space,
                                    model_config=bc_model_config([8], space))  # fmt: skip
    with torch.no_grad():
        return module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]


def test_bc_on_continuous_actions_has_one_log_std_for_every_state_and_a_mean_per_state():
    torch.manual_seed(0)
    out = bc_outputs(gym.spaces.Box(-2.0, 2.0, (1,), np.float32), torch.randn(5, 3))
    mean, log_std = out[:, 0], out[:, 1]
    assert torch.all(log_std == log_std[0]) and len(set(mean.tolist())) == 5


def test_bc_on_discrete_actions_keeps_its_logits():
    assert bc_outputs(gym.spaces.Discrete(2), torch.randn(4, 3)).shape == (4, 2)
