"""``drml rl transfer``: train on a source task, fine-tune on a target, against the target from scratch.

Each seed is one job on the actor pool (``meta.workers`` actors of ``meta.cpus_per_worker`` CPUs) on
learners of its own; the curves of all seeds are summarised with Taylor & Stone's metrics
(:mod:`drml_ray.rl.results`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drml_ray.errors import UserError
from drml_ray.rl.config import RLExperiment
from drml_ray.rl.driver import actor_pool
from drml_ray.rl.envs import make_env
from drml_ray.runtime.executor import Job
from drml_ray.runtime.rundir import open_run
from drml_ray.runtime.runfiles import atomic_write_json
from drml_ray.text import counted

TRANSFER_FILE = "transfer.json"


def check_spaces(cfg: RLExperiment) -> None:
    """Transfer needs equal observation and action spaces, or ``transfer.mapping`` saying how they map."""
    tr = cfg.transfer
    assert tr is not None
    source_family, target_family = tr.source_family or cfg.env.family, tr.target_family or cfg.env.family
    source, target = make_env(source_family), make_env(target_family)
    for name, task, env in (("source", tr.source, source), ("target", tr.target, target)):
        try:
            env.unwrapped.set_task(task)  # the env's own checks: keys it knows, values its physics takes
        except (KeyError, ValueError) as err:
            raise UserError(f"transfer.{name}: {err.args[0]}") from None
    same = (source.observation_space.shape == target.observation_space.shape
            and source.action_space == target.action_space)  # fmt: skip
    if not same and tr.mapping is None:
        raise UserError(
            f"transfer: the source ({source_family}: observations {source.observation_space.shape}, actions "
            f"{source.action_space}) and the target ({target_family}: observations "
            f"{target.observation_space.shape}, actions {target.action_space}) differ, so the source policy "
            "cannot run on the target; add transfer.mapping with observation: [source index per target "
            "dimension] and action: [source output per target policy output]"
        )
    if type(source.action_space) is not type(target.action_space):
        raise UserError(f"transfer: a {type(source.action_space).__name__} action space cannot map onto a "
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
            raise UserError(f"transfer.mapping.{what} has {len(given)} {'entry' if len(given) == 1 else 'entries'}; "
                            f"the target has {counted(wanted, unit)}{note}")  # fmt: skip
        bad = [i for i in given if i is not None and not 0 <= i < available]
        if bad:
            raise UserError(f"transfer.mapping.{what}: {', '.join(map(str, bad))} out of range: the source's "
                            f"{unit}s are 0 to {available - 1}")  # fmt: skip


def run_rl_transfer(cfg: RLExperiment, run_dir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Source -> target transfer against target-from-scratch over ``transfer.seeds``; writes ``transfer.json``."""
    from drml_ray.rl.results import transfer_summary, write_transfer_outputs

    if cfg.transfer is None:
        raise UserError(f"{cfg.name}: no transfer: section (source, target, ...) in the config")
    check_spaces(cfg)
    tr = cfg.transfer
    run_dir = open_run(run_dir, cfg, marker=TRANSFER_FILE, overwrite=overwrite)
    print(f"[drml] rl transfer '{cfg.name}' -> {run_dir}: {tr.source_family or cfg.env.family} {tr.source} "
          f"({tr.source_iters} PPO iterations) -> {tr.target_family or cfg.env.family} {tr.target} "
          f"({tr.target_iters}), seeds {tr.seeds}", flush=True)  # fmt: skip
    began, cfg_json = time.perf_counter(), cfg.model_dump(mode="json")

    def done(index: int, curves: dict[str, Any]) -> str:
        return (f"transfer {curves['transfer'][0]:.1f} -> {curves['transfer'][-1]:.1f}, "
                f"scratch {curves['scratch'][0]:.1f} -> {curves['scratch'][-1]:.1f}")  # fmt: skip

    with actor_pool(cfg, min(cfg.meta.workers, len(tr.seeds)), label="transfer") as pool:
        curves = pool.map([Job(f"seed {seed}", "transfer", (cfg_json, seed)) for seed in tr.seeds], done)
    result = transfer_summary(dict(zip(tr.seeds, curves, strict=True)), tr.threshold, tr.tail)
    result["wall_s"] = time.perf_counter() - began
    outputs = write_transfer_outputs(result, run_dir)
    atomic_write_json(run_dir / TRANSFER_FILE, result)  # written last: marks the run finished
    print(outputs["table"], flush=True)
    return result
