"""Running an RLlib policy module on the true reward: the one yardstick of experts and imitators alike.

Every policy (the PPO expert, GAIL's and AIRL's PPO learners, RLlib's BC) is judged by the same loop: its
RLModule's inference forward pass on fresh episodes of the family's env, with its most likely action (or a
sampled one), the env's own reward summed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drml_ray.irl.demos import Episode
from drml_ray.rl.envs import Task, TaskFamilyEnv


def family_env(family: str, horizon: int, task: Task) -> TaskFamilyEnv:
    return TaskFamilyEnv({"family": family, "horizon": horizon, "task": dict(task)})


def n_actions(space: gym.Space) -> int | None:
    """A discrete action space's number of actions (``None``: continuous)."""
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else None


def act(module: Any, obs: np.ndarray, space: gym.Space, explore: bool) -> tuple[np.ndarray, Any]:
    """One action of an RLModule for one observation: as the policy outputs it (what RLlib's episodes and train
    batches hold) and as the env gets it (RLlib's env runners map continuous outputs from [-1, 1] onto the
    action space's bounds, ``normalize_actions``)."""
    from ray.rllib.core import Columns  # RLLIB
    from ray.rllib.utils.spaces.space_utils import unsquash_action  # RLLIB

    with torch.no_grad():
        out = module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)[None]})
        dist = module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
        action = (dist.sample() if explore else dist.to_deterministic().sample())[0].numpy()
    return action, unsquash_action(action, space)


Choose = Callable[[np.ndarray], tuple[Any, Any]]
"""An observation -> the action as recorded and as the env gets it."""


def play(env: TaskFamilyEnv, episodes: int, seed: int, choose: Choose) -> list[Episode]:
    """``episodes`` fresh episodes on ``env`` (resets seeded ``seed``, ``seed + 1``, ...), ``choose(obs)`` giving
    each step's action as recorded and as the env gets it."""
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        states, actions, rewards, terminated, truncated = [obs], [], [], False, False
        while not (terminated or truncated):
            action, env_action = choose(obs)
            obs, reward, terminated, truncated, _ = env.step(env_action)
            states.append(obs)
            actions.append(action)
            rewards.append(float(reward))
        out.append(Episode(np.asarray(states, dtype=np.float32), np.asarray(actions), np.asarray(rewards), terminated))
    return out


def rollout(module: Any, env: TaskFamilyEnv, episodes: int, seed: int, explore: bool = False) -> list[Episode]:
    """``episodes`` fresh episodes of ``module`` on ``env`` (resets seeded ``seed``, ``seed + 1``, ...)."""
    return play(env, episodes, seed, lambda obs: act(module, obs, env.action_space, explore))


def mean_return(module: Any, env: TaskFamilyEnv, episodes: int, seed: int) -> float:
    return float(np.mean([ep.ret for ep in rollout(module, env, episodes, seed)]))


def random_episodes(env: TaskFamilyEnv, episodes: int, seed: int) -> list[Episode]:
    """``episodes`` episodes of uniformly random actions (resets seeded ``seed``, ``seed + 1``, ...; the actions
    drawn from ``seed``): the zero of the return ratio, and meta-IRL's other side of the discriminator."""
    env.action_space.seed(seed)

    def choose(obs: np.ndarray) -> tuple[Any, Any]:
        action = env.action_space.sample()
        return action, action

    return play(env, episodes, seed, choose)
