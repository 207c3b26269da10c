"""One RLlib PPO Algorithm per process, reused for every task: the inner learner of meta-RL.

:class:`PPOTaskLearner` builds its Algorithm once (~2 s; everything in-process: no env-runner or
learner actors) and then, per task: set weights, set task, reset the optimizer, train ``k`` PPO
iterations, read the weights back. Returns are measured by sampling whole episodes with the current
(stochastic) policy on the local env runner, so they never mix with RLlib's smoothed metrics.

Two policies can live side by side: ``ff`` (a feed-forward MLP) and ``rl2`` (an LSTM whose input also
holds the previous action and reward), each built on first use.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from drml_ray._ray_compat import quiet_rllib
from drml_ray.rl.config import PPOSettings, RLEnvSettings
from drml_ray.rl.envs import Task, TaskFamilyEnv, make_env, randomise_tasks_on_runner, set_task_on_runner
from drml_ray.rl.weights import Weights, as_tensors

Arch = Literal["ff", "rl2"]
MODULE = "default_policy"


def ppo_config(env: RLEnvSettings, ppo: PPOSettings, seed: int, arch: Arch = "ff", family: str | None = None) -> Any:
    """The RLlib ``PPOConfig`` of one task learner (new API stack, one process), in a process whose RLlib is quiet.
    No system-usage monitor: a thread per Algorithm sampling the CPU every 0.7 s for metrics drml never reads."""
    quiet_rllib()
    from ray.rllib.algorithms.ppo import PPOConfig  # RLLIB
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig  # RLLIB

    env_config = {"family": family or env.family, "horizon": env.horizon, "prev_action_reward": arch == "rl2"}
    continuous = not isinstance(make_env(family or env.family).action_space, gym.spaces.Discrete)
    model = DefaultModelConfig(fcnet_hiddens=list(ppo.hidden), vf_share_layers=False,
                               free_log_std=ppo.free_log_std and continuous)  # fmt: skip
    if arch == "rl2":
        # (RLlib's free log-std head does not take the LSTM's time axis: its std stays state-dependent)
        model = DefaultModelConfig(fcnet_hiddens=list(ppo.hidden), vf_share_layers=False, use_lstm=True,
                                   lstm_cell_size=ppo.lstm_cell_size, max_seq_len=ppo.max_seq_len)  # fmt: skip
    return (
        PPOConfig()
        .environment(TaskFamilyEnv, env_config=env_config)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=ppo.envs, rollout_fragment_length="auto")
        .learners(num_learners=0)
        .training(
            lr=ppo.lr,
            train_batch_size_per_learner=ppo.train_batch,
            minibatch_size=ppo.minibatch,
            num_epochs=ppo.epochs,
            gamma=ppo.gamma,
            lambda_=ppo.gae_lambda,
            clip_param=ppo.clip,
            entropy_coeff=ppo.entropy_coeff,
            vf_clip_param=ppo.vf_clip,
            use_kl_loss=False,
        )  # fmt: skip
        .rl_module(model_config=model)
        .reporting(metrics_num_episodes_for_smoothing=20)
        .debugging(seed=seed, log_level="ERROR", log_sys_usage=False)
    )


def set_runner_weights(runner: Any, state: dict[str, np.ndarray]) -> None:
    """Put policy weights on an env runner. It keeps only the inference part of the module; a state without a
    weights sequence number is always applied (RLlib's own sync skips states no newer than the runner's)."""
    keys = runner.module.state_dict().keys()
    runner.set_state({"rl_module": {MODULE: {k: state[k] for k in keys}}})


class PPOTaskLearner:
    """A reusable PPO learner: weights and task in, adapted weights and returns out."""

    def __init__(self, env: dict, ppo: dict, seed: int, threads: int = 1, family: str | None = None):
        torch.set_num_threads(threads)
        self.env = RLEnvSettings.model_validate(env)
        self.ppo = PPOSettings.model_validate(ppo)
        self.seed = seed
        self.family = family or self.env.family
        self.algos: dict[str, Any] = {}

    def algo(self, arch: Arch = "ff") -> Any:
        if arch not in self.algos:
            self.algos[arch] = ppo_config(self.env, self.ppo, self.seed, arch, self.family).build_algo()
        return self.algos[arch]

    # --- weights, task, optimizer ---------------------------------------------------------------

    def get_weights(self, arch: Arch = "ff") -> Weights:
        return as_tensors(self.algo(arch).learner_group.get_weights()[MODULE])

    def set_weights(self, weights: Weights, arch: Arch = "ff") -> None:
        algo = self.algo(arch)
        state = {k: v.detach().cpu().numpy() for k, v in weights.items()}
        algo.learner_group.set_weights({MODULE: state})
        set_runner_weights(algo.env_runner, state)
        self.reset_optimizer(arch)

    def fresh_weights(self, seed: int, arch: Arch = "ff") -> Weights:
        """A random initialisation (torch's defaults, as RLlib's module uses) drawn with ``seed``."""
        fresh: Weights = {}

        def draw(learner: Any) -> None:  # the local learner (num_learners=0): the module trains in this process
            module = learner.module[MODULE]
            keep = {k: v.detach().clone() for k, v in module.state_dict().items()}
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                for layer in module.modules():
                    if hasattr(layer, "reset_parameters"):
                        layer.reset_parameters()
                fresh.update({k: v.detach().clone() for k, v in module.state_dict().items()})
            module.load_state_dict(keep)

        self.algo(arch).learner_group.foreach_learner(draw)
        fresh |= {k: torch.zeros_like(v) for k, v in fresh.items() if k.endswith("log_std")}  # RLlib's init
        return {k: fresh.get(k, v) for k, v in self.get_weights(arch).items()}

    def reset_optimizer(self, arch: Arch = "ff") -> None:
        """Forget Adam's moments: each task's adaptation starts with a fresh inner optimizer."""

        def clear(learner: Any) -> None:
            for _, optimizer in learner.get_optimizers_for_module(MODULE):
                optimizer.state.clear()

        self.algo(arch).learner_group.foreach_learner(clear)

    def start_job(self, seed: int, arch: Arch = "ff") -> None:
        """Make what follows a function of ``seed`` and its inputs alone, whatever this process ran before:
        seed Python's, numpy's and torch's random state (PPO shuffles its minibatches with numpy) and build the
        env runner's envs anew (RLlib's public ``make_env``), so that sampling starts fresh episodes from the
        runner's seed instead of continuing the previous job's. The Algorithm is built before the seeding:
        building it draws random numbers, so a brand-new actor's first job would otherwise start elsewhere."""
        algo = self.algo(arch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        algo.env_runner.make_env()

    def set_task(self, task: Task, arch: Arch = "ff") -> list[Task]:
        return set_task_on_runner(self.algo(arch).env_runner, task)

    def randomise_tasks(self, seed: int, arch: Arch = "ff") -> None:
        randomise_tasks_on_runner(self.algo(arch).env_runner, seed)

    # --- training and measuring -----------------------------------------------------------------

    def train(self, iterations: int, arch: Arch = "ff", progress: str | None = None) -> None:
        """``iterations`` PPO iterations; with ``progress``, a line per tenth of them (RLlib's mean return of
        the last 20 training episodes)."""
        algo = self.algo(arch)
        began = time.perf_counter()
        for i in range(1, iterations + 1):
            result = algo.train()
            if progress and (i % max(1, iterations // 10) == 0 or i == iterations):
                mean = result.get("env_runners", {}).get("episode_return_mean", float("nan"))
                print(f"[drml] {progress}: PPO iteration {i}/{iterations}, training return {mean:.1f} "
                      f"({time.perf_counter() - began:.0f} s)", flush=True)  # fmt: skip

    def episode_return(self, episodes: int, arch: Arch = "ff") -> float:
        """Mean undiscounted return of ``episodes`` fresh episodes of the current stochastic policy."""
        sampled = self.algo(arch).env_runner.sample(num_episodes=episodes, explore=True, force_reset=True)
        done = [ep for ep in sampled if ep.is_done]
        return float(sum(ep.get_return() for ep in done) / max(1, len(done)))

    def adapt(
        self, weights: Weights, task: Task, iterations: int, episodes: int, arch: Arch = "ff"
    ) -> tuple[list[float], Weights]:
        """Start from ``weights`` on ``task``: the return before and after each of ``iterations`` PPO
        iterations (``episodes`` each), and the adapted weights. ``episodes`` 0 measures nothing."""
        self.set_weights(weights, arch)
        self.set_task(task, arch)
        curve = [self.episode_return(episodes, arch)] if episodes else []
        for _ in range(iterations):
            self.train(1, arch)
            if episodes:
                curve.append(self.episode_return(episodes, arch))
        return curve, self.get_weights(arch)

    def stop(self) -> None:
        for algo in self.algos.values():
            algo.stop()
        self.algos.clear()
