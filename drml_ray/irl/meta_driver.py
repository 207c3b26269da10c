"""``drml rl meta-irl``: Reptile over AIRL's reward network across tasks of one family, judged on held-out tasks.

1. **Tasks and experts.** ``meta_irl.train_tasks`` and ``meta_irl.test_tasks`` tasks are drawn from the family's
   ranges (the train and test streams of :func:`~drml_ray.rl.envs.task_stream`); each gets a PPO expert on the
   actor pool and its demonstrations, kept in ``meta_irl_tasks/<name>/`` (``transitions.parquet``, ``task.json``).
2. **Initialisations** (on the driver, plain torch, :mod:`drml_ray.irl.meta`): Reptile's over the training tasks,
   and a network pre-trained on them pooled; kept in ``rewards/meta_irl/``.
3. **Cells.** For every method, demonstration count, seed and held-out task, the reward network is adapted on the
   task's first N demonstrations and judged after each of ``adapt_steps``: a fresh PPO policy is trained on its
   ``g`` (on the actor pool) and its true return measured. ``airl`` is adversarial AIRL from scratch on the same
   demonstrations (its own policy, and a fresh one on its ``g``). Each finished cell is kept in
   ``meta_irl_cells.json`` at once; ``meta_irl.json`` / ``.md`` / ``.png`` come last.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any

import torch

from drml_ray.checkpoints import load_state, save_state
from drml_ray.irl.config import FamilySettings, IRLExperiment
from drml_ray.irl.demos import Episode, read_episodes, write_episodes
from drml_ray.irl.driver import FREE_KEYS, disc_budget, pool, random_return
from drml_ray.irl.meta import RewardTask, adapt_reward, new_reward_net, pooled, reptile, reward_correlation, reward_task
from drml_ray.irl.policy import family_env, random_episodes
from drml_ray.irl.worker import DEMOS_FILE
from drml_ray.rl.envs import ENVS, Task, task_stream
from drml_ray.runtime.executor import Job
from drml_ray.runtime.rundir import open_run
from drml_ray.runtime.runfiles import atomic_write_json

TASKS_DIR = "meta_irl_tasks"
TASK_FILE = "task.json"
CELLS_FILE = "meta_irl_cells.json"


def draw_tasks(cfg: IRLExperiment) -> dict[str, Task]:
    """``train0 … trainN`` and ``test0 … testM``, drawn from the family's ranges with ``cfg.seed``."""
    meta, env = cfg.meta_irl, ENVS[cfg.meta_irl.family]
    train = env.sample_tasks(meta.train_tasks, task_stream(cfg.seed, "train"))  # type: ignore[attr-defined]
    test = env.sample_tasks(meta.test_tasks, task_stream(cfg.seed, "test"))  # type: ignore[attr-defined]
    return {f"train{i}": t for i, t in enumerate(train)} | {f"test{i}": t for i, t in enumerate(test)}


def task_cfg(cfg: IRLExperiment, task: Task) -> IRLExperiment:
    """``cfg`` with ``task`` as its family's one expert task (and as its ``transfer_task``: a policy trained on a
    recovered reward is judged there)."""
    meta = cfg.meta_irl
    family = FamilySettings(task=task, horizon=meta.horizon, expert_iters=meta.expert_iters, iters=meta.iters,
                            transfer_task=task)  # fmt: skip
    return cfg.model_copy(update={"irl": cfg.irl.model_copy(update={"families": {meta.family: family}})})


def task_identity(cfg: IRLExperiment, task: Task) -> dict[str, Any]:
    meta = cfg.meta_irl
    return {"family": meta.family, "task": task, "horizon": meta.horizon, "expert_iters": meta.expert_iters,
            "explore": meta.explore, "demos": meta.recorded_demos,
            "ppo": cfg.ppo_of(meta.family).model_dump(mode="json")}  # fmt: skip


def task_experts(cfg: IRLExperiment, run_dir: Path, tasks: dict[str, Task]) -> dict[str, dict[str, Any]]:
    """Every task's ``task.json`` (expert and random returns), training the experts not yet kept."""
    from drml_ray.irl.meta_results import read_task

    meta, records = cfg.meta_irl, {}
    for name, task in tasks.items():
        record = read_task(run_dir / TASKS_DIR / name / TASK_FILE, task_identity(cfg, task))
        if record is not None:
            records[name] = record
    todo = [name for name in tasks if name not in records]
    print(f"[drml] meta-irl: {len(tasks)} {meta.family} tasks, {len(todo)} experts to train "
          f"({meta.expert_iters} PPO iterations each)", flush=True)  # fmt: skip
    if todo:
        jobs = [Job(f"{name} expert", "task_expert", (task_cfg(cfg, tasks[name]).model_dump(mode="json"), meta.family,
                                                      f"{name} expert {tasks[name]}")) for name in todo]  # fmt: skip
        with pool(cfg, len(jobs), "meta-irl experts") as workers:
            results = workers.map(jobs, lambda i, r: f"true return {r['return']:.1f}")
        for name, result in zip(todo, results, strict=True):
            folder = run_dir / TASKS_DIR / name
            write_episodes(folder / DEMOS_FILE, result["episodes"])
            random = random_return(meta.family, meta.horizon, tasks[name], cfg.irl.eval_episodes)
            returns = [ep.ret for ep in result["episodes"]]
            records[name] = {"identity": task_identity(cfg, tasks[name]), "return": result["return"],
                             "random_return": random, "demo_returns": returns}  # fmt: skip
            atomic_write_json(folder / TASK_FILE, records[name])
    return records


