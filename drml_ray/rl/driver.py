"""``drml rl meta-train`` and ``drml rl meta-eval``: the Ray side of meta-RL (``drml rl transfer`` is in
:mod:`drml_ray.rl.transfer`).

Distribution: a pool of ``workers`` Ray actors (:class:`RLWorker`), each owning RLlib PPO Algorithms
(:class:`~drml_ray.rl.ppo.PPOTaskLearner`, one per task family and policy kind) that are built once
and reused for every task. Per Reptile meta-step:

1. the driver puts theta (the RLModule weights, policy and value networks: ~38 KB for Nav2D's
   64x64 MLPs) in the object store once;
2. the meta-batch's tasks are dealt round-robin to the actors; each sets theta and the task on its
   learner, resets Adam, runs ``inner_iters`` PPO iterations, and returns the *sum* of its tasks'
   meta-gradients ``theta - phi``;
3. the driver averages them and steps: ``theta += epsilon * mean(phi - theta)``.

A meta-step so moves ``2 x workers x |theta|`` bytes; a meta-batch of 8 tasks on 8 actors adapts all
at once. Tasks are drawn from the family with ``numpy`` streams seeded by (experiment seed, meta-step)
for meta-training and (experiment seed, "held out") for evaluation, so the two never share a task.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray  # RAY
import torch
import yaml

from drml_ray.config import RLExperiment, dump_config
from drml_ray.ray_env import ensure_ray
from drml_ray.rl.envs import ENVS, Task
from drml_ray.rl.ppo import Arch, PPOTaskLearner
from drml_ray.rl.weights import Weights, reptile_sum, reptile_update
from drml_ray.runs import RunExistsError, atomic_write_json, atomic_write_text, prepare_run_dir

META_TRAIN_FILE = "meta_train.json"
ADAPTATION_FILE = "adaptation.json"
CELLS_FILE = "adaptation_cells.json"
HELDOUT_STREAM = 7_777
VALIDATION_STREAM = 5_555
WEIGHTS_FILE = "weights.pt"
LAST_WEIGHTS_FILE = "last_weights.pt"

OnProgress = Callable[[int, float], None]
"""Called after each held-out check of meta-training: ``(meta_step, mean return after adaptation)``."""


class RLWorker:
    """One process's PPO learners (one per task family), built on first use and reused."""

    def __init__(self, env: dict, ppo: dict, seed: int, threads: int):
        self.env, self.ppo, self.seed, self.threads = env, ppo, seed, threads
        self.learners: dict[str, PPOTaskLearner] = {}

    def learner(self, family: str | None = None) -> PPOTaskLearner:
        family = family or self.env["family"]
        if family not in self.learners:
            self.learners[family] = PPOTaskLearner(self.env, self.ppo, self.seed, self.threads, family)
        return self.learners[family]

    def fresh(self, seed: int, arch: Arch = "ff", family: str | None = None) -> Weights:
        return self.learner(family).fresh_weights(seed, arch)

    def reptile(self, theta: Weights, tasks: list[Task], iterations: int, seed: int) -> tuple[Weights, int]:
        """The summed Reptile meta-gradient of ``tasks``, each adapted ``iterations`` PPO iterations."""
        torch.manual_seed(seed)
        learner = self.learner()
        adapted = [learner.adapt(theta, task, iterations, episodes=0)[1] for task in tasks]
        return reptile_sum(theta, adapted)

    def curve(self, weights: Weights, task: Task, iterations: int, episodes: int, seed: int, arch: Arch = "ff",
              family: str | None = None) -> list[float]:  # fmt: skip
        """Returns before and after each of ``iterations`` PPO iterations from ``weights`` on ``task``."""
        torch.manual_seed(seed)
        return self.learner(family).adapt(weights, task, iterations, episodes, arch)[0]

    def train_on(self, weights: Weights, task: Task | None, iterations: int, seed: int, arch: Arch = "ff",
                 family: str | None = None, progress: str | None = None) -> Weights:  # fmt: skip
        """``iterations`` PPO iterations on ``task`` (``None``: a new random task every episode)."""
        torch.manual_seed(seed)
        learner = self.learner(family)
        learner.set_weights(weights, arch)
        if task is None:
            learner.randomise_tasks(seed, arch)
        else:
            learner.set_task(task, arch)
        learner.train(iterations, arch, progress)
        return learner.get_weights(arch)

    def oracle_curve(self, task: Task, seed: int, iterations: int, more: int, episodes: int) -> list[float]:
        """A per-task oracle: ``iterations`` PPO iterations from scratch, then the curve of ``more``."""
        trained = self.train_on(self.fresh(seed), task, iterations, seed)
        return self.curve(trained, task, more, episodes, seed)


