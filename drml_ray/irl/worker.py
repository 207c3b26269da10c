"""One process's inverse-RL jobs (a Ray actor of the pool, or the driver itself): a PPO expert, a GAIL or AIRL
learner on RLlib PPO with the learned reward, and RLlib's BC. Every job builds its own RLlib Algorithm and
stops it, so a job's result is a function of its arguments alone."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drml_ray._ray_compat import local_learner, quiet_ray_data_progress_notice, quiet_rllib, unseed_later_resets
from drml_ray.irl.config import IRLExperiment
from drml_ray.irl.policy import family_env, mean_return, rollout
from drml_ray.rl.config import RLEnvSettings
from drml_ray.rl.ppo import MODULE, PPOTaskLearner, ppo_config, set_runner_weights
from drml_ray.rl.weights import Weights

DEMOS_FILE = "transitions.parquet"
RLLIB_DIR = "rllib"


def env_settings(cfg: IRLExperiment, family: str) -> RLEnvSettings:
    """``env:`` with ``family`` and its horizon."""
    return cfg.env.model_copy(update={"family": family, "horizon": cfg.families()[family].horizon_of(family)})


def true_return(cfg: IRLExperiment, family: str, module: Any, task: dict[str, float] | None = None) -> float:
    """``module``'s mean true return on ``family``'s expert task (or ``task``): the yardstick of every policy."""
    settings = cfg.families()[family]
    env = family_env(family, settings.horizon_of(family), settings.task if task is None else task)
    return mean_return(module, env, cfg.irl.eval_episodes, 10_000)


def family_config(cfg: IRLExperiment, family: str, seed: int, task: dict[str, float] | None = None) -> Any:
    """RLlib's ``PPOConfig`` on ``family``'s expert task, or on ``task`` (one process, as meta-RL's learners)."""
    config = ppo_config(env_settings(cfg, family), cfg.ppo_of(family), seed, family=family)
    config.env_config["task"] = dict(cfg.families()[family].task if task is None else task)
    return config


def irl_config(cfg: IRLExperiment, family: str, method: str, demos: int, seed: int, demos_dir: str,
               transfer: bool = False) -> Any:  # fmt: skip
    """PPO with the learned reward (:class:`~drml_ray.irl.learner.IRLPPOLearner`); ``transfer``: on the family's
    ``transfer_task``, rewarded by AIRL's state-only ``g``."""
    from drml_ray.irl.learner import IRLPPOLearner, irl_settings

    settings = cfg.families()[family]
    task = settings.transfer_task if transfer else None
    disc, ppo = cfg.disc_of(method, family).model_dump(mode="json"), cfg.ppo_of(family)
    learner = irl_settings(method, str(Path(demos_dir) / DEMOS_FILE), demos, settings.horizon_of(family),
                           ppo.gamma, disc, seed, state_only=transfer)  # fmt: skip
    config = family_config(cfg, family, seed, task)
    if settings.lr_final is not None:
        iters = settings.transfer_iters_of() if transfer else settings.iters
        config.training(lr=[[0, ppo.lr], [iters * ppo.train_batch, settings.lr_final]])
    return config.learners(learner_class=IRLPPOLearner, learner_config_dict={"irl": learner})


def train_curve(algo: Any, iterations: int, label: str, stats: Any = None) -> list[float]:
    """``iterations`` of ``algo.train()``: the true-reward training return after each (RLlib's mean of the
    last 20 episodes), with a progress line per tenth."""
    curve, began = [], time.perf_counter()
    for i in range(1, iterations + 1):
        result = algo.train()
        curve.append(float(result.get("env_runners", {}).get("episode_return_mean", float("nan"))))
        if i % max(1, iterations // 10) == 0 or i == iterations:
            extra = f", {stats()}" if stats else ""
            print(f"[drml] {label}: iteration {i}/{iterations}, true return {curve[-1]:.1f}{extra} "
                  f"({time.perf_counter() - began:.0f} s)", flush=True)  # fmt: skip
    return curve


def ray_data_settings() -> None:
    """RLlib's offline API runs on Ray Data: its blocks in the order of the files (a seeded run reads the same
    episodes in the same order), and no per-dataset progress logs to drown drml's lines (nor the warning that
    they are off, with how to turn them on)."""
    import ray.data  # RAY

    context = ray.data.DataContext.get_current()  # RAY
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    quiet_ray_data_progress_notice()


class IRLWorker:
    """Inverse-RL jobs; ``threads`` torch threads."""

    def __init__(self, threads: int = 1):
        torch.set_num_threads(threads)

    def expert(self, cfg_json: dict, family: str) -> dict[str, Any]:
        """PPO on the true reward of ``family``'s task: its weights, training curve and return; with a
        ``transfer_task``, also the yardstick of reward transfer (:meth:`yardstick`)."""
        cfg = IRLExperiment.model_validate(cfg_json)
        settings = cfg.families()[family]
        began = time.perf_counter()
        expert = self.true_reward_ppo(cfg, family, settings.task, settings.expert_iters, f"{family} expert")
        expert["train_s"] = time.perf_counter() - began
        if settings.transfer_task is not None:
            expert["transfer"] = self.yardstick(cfg_json, family)
        return expert

    def yardstick(self, cfg_json: dict, family: str) -> dict[str, Any]:
        """PPO from scratch on the true reward of ``family``'s ``transfer_task`` for ``transfer_iters`` iterations (as
        many as the policy on AIRL's reward there): its curve and return."""
        cfg = IRLExperiment.model_validate(cfg_json)
        settings = cfg.families()[family]
        label = f"{family} PPO on the true reward of {settings.transfer_task}"
        result = self.true_reward_ppo(cfg, family, settings.transfer_task or {}, settings.transfer_iters_of(), label)
        del result["weights"]
        return result

    def task_expert(self, cfg_json: dict, family: str, label: str) -> dict[str, Any]:
        """Meta-IRL's expert on one task (``family``'s expert task in ``cfg_json``), and
        ``meta_irl.recorded_demos`` episodes of it."""
        cfg = IRLExperiment.model_validate(cfg_json)
        settings, meta = cfg.families()[family], cfg.meta_irl
        return self.true_reward_ppo(cfg, family, settings.task, settings.expert_iters, label, meta.recorded_demos,
                                    meta.explore)  # fmt: skip

    def true_reward_ppo(self, cfg: IRLExperiment, family: str, task: dict[str, float], iterations: int,
                        label: str, record: int = 0, explore: bool = False) -> dict[str, Any]:  # fmt: skip
        """PPO on ``task``'s true reward: weights, curve, return, and ``record`` episodes of the trained policy."""
        seed = cfg.expert.seed
        learner = PPOTaskLearner(env_settings(cfg, family).model_dump(mode="json"),
                                 cfg.ppo_of(family).model_dump(mode="json"), seed, family=family)  # fmt: skip
        try:
            learner.start_job(seed)
            learner.set_task(dict(task))
            curve = train_curve(learner.algo(), iterations, label)
            module = learner.algo().env_runner.module
            ret = true_return(cfg, family, module, task)
            result: dict[str, Any] = {"weights": learner.get_weights(), "curve": curve, "return": ret}
            if record:
                env = family_env(family, cfg.families()[family].horizon_of(family), task)
                result["episodes"] = rollout(module, env, record, 20_000, explore)
            return result
        finally:
            learner.stop()

    def adversarial(self, cfg_json: dict, family: str, method: str, demos: int, seed: int, demos_dir: str,
                    reward_transfer: bool = False) -> dict[str, Any]:  # fmt: skip
        """GAIL or AIRL: RLlib PPO on ``family``'s task, its rewards from a discriminator trained against the
        first ``demos`` demonstrations; the true-return curve, the final return and the reward network. With a
        ``transfer_task``: the policy's return there as it is (``carried``) and, for AIRL with
        ``reward_transfer``, a fresh PPO policy's curve and return there on the learned ``g`` (``reward``)."""
        cfg = IRLExperiment.model_validate(cfg_json)
        settings = cfg.families()[family]
        algo = irl_config(cfg, family, method, demos, seed, demos_dir).build_algo()
        try:
            learner = local_learner(algo)
            label = f"{method} {family} {demos} demos seed {seed}"
            curve = train_curve(algo, settings.iters, label, lambda: f"disc loss {learner.stats['disc_loss']:.3f}")
            module = algo.env_runner.module
            result = {"curve": curve, "return": true_return(cfg, family, module), "reward": learner.get_reward_state()}
            if settings.transfer_task is not None:
                result["transfer"] = {"carried": true_return(cfg, family, module, settings.transfer_task)}
        finally:
            algo.stop()
        if settings.transfer_task is not None and method == "airl" and reward_transfer:
            result["transfer"]["reward"] = self.reward_transfer(cfg, family, demos, seed, demos_dir, result["reward"])
        return result

    def reward_policies(self, cfg_json: dict, family: str, rewards: list[dict[str, Any]], seed: int,
                        demos_dir: str) -> list[float]:  # fmt: skip
        """The true return of a fresh PPO policy trained on each of ``rewards`` (AIRL reward networks, their ``g``
        alone, fixed) on ``family``'s ``transfer_task``: how much of that task's reward each one recovered."""
        cfg = IRLExperiment.model_validate(cfg_json)
        return [self.reward_transfer(cfg, family, 1, seed, demos_dir, reward)["return"] for reward in rewards]

    def reward_transfer(self, cfg: IRLExperiment, family: str, demos: int, seed: int, demos_dir: str,
                        reward: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """A fresh PPO policy on the ``transfer_task``, rewarded by AIRL's learned ``g`` (fixed)."""
        settings = cfg.families()[family]
        algo = irl_config(cfg, family, "airl", demos, seed, demos_dir, transfer=True).build_algo()
        try:
            local_learner(algo).set_reward_state(reward, train=False)
            label = f"airl reward {family} {settings.transfer_task} seed {seed}"
            curve = train_curve(algo, settings.transfer_iters_of(), label)
            return {"curve": curve, "return": true_return(cfg, family, algo.env_runner.module, settings.transfer_task)}
        finally:
            algo.stop()

    def bc(self, cfg_json: dict, family: str, demos: int, seed: int, demos_dir: str) -> dict[str, Any]:
        """RLlib's BC on the first ``demos`` recorded episodes (RLlib's own reader of its recording)."""
        cfg = IRLExperiment.model_validate(cfg_json)
        settings = cfg.families()[family]
        algo = bc_config(cfg, family, demos, seed, demos_dir).build_algo()
        try:
            losses = []
            for _ in range(cfg.irl.bc_iters):
                result = algo.train()
                losses.append(float(result.get("learners", {}).get(MODULE, {}).get("policy_loss", np.nan)))
            module = local_learner(algo).module[MODULE]
            result = {"loss": losses, "return": true_return(cfg, family, module)}
            if settings.transfer_task is not None:
                result["transfer"] = {"carried": true_return(cfg, family, module, settings.transfer_task)}
            return result
        finally:
            algo.stop()


def bc_config(cfg: IRLExperiment, family: str, demos: int, seed: int, demos_dir: str) -> Any:
    """RLlib's ``BCConfig`` reading the first ``demos`` recorded episodes with RLlib's offline API, one process;
    its pre-learner's draws seeded by ``seed`` (:mod:`drml_ray.irl.bc_offline`). Like :func:`ppo_config`, it
    quiets this process's RLlib, and it sets up Ray Data for the reading."""
    from ray.data import ActorPoolStrategy  # RAY
    from ray.rllib.algorithms.bc import BCConfig  # RLLIB

    from drml_ray.irl.bc_offline import QuietOfflinePreLearner, SeededEpisodeBuffer

    ray_data_settings()
    quiet_rllib()
    settings, ppo = cfg.families()[family], cfg.ppo_of(family)
    env = family_env(family, settings.horizon_of(family), settings.task)
    files = sorted(str(p) for p in (Path(demos_dir) / RLLIB_DIR).glob("*/run-*"))[:demos]
    return (
        BCConfig()
        .environment(observation_space=env.observation_space, action_space=env.action_space)
        .offline_data(input_=files, input_read_episodes=True, dataset_num_iters_per_learner=1,
                      prelearner_class=QuietOfflinePreLearner, prelearner_buffer_class=SeededEpisodeBuffer,
                      prelearner_buffer_kwargs={"seed": seed},
                      # Ray Data's named arguments: RLlib's defaults (ray_remote_args, concurrency) are deprecated
                      input_read_method_kwargs={"num_cpus": 0},
                      map_batches_kwargs={"compute": ActorPoolStrategy(size=1), "concurrency": None, "num_cpus": 0},
                      iter_batches_kwargs={"prefetch_batches": 1})
        .training(train_batch_size_per_learner=cfg.irl.bc_batch, lr=1e-3)
        .rl_module(model_config=bc_model_config(ppo.hidden, env.action_space))
        .learners(num_learners=0)
        .env_runners(num_env_runners=0)
        .debugging(seed=seed, log_level="ERROR", log_sys_usage=False)
    )  # fmt: skip


def bc_model_config(hidden: list[int], space: gym.Space) -> Any:
    """BC's policy network: continuous actions get one log std for every state. With one per state, the likelihood
    widens it where the expert is hard to fit (Pendulum's swing-up) and stops fitting the mean there: BC on
    Pendulum's 16 demonstrations was at random's return (BENCHMARKS.md, session 16)."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig  # RLLIB

    return DefaultModelConfig(fcnet_hiddens=list(hidden), free_log_std=isinstance(space, gym.spaces.Box))


def record_demos(cfg: IRLExperiment, family: str, weights: Weights, folder: Path) -> list[Any]:
    """``expert.episodes`` episodes of the expert with RLlib's offline API (one Parquet folder per episode
    under ``folder/rllib``, RLlib's episode format) and the same episodes as the flat ``transitions.parquet``."""
    from drml_ray.irl.demos import Episode, write_episodes

    ray_data_settings()
    config = (family_config(cfg, family, cfg.expert.seed)
              .env_runners(num_envs_per_env_runner=1, batch_mode="complete_episodes")
              .offline_data(output=str(folder / RLLIB_DIR), output_write_episodes=True,
                            output_max_rows_per_file=1))  # fmt: skip
    algo = config.build_algo()
    try:
        runner, episodes = algo.env_runner, []
        set_runner_weights(runner, {k: v.numpy() for k, v in weights.items()})
        for _ in range(cfg.expert.episodes):
            (ep,) = runner.sample(num_episodes=1, explore=cfg.explore_of(family), force_reset=True)[:1]
            unseed_later_resets(runner)  # or every episode starts where the first did
            obs, actions = np.asarray(ep.get_observations(), dtype=np.float32), np.asarray(ep.get_actions())
            rewards = np.asarray(ep.get_rewards(), dtype=np.float64)
            episodes.append(Episode(obs, actions, rewards, bool(ep.is_terminated)))
        write_episodes(folder / DEMOS_FILE, episodes)
        return episodes
    finally:
        algo.stop()