def task_data(cfg: IRLExperiment, run_dir: Path, name: str, task: Task, demos: int) -> tuple[RewardTask, list[Episode]]:
    """A task's first ``demos`` demonstrations against ``meta_irl.negatives`` random episodes (returned too: the
    states the recovered reward's correlation with the true one is measured on)."""
    meta = cfg.meta_irl
    episodes = read_episodes(run_dir / TASKS_DIR / name / DEMOS_FILE, demos)
    negatives = random_episodes(family_env(meta.family, meta.horizon, task), meta.negatives, 30_000)
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + zlib.crc32(name.encode()))
    data = reward_task(episodes, negatives, meta.horizon, meta.coverage, meta.coverage_margin, generator)
    return data, negatives


def init_budget(cfg: IRLExperiment) -> dict[str, Any]:
    """What the initialisations depend on."""
    m = cfg.meta_irl
    evaluation = {"test_tasks", "demos", "adapt_steps", "methods", "iters", "seeds", "workers"}
    disc, gamma = cfg.disc_of("airl"), cfg.ppo_of(m.family).gamma
    training = {"seed": cfg.seed, "hidden": disc.hidden, "batch": disc.batch, "gamma": gamma}
    return m.model_dump(mode="json", exclude=evaluation) | training


def initialisations(cfg: IRLExperiment, run_dir: Path, tasks: dict[str, Task]) -> dict[str, dict[str, torch.Tensor]]:
    """Reptile's and the pooled network's weights, trained on the training tasks unless kept with this budget."""
    m, budget, folder = cfg.meta_irl, init_budget(cfg), run_dir / "rewards" / "meta_irl"
    kept = {k: load_state(folder / f"{k}.pt") for k in ("meta", "multitask") if (folder / f"{k}.pt").exists()}
    if len(kept) == 2 and all(state.get("budget") == budget for state in kept.values()):
        return {k: state["weights"] for k, state in kept.items()}
    train = [task_data(cfg, run_dir, n, t, m.train_demos)[0] for n, t in tasks.items() if n.startswith("train")]
    obs_dim, gamma, hidden, batch = train[0].expert.obs.shape[1], budget["gamma"], budget["hidden"], budget["batch"]
    net, generator = new_reward_net(obs_dim, list(hidden), gamma, cfg.seed), torch.Generator()
    began = time.perf_counter()
    print(f"[drml] meta-irl: Reptile over {len(train)} tasks ({m.meta_iters} outer steps × {m.meta_batch} tasks × "
          f"{m.inner_steps} {m.optimizer} steps)", flush=True)  # fmt: skip
    inits = {"meta": reptile(net, train, m.meta_iters, m.meta_batch, m.inner_steps, m.inner_lr, m.meta_lr,
                             batch, generator.manual_seed(cfg.seed), m.optimizer)}  # fmt: skip
    net = new_reward_net(obs_dim, list(hidden), gamma, cfg.seed)
    steps = m.meta_iters * m.inner_steps
    inits["multitask"] = adapt_reward(net, pooled(train), [steps], m.inner_lr, batch,
                                      generator.manual_seed(cfg.seed), m.optimizer)[0]  # fmt: skip
    for name, weights in inits.items():
        save_state(folder / f"{name}.pt", {"weights": weights, "budget": budget})
    print(f"[drml] meta-irl: initialisations trained in {time.perf_counter() - began:.0f} s -> {folder}", flush=True)
    return inits


# --- the cells: adapt on a held-out task, judge the reward with a fresh PPO policy ------------------------


def cell_budget(cfg: IRLExperiment) -> dict[str, Any]:
    """What every kept cell must have been measured with to be reused."""
    m = cfg.meta_irl
    return init_budget(cfg) | {"test_tasks": m.test_tasks, "adapt_steps": m.adapt_steps, "iters": m.iters,
                               "eval_episodes": cfg.irl.eval_episodes, "disc": disc_budget(cfg, "airl"),
                               "ppo": cfg.ppo_of(m.family).model_dump(mode="json")}  # fmt: skip