def make_workers(cfg: RLExperiment, count: int) -> list[Any]:
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # RAY

    ensure_ray()
    remote = ray.remote(RLWorker).options(  # RAY
        num_cpus=cfg.meta.cpus_per_worker,
        # inside a Tune trial the actors reserve their own CPUs instead of joining the trial's group
        scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None),
    )
    env, ppo = cfg.env.model_dump(mode="json"), cfg.ppo.model_dump(mode="json")
    return [remote.remote(env, ppo, cfg.seed, cfg.meta.cpus_per_worker) for _ in range(count)]


def run_jobs(workers: list[Any], jobs: list[tuple[str, tuple, dict]], on_done: Callable[[int, Any], None]) -> None:
    """Run ``(method, args, kwargs)`` jobs on the actor pool, each worker one job at a time; ``on_done(i, result)``.

    A failed job does not stop the others (their results are kept as they finish); the first failure
    is raised once every job has ended."""
    pending: dict[Any, tuple[int, Any]] = {}
    queue = list(enumerate(jobs))
    idle = list(workers)
    failures: list[Exception] = []
    while queue or pending:
        while queue and idle:
            index, (method, args, kwargs) = queue.pop(0)
            worker = idle.pop()
            pending[getattr(worker, method).remote(*args, **kwargs)] = (index, worker)  # RAY
        [ready], _ = ray.wait(list(pending), num_returns=1)  # RAY
        index, worker = pending.pop(ready)
        try:
            result = ray.get(ready)  # RAY
        except ray.exceptions.RayError as err:  # RAY
            print(f"[drml] job {index} ({jobs[index][0]}) failed: {err}", flush=True)
            failures.append(err)
            continue  # the worker may be broken: it takes no more jobs
        idle.append(worker)
        on_done(index, result)
    if failures:
        raise failures[0]


def train_tasks(cfg: RLExperiment, step: int) -> list[Task]:
    """The meta-batch of ``step``: a function of the experiment seed and the step only."""
    return ENVS[cfg.env.family].sample_tasks(cfg.meta.meta_batch, np.random.default_rng([cfg.seed, step]))


def heldout_tasks(cfg: RLExperiment) -> list[Task]:
    """The evaluation tasks: a stream meta-training never draws from."""
    return ENVS[cfg.env.family].sample_tasks(cfg.eval.tasks, np.random.default_rng([cfg.seed, HELDOUT_STREAM]))


def validation_tasks(cfg: RLExperiment, n: int) -> list[Task]:
    """The tasks meta-training checks itself on, and Tune scores trials by: a third stream, neither
    trained on nor evaluated, so picking a meta-step or a hyper-parameter never looks at the test tasks."""
    return ENVS[cfg.env.family].sample_tasks(n, np.random.default_rng([cfg.seed, VALIDATION_STREAM]))


def _check_config(run_dir: Path, cfg: RLExperiment) -> None:
    """Refuse a run directory written by a different environment / PPO / meta-training setup."""
    path = run_dir / "config.yaml"
    keys = {"env": True, "ppo": True, "seed": True, "meta": {"methods"} ^ set(cfg.meta.model_fields)}
    mine = cfg.model_dump(mode="json", include=keys)  # meta.methods may grow: a rerun trains what is missing
    if path.exists():
        theirs = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        try:
            theirs = RLExperiment.model_validate({"name": "x", **{k: v for k, v in theirs.items() if k in keys}})
            theirs = theirs.model_dump(mode="json", include=keys)
        except ValueError:
            pass
        if theirs != mine:
            raise RunExistsError(f"{run_dir} holds an RL run of a different env/ppo/meta setup ({path}); "
                                 "pass --overwrite to start over, or --output-dir to run elsewhere")  # fmt: skip
    atomic_write_text(path, dump_config(cfg))


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, tmp)
    tmp.replace(path)


def load_weights(path: str | Path) -> Weights:
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved policy weights")
    data = torch.load(path, map_location="cpu", weights_only=False)
    return data.get("weights", data)


# --- meta-training -------------------------------------------------------------------------------


