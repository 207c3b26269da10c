"""Whether a policy trained on one env family runs on another (``drml rl transfer``): their tasks, their
observation and action spaces, and ``transfer.mapping`` between them, checked as the config is read. No Ray."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from drml_ray.rl.envs import make_env
from drml_ray.text import counted

if TYPE_CHECKING:
    from drml_ray.rl.config import RLExperiment


def check_spaces(cfg: RLExperiment) -> None:
    """Transfer needs equal observation and action spaces, or ``transfer.mapping`` saying how they map, and tasks
    its envs take: a ``ValueError`` naming the key (the config's validation, before anything runs)."""
    tr = cfg.transfer
    if tr is None:
        return
    source_family, target_family = tr.source_family or cfg.env.family, tr.target_family or cfg.env.family
    source, target = make_env(source_family), make_env(target_family)
    for name, task, env in (("source", tr.source, source), ("target", tr.target, target)):
        try:
            env.unwrapped.set_task(task)  # the env's own checks: keys it knows, values its physics takes
        except (KeyError, ValueError) as err:
            raise ValueError(f"transfer.{name}: {err.args[0]}") from None
    same = (source.observation_space.shape == target.observation_space.shape
            and source.action_space == target.action_space)  # fmt: skip
    if not same and tr.mapping is None:
        raise ValueError(
            f"transfer: the source ({source_family}: observations {source.observation_space.shape}, actions "
            f"{source.action_space}) and the target ({target_family}: observations "
            f"{target.observation_space.shape}, actions {target.action_space}) differ, so the source policy "
            "cannot run on the target; add transfer.mapping with observation: [source index per target "
            "dimension] and action: [source output per target policy output]"
        )
    if type(source.action_space) is not type(target.action_space):
        raise ValueError(f"transfer: a {type(source.action_space).__name__} action space cannot map onto a "
                          f"{type(target.action_space).__name__} one (their heads mean different things)")  # fmt: skip
    if tr.mapping is not None:
        _check_mapping(cfg, source, target)


def policy_outputs(space: gym.Space, free_log_std: bool) -> int:
    """Outputs of RLlib's PPO policy head for actions in ``space``: a logit per discrete action; per continuous
    dimension a mean and a log-std, or the mean alone with ``ppo.free_log_std`` (its log-std is a parameter).

    >>> policy_outputs(gym.spaces.Discrete(2), False), policy_outputs(gym.spaces.Box(-1, 1, (3,)), False)
    (2, 6)
    """
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    return int(np.prod(space.shape)) * (1 if free_log_std else 2)


def _check_mapping(cfg: RLExperiment, source: gym.Env, target: gym.Env) -> None:
    """``transfer.mapping`` against the two envs' spaces before anything trains (the weights are mapped once the
    source policy has trained: a mapping that did not fit stopped the run then)."""
    assert cfg.transfer is not None and cfg.transfer.mapping is not None
    free = cfg.ppo.free_log_std
    observations = [env.observation_space.shape[0] for env in (target, source)]
    outputs = [policy_outputs(env.action_space, free) for env in (target, source)]
    two = isinstance(target.action_space, gym.spaces.Box) and not free
    sizes = {"observation": (observations, "observation dimension", ""),
             "action": (outputs, "policy output", " (a mean and a log-std per action dimension; the means alone "
                        "with ppo.free_log_std)" if two else "")}  # fmt: skip
    for what, ((wanted, available), unit, note) in sizes.items():
        given = getattr(cfg.transfer.mapping, what)
        if len(given) != wanted:
            raise ValueError(f"transfer.mapping.{what} has {len(given)} {'entry' if len(given) == 1 else 'entries'}; "
                             f"the target has {counted(wanted, unit)}{note}")  # fmt: skip
        bad = [i for i in given if i is not None and not 0 <= i < available]
        if bad:
            raise ValueError(f"transfer.mapping.{what}: {', '.join(map(str, bad))} out of range: the source's "
                             f"{unit}s are 0 to {available - 1}")  # fmt: skip