def adapted_job(cfg: IRLExperiment, run_dir: Path, key: tuple[str, int, int, str], task: Task,
                data: tuple[RewardTask, list[Episode]], init: dict[str, torch.Tensor] | None,
                ) -> tuple[Job, list[float]]:  # fmt: skip
    """Adapt ``init`` (``None``: a fresh network) on the task's ``data`` (:func:`task_data`; on the driver: a few
    plain-torch steps), and the job that trains a fresh PPO policy on the reward after each of
    ``[0, *adapt_steps]``; with the rewards' correlations with the true reward."""
    m, (_, _, seed, name), (data, negatives), disc = cfg.meta_irl, key, data, cfg.disc_of("airl")
    net = new_reward_net(data.expert.obs.shape[1], list(disc.hidden), cfg.ppo_of(m.family).gamma, seed)
    if init is not None:
        net.load_state_dict(init)
    generator = torch.Generator().manual_seed(seed * 1_000 + int(name.removeprefix("test")))
    rewards = adapt_reward(net, data, [0, *m.adapt_steps], m.inner_lr, disc.batch, generator, m.optimizer)
    correlations = []
    for weights in rewards:
        net.load_state_dict(weights)
        correlations.append(reward_correlation(net, negatives))
    args = (task_cfg(cfg, task).model_dump(mode="json"), m.family, rewards, seed, str(run_dir / TASKS_DIR / name))
    return Job("/".join(map(str, key)), "reward_policies", args), correlations


def airl_job(cfg: IRLExperiment, run_dir: Path, key: tuple[str, int, int, str], task: Task) -> Job:
    """Adversarial AIRL from scratch on the task's first demonstrations, its ``g`` then judged like the others'."""
    _, demos, seed, name = key
    args = (task_cfg(cfg, task).model_dump(mode="json"), cfg.meta_irl.family, "airl", demos, seed,
            str(run_dir / TASKS_DIR / name), True)  # fmt: skip
    return Job("/".join(map(str, key)), "adversarial", args)


def run_rl_meta_irl(cfg: IRLExperiment, run_dir: str | Path) -> dict[str, Any]:
    """Experts, initialisations, every (method, demonstrations, seed, held-out task) cell, then ``meta_irl.json``."""
    from drml_ray.irl.meta_results import read_cells, write_meta_irl_outputs

    began, m = time.perf_counter(), cfg.meta_irl
    run_dir = open_run(run_dir, cfg, marker=None, free=FREE_KEYS)
    tasks = draw_tasks(cfg)
    records = task_experts(cfg, run_dir, tasks)
    inits = initialisations(cfg, run_dir, tasks)
    cells_path, budget = run_dir / CELLS_FILE, cell_budget(cfg)
    saved = read_cells(cells_path)
    cells = saved.get("cells", {}) if saved.get("budget") == budget else {}
    keys = [(method, n, seed, name) for method in m.methods for n in m.demos for seed in m.seeds
            for name in tasks if name.startswith("test") and f"{method}/{n}/{seed}/{name}" not in cells]  # fmt: skip
    print(f"[drml] meta-irl -> {run_dir}: {', '.join(m.methods)} on {m.test_tasks} held-out tasks, {m.demos} "
          f"demonstrations, seeds {m.seeds}; {len(keys)} cells to run ({len(cells)} kept)", flush=True)  # fmt: skip
    data = {(name, n): task_data(cfg, run_dir, name, tasks[name], n)
            for _, n, _, name in keys if name.startswith("test")}  # fmt: skip
    jobs, correlations = [], {}
    for key in keys:
        method, n, _, name = key
        if method == "airl":
            jobs.append(airl_job(cfg, run_dir, key, tasks[name]))
        else:
            job, correlations[key] = adapted_job(cfg, run_dir, key, tasks[name], data[name, n], inits.get(method))
            jobs.append(job)

    def keep(index: int, result: Any) -> str:
        key = keys[index]
        if key[0] == "airl":
            cell = {"policy": result["return"], "reward": [result["transfer"]["reward"]["return"]]}
        else:
            cell = {"reward": result, "correlation": correlations[key]}
        cells["/".join(map(str, key))] = cell
        atomic_write_json(cells_path, {"budget": budget, "cells": cells})
        return f"true return {' -> '.join(f'{r:.1f}' for r in cell['reward'])} (expert {records[key[3]]['return']:.1f})"

    if jobs:
        with pool(cfg, len(jobs), "meta-irl") as workers:
            workers.map(jobs, keep)
    return write_meta_irl_outputs(cfg, run_dir, records, cells, time.perf_counter() - began)