def meta_train_reptile(cfg: RLExperiment, run_dir: Path, workers: list[Any], on_progress: OnProgress | None) -> dict:
    """Reptile over PPO; checkpoints ``meta/checkpoint.pt`` every ``eval_every`` steps.

    ``meta/weights.pt`` is theta at the best check on the validation tasks (model selection, as a
    fine-tuning run keeps its best checkpoint by dev F1; ``record["best"]`` names the step) and
    ``meta/last_weights.pt`` theta after the last meta-step.
    """
    meta = cfg.meta
    state_path = run_dir / "meta" / "checkpoint.pt"
    if state_path.exists():
        saved = torch.load(state_path, map_location="cpu", weights_only=False)
        theta, start, record = saved["theta"], saved["step"], saved["record"]
        print(f"[drml] meta: resuming at meta-step {start} from {state_path}")
    else:
        theta, start, record = ray.get(workers[0].fresh.remote(cfg.seed)), 0, {"checks": [], "step_s": []}  # RAY
    check_tasks = validation_tasks(cfg, max(1, len(workers)))
    frozen = () if meta.meta_log_std else tuple(k for k in theta if k.endswith("log_std"))

    def check(step: int) -> None:
        """Adapt to the check tasks for ``eval.adapt_iters`` PPO iterations (the same count whatever
        ``meta.inner_iters`` is, so checks compare across Tune trials); the score is the mean return over
        those iterations, which rewards adapting fast, not only far."""
        ref = ray.put(theta)  # RAY
        iters = cfg.eval.adapt_iters
        refs = [workers[i % len(workers)].curve.remote(ref, t, iters, cfg.eval.episodes, cfg.seed)
                for i, t in enumerate(check_tasks)]  # fmt: skip  # RAY
        curves = ray.get(refs)  # RAY
        after = [statistics.fmean(c[i] for c in curves) for i in range(iters + 1)]
        score = statistics.fmean(after[1:])
        record["checks"].append({"step": step, "return_before": after[0], "return_after": after[-1],
                                 "return_after_each": after[1:], "return_mean_adapted": score})  # fmt: skip
        best = record.get("best")
        improved = best is None or score > best["return_mean_adapted"]
        if improved:  # written before Tune hears of it: a trial may be stopped at its report
            record["best"] = {"step": step, "return_mean_adapted": score}
            _save(run_dir / "meta" / WEIGHTS_FILE, {"weights": theta, "family": cfg.env.family, "arch": "ff"})
        print(f"[drml] meta-step {step}/{meta.meta_steps}: validation return {after[0]:.1f} before, "
              f"{' / '.join(f'{r:.1f}' for r in after[1:])} after 1..{iters} PPO iteration(s)"
              f"{' (best so far)' if improved else ''}", flush=True)  # fmt: skip
        if on_progress:
            on_progress(step, score)

    if start == 0:
        check(0)
    for step in range(start, meta.meta_steps):
        began = time.perf_counter()
        ref = ray.put(theta)  # RAY
        tasks = train_tasks(cfg, step)
        shares = [tasks[i :: len(workers)] for i in range(len(workers))]
        refs = [w.reptile.remote(ref, share, meta.inner_iters, cfg.seed * 100_003 + step)
                for w, share in zip(workers, shares, strict=True) if share]  # fmt: skip  # RAY
        epsilon = meta.meta_lr * (1 - step / meta.meta_steps) if meta.meta_lr_decay else meta.meta_lr
        theta = reptile_update(theta, ray.get(refs), epsilon, frozen)  # RAY
        record["step_s"].append(time.perf_counter() - began)
        done = step + 1
        if done == meta.meta_steps:
            _save(run_dir / "meta" / LAST_WEIGHTS_FILE, {"weights": theta, "family": cfg.env.family, "arch": "ff"})
        if done % meta.eval_every == 0 or done == meta.meta_steps:
            check(done)
            _save(state_path, {"theta": theta, "step": done, "record": record})
    steps = record["step_s"]
    return record | {"seconds_per_meta_step": statistics.fmean(steps) if steps else None}


def train_baselines(cfg: RLExperiment, run_dir: Path, workers: list[Any]) -> dict[str, Any]:
    """``multitask`` and ``rl2``: PPO over a new random task every episode, the same environment steps as Reptile."""
    meta = cfg.meta
    iterations = meta.baseline_iters or meta.meta_steps * meta.meta_batch * meta.inner_iters
    todo = [m for m in ("multitask", "rl2") if m in meta.methods and not (run_dir / m / WEIGHTS_FILE).exists()]
    results: dict[str, Any] = {}
    if not todo:
        return results
    print(f"[drml] training {', '.join(todo)}: {iterations} PPO iterations over randomised tasks", flush=True)
    inits = {m: ray.get(workers[0].fresh.remote(cfg.seed, "rl2" if m == "rl2" else "ff")) for m in todo}  # RAY
    jobs = [("train_on", (inits[m], None, iterations, cfg.seed, "rl2" if m == "rl2" else "ff"), {"progress": m})
            for m in todo]  # fmt: skip
    began = time.perf_counter()

    def done(index: int, weights: Weights) -> None:
        method = todo[index]
        arch = "rl2" if method == "rl2" else "ff"
        _save(run_dir / method / WEIGHTS_FILE, {"weights": weights, "family": cfg.env.family, "arch": arch})
        results[method] = {"iterations": iterations, "wall_s": time.perf_counter() - began}
        print(f"[drml] {method}: done in {results[method]['wall_s']:.0f} s", flush=True)

    run_jobs(workers, jobs, done)
    return results


def run_rl_meta_train(
    cfg: RLExperiment, run_dir: str | Path, *, overwrite: bool = False, on_progress: OnProgress | None = None
) -> dict[str, Any]:
    """Meta-train Reptile over PPO and train the baselines; ``meta_train.json`` is written last."""
    run_dir = prepare_run_dir(run_dir, overwrite=overwrite, marker=META_TRAIN_FILE)
    _check_config(run_dir, cfg)
    meta = cfg.meta
    print(f"[drml] rl meta-train '{cfg.name}' -> {run_dir}: {', '.join(meta.methods)} on {cfg.env.family}; "
          f"{meta.meta_steps} meta-steps x {meta.meta_batch} tasks x {meta.inner_iters} PPO iteration(s) "
          f"({cfg.ppo.train_batch} steps each) on {meta.workers} Ray actors", flush=True)  # fmt: skip
    began = time.perf_counter()
    workers = make_workers(cfg, meta.workers)
    results: dict[str, Any] = {}
    try:
        if "meta" in meta.methods:
            results["meta"] = meta_train_reptile(cfg, run_dir, workers, on_progress)
        results.update(train_baselines(cfg, run_dir, workers))
    finally:
        for w in workers:
            ray.kill(w)  # RAY
    results["wall_s"] = time.perf_counter() - began
    atomic_write_json(run_dir / META_TRAIN_FILE, results)
    print(f"[drml] rl meta-training done in {results['wall_s']:.0f} s; next: drml rl meta-eval with the same "
          "--output-dir", flush=True)  # fmt: skip
    return results


# --- adaptation evaluation -----------------------------------------------------------------------


def trained_starts(cfg: RLExperiment, run_dir: Path, init: str | None) -> dict[str, Weights]:
    """The trained starting points ``eval.methods`` needs, each from its ``weights.pt``."""
    found: dict[str, Weights] = {}
    for method in cfg.eval.methods:
        if method in ("scratch", "oracle"):
            continue
        path = Path(init) if method == "meta" and init else run_dir / method / WEIGHTS_FILE
        try:
            found[method] = load_weights(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path}: no trained {method} policy; run `drml rl meta-train` with the same --output-dir "
                f"(meta.methods: [{method}]){' or pass --init PATH' if method == 'meta' else ''}, "
                f"or drop {method} from eval.methods"
            ) from None
        if cfg.eval.reset_log_std:
            found[method] = {k: torch.zeros_like(v) if k.endswith("log_std") else v for k, v in found[method].items()}
    return found


def summarise(curves: dict[str, dict[int, list[list[float]]]], adapt_iters: int) -> dict[str, Any]:
    """``{method: {seed: [curve per task]}}`` -> RLlib-style metrics per method, means over tasks then seeds."""
    names = ["episode_return_mean"] + [f"episode_return_mean_adapt_{i}" for i in range(1, adapt_iters + 1)]
    out: dict[str, Any] = {}
    for method, by_seed in curves.items():
        seeds = []
        for seed, per_task in sorted(by_seed.items()):
            means = [statistics.fmean(c[i] for c in per_task) for i in range(adapt_iters + 1)]
            row = dict(zip(names, means, strict=True))
            seeds.append({"seed": seed, "tasks": len(per_task)} | row | {"adaptation_delta": means[-1] - means[0]})
        summary = {name: statistics.fmean(s[name] for s in seeds) for name in names + ["adaptation_delta"]}
        summary["std"] = {n: statistics.pstdev([s[n] for s in seeds]) for n in names}
        out[method] = summary | {"seeds": seeds}
    if "scratch" in out and "oracle" in out:
        oracle = out["oracle"]["episode_return_mean"]
        for method in ("meta", "multitask", "rl2"):
            if method in out:
                out[method]["gap_closed"] = {
                    name: (out[method][name] - out["scratch"][name]) / (oracle - out["scratch"][name])
                    if oracle != out["scratch"][name] else None
                    for name in names
                }  # fmt: skip
    return out


def run_rl_meta_eval(cfg: RLExperiment, run_dir: str | Path, *, init: str | None = None) -> dict[str, Any]:
    """Adaptation curves on held-out tasks for every method and seed; writes ``adaptation.json`` (+ .md, .png).

    Each finished (method, seed, task) curve is kept in ``adaptation_cells.json`` at once, so an interrupted
    evaluation resumes where it stopped."""
    from drml_ray.rl.results import write_adaptation_outputs

    run_dir = Path(run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(run_dir, cfg)
    ev = cfg.eval
    inits = trained_starts(cfg, run_dir, init)
    tasks = heldout_tasks(cfg)
    budget = {"tasks": tasks, "adapt_iters": ev.adapt_iters, "episodes": ev.episodes, "oracle_iters": ev.oracle_iters,
              "meta_init": str(Path(init).resolve()) if init else None, "reset_log_std": ev.reset_log_std}  # fmt: skip
    cells_path = run_dir / CELLS_FILE
    cells: dict[str, Any] = {}
    if cells_path.exists():
        saved = yaml.safe_load(cells_path.read_text(encoding="utf-8"))
        if saved.get("budget") == budget:
            cells = saved["cells"]
        else:
            print(f"[drml] {cells_path} was measured with another budget (tasks, iterations, episodes, init): "
                  "its curves are not reused", flush=True)  # fmt: skip
    keys = [
        (method, seed, t)
        for method in ev.methods
        for seed in (ev.seeds[: ev.oracle_seeds] if method == "oracle" else ev.seeds)
        for t in range(len(tasks))
        if f"{method}/{seed}/{t}" not in cells
    ]
    print(f"[drml] rl meta-eval -> {run_dir}: {len(tasks)} held-out {cfg.env.family} tasks, methods "
          f"{', '.join(ev.methods)}, seeds {ev.seeds}; {len(keys)} curves to run ({len(cells)} kept)",
          flush=True)  # fmt: skip
    workers = make_workers(cfg, ev.workers) if keys else []
    began = time.perf_counter()
    try:
        scratch_seeds = sorted({seed for method, seed, _ in keys if method == "scratch"})
        fresh = dict(
            zip(scratch_seeds, ray.get([workers[0].fresh.remote(s) for s in scratch_seeds]), strict=True)
        )  # RAY
        jobs = []
        for method, seed, t in keys:
            job_seed = seed * 1_000 + t  # PPO's sampling seed: the same for every method on a (seed, task)
            if method == "oracle":
                jobs.append(("oracle_curve", (tasks[t], job_seed, ev.oracle_iters, ev.adapt_iters, ev.episodes), {}))
            else:
                start = fresh[seed] if method == "scratch" else inits[method]
                arch = "rl2" if method == "rl2" else "ff"
                jobs.append(("curve", (start, tasks[t], ev.adapt_iters, ev.episodes, job_seed, arch), {}))

        def done(index: int, curve: list[float]) -> None:
            key = "/".join(map(str, keys[index]))
            cells[key] = curve
            atomic_write_text(cells_path, yaml.safe_dump({"budget": budget, "cells": cells}, sort_keys=True))
            print(f"[drml] {key}: {' -> '.join(f'{r:.1f}' for r in curve)} "
                  f"({len(cells)} curves, {time.perf_counter() - began:.0f} s)", flush=True)  # fmt: skip

        run_jobs(workers, jobs, done)
    finally:
        for w in workers:
            ray.kill(w)  # RAY
    curves: dict[str, dict[int, list[list[float]]]] = {}
    for key, curve in cells.items():
        method, seed, _ = key.split("/")
        if method in ev.methods:
            curves.setdefault(method, {}).setdefault(int(seed), []).append(curve)
    table = summarise({m: curves[m] for m in ev.methods if m in curves}, ev.adapt_iters)
    atomic_write_json(run_dir / ADAPTATION_FILE, table)
    outputs = write_adaptation_outputs(table, run_dir, ev.adapt_iters)
    print(outputs["table"], flush=True)
    return table
