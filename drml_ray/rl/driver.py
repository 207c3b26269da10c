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

import torch
import yaml

from drml_ray.checkpoints import load_state, save_state
from drml_ray.errors import UserError
from drml_ray.metagrad import meta_lr_at
from drml_ray.rl.config import RLExperiment
from drml_ray.rl.envs import ENVS, Task, task_stream
from drml_ray.rl.ppo import Arch, PPOTaskLearner
from drml_ray.rl.weights import Weights, map_weights, reptile_sum, reptile_update
from drml_ray.runtime.executor import ActorExecutor, Job, actor_factory
from drml_ray.runtime.registry import Prepared
from drml_ray.runtime.rundir import META_TRAIN_FILE, open_run
from drml_ray.runtime.runfiles import atomic_write_json, atomic_write_text

ADAPTATION_FILE = "adaptation.json"
CELLS_FILE = "adaptation_cells.json"
WEIGHTS_FILE = "weights.pt"
LAST_WEIGHTS_FILE = "last_weights.pt"
FREE_KEYS = ("meta.methods", "eval", "transfer", "tune")
"""Keys a later ``drml rl meta-train`` (more methods) or ``meta-eval`` may change in a run directory."""

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
        learner = self.learner()
        learner.start_job(seed)
        adapted = [learner.adapt(theta, task, iterations, episodes=0)[1] for task in tasks]
        return reptile_sum(theta, adapted)

    def curve(self, weights: Weights, task: Task, iterations: int, episodes: int, seed: int, arch: Arch = "ff",
              family: str | None = None) -> list[float]:  # fmt: skip
        """Returns before and after each of ``iterations`` PPO iterations from ``weights`` on ``task``."""
        learner = self.learner(family)
        learner.start_job(seed, arch)
        return learner.adapt(weights, task, iterations, episodes, arch)[0]

    def train_on(self, weights: Weights, task: Task | None, iterations: int, seed: int, arch: Arch = "ff",
                 family: str | None = None, progress: str | None = None) -> Weights:  # fmt: skip
        """``iterations`` PPO iterations on ``task`` (``None``: a new random task every episode)."""
        learner = self.learner(family)
        learner.start_job(seed, arch)
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

    def transfer(self, cfg_json: dict, seed: int) -> dict[str, Any]:
        """One seed of ``drml rl transfer`` on learners of its own (built and stopped here, so that a seed's
        curves never depend on what this process ran before): source training, then the target curves
        from its weights and from scratch, and the source policy's return on its own task."""
        cfg = RLExperiment.model_validate(cfg_json)
        tr, own = cfg.transfer, RLWorker(self.env, self.ppo, self.seed, self.threads)
        assert tr is not None
        source, target = tr.source_family or cfg.env.family, tr.target_family or cfg.env.family
        try:
            trained = own.train_on(own.fresh(seed, family=source), tr.source, tr.source_iters, seed, family=source)
            fresh = own.fresh(seed, family=target)
            mapping = tr.mapping
            start = map_weights(trained, fresh, mapping and mapping.observation, mapping and mapping.action)
            return {"transfer": own.curve(start, tr.target, tr.target_iters, tr.episodes, seed, family=target),
                    "scratch": own.curve(fresh, tr.target, tr.target_iters, tr.episodes, seed, family=target),
                    "source_return": own.curve(trained, tr.source, 0, tr.episodes, seed, family=source)[0]}  # fmt: skip
        finally:
            for learner in own.learners.values():
                learner.stop()


def actor_pool(cfg: RLExperiment, count: int, label: str | None = None) -> ActorExecutor:
    """``count`` :class:`RLWorker` actors of ``meta.cpus_per_worker`` CPUs."""
    cpus = cfg.meta.cpus_per_worker
    make = actor_factory(RLWorker, cfg.env.model_dump(mode="json"), cfg.ppo.model_dump(mode="json"), cfg.seed, cpus,
                         cpus=cpus)  # fmt: skip
    return ActorExecutor(make, count, label=label)


def train_tasks(cfg: RLExperiment, step: int) -> list[Task]:
    """The meta-batch of ``step``: a function of the experiment seed and the step only."""
    return ENVS[cfg.env.family].sample_tasks(cfg.meta.meta_batch, task_stream(cfg.seed, "train", step))


def heldout_tasks(cfg: RLExperiment) -> list[Task]:
    """The evaluation tasks: a stream meta-training never draws from."""
    return ENVS[cfg.env.family].sample_tasks(cfg.eval.tasks, task_stream(cfg.seed, "test"))


def validation_tasks(cfg: RLExperiment, n: int) -> list[Task]:
    """The tasks meta-training checks itself on, and Tune scores trials by: a third stream, neither
    trained on nor evaluated, so picking a meta-step or a hyper-parameter never looks at the test tasks."""
    return ENVS[cfg.env.family].sample_tasks(n, task_stream(cfg.seed, "validation"))


def load_weights(path: str | Path, family: str | None = None) -> Weights:
    """Policy weights from a ``weights.pt`` (or its folder), as ``drml rl meta-train`` writes them; with
    ``family``, refused if the file says it was trained on another task family."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(f"{path}: no saved policy weights")
    data = load_state(path)
    weights = data.get("weights", data) if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise UserError(f"{path}: not policy weights (a name -> tensor dict, as drml rl meta-train writes)")
    trained_on = data.get("family") if isinstance(data, dict) else None
    if family is not None and trained_on not in (None, family):
        raise UserError(f"{path}: a policy for {trained_on} tasks; this experiment's env.family is {family}")
    return weights


# --- meta-training -------------------------------------------------------------------------------


def reptile_step(cfg: RLExperiment, theta: Weights, step: int, pool: ActorExecutor) -> Weights:
    """One Reptile meta-step: the meta-batch of ``step`` adapted on the actors (``inner_iters`` PPO iterations
    each), then ``theta + epsilon * mean(phi - theta)`` with epsilon decayed over the meta-steps; the
    exploration noise stays put unless ``meta.meta_log_std``."""
    meta, ref, tasks = cfg.meta, pool.put(theta), train_tasks(cfg, step)
    shares = [tasks[i :: pool.size] for i in range(pool.size)]
    sums = pool.map([Job(f"meta-step {step + 1} tasks {share}", "reptile", (ref, share, meta.inner_iters,
                                                                          cfg.seed * 100_003 + step))
                     for share in shares if share])  # fmt: skip
    frozen = () if meta.meta_log_std else tuple(k for k in theta if k.endswith("log_std"))
    return reptile_update(theta, sums, meta_lr_at(step, meta.meta_steps, meta.meta_lr, meta.meta_lr_decay), frozen)


def validation_check(cfg: RLExperiment, theta: Weights, step: int, pool: ActorExecutor, record: dict) -> bool:
    """Adapt theta to the validation tasks for ``eval.adapt_iters`` PPO iterations (the same count whatever
    ``meta.inner_iters`` is, so checks compare across Tune trials); the score is the mean return over those
    iterations, which rewards adapting fast, not only far. Recorded in ``record``; True if the best so far."""
    ref, iters = pool.put(theta), cfg.eval.adapt_iters
    tasks = validation_tasks(cfg, pool.size)
    curves = pool.map([Job(f"validation task {t}", "curve", (ref, t, iters, cfg.eval.episodes, cfg.seed))
                       for t in tasks])  # fmt: skip
    after = [statistics.fmean(c[i] for c in curves) for i in range(iters + 1)]
    score = statistics.fmean(after[1:])
    record["checks"].append({"step": step, "return_before": after[0], "return_after": after[-1],
                             "return_after_each": after[1:], "return_mean_adapted": score})  # fmt: skip
    best = record.get("best") is None or score > record["best"]["return_mean_adapted"]
    if best:
        record["best"] = {"step": step, "return_mean_adapted": score}
    print(f"[drml] meta-step {step}/{cfg.meta.meta_steps}: validation return {after[0]:.1f} before, "
          f"{' / '.join(f'{r:.1f}' for r in after[1:])} after 1..{iters} PPO iteration(s)"
          f"{' (best so far)' if best else ''}", flush=True)  # fmt: skip
    return best


def meta_train_reptile(cfg: RLExperiment, run_dir: Path, pool: ActorExecutor, on_progress: OnProgress | None) -> dict:
    """Reptile over PPO; checkpoints ``meta/checkpoint.pt`` every ``eval_every`` steps.

    ``meta/weights.pt`` is theta at the best check on the validation tasks (model selection, as a
    fine-tuning run keeps its best checkpoint by dev F1; ``record["best"]`` names the step) and
    ``meta/last_weights.pt`` theta after the last meta-step.
    """
    meta, state_path = cfg.meta, run_dir / "meta" / "checkpoint.pt"
    if state_path.exists():
        saved = load_state(state_path)
        theta, start, record = saved["theta"], saved["step"], saved["record"]
        print(f"[drml] meta: resuming at meta-step {start} from {state_path}")
    else:
        theta, start, record = pool.call("fresh", cfg.seed), 0, {"checks": [], "step_s": []}
    if start == 0:
        _check(cfg, theta, 0, pool, record, run_dir, on_progress)
    for step in range(start + 1, meta.meta_steps + 1):
        began = time.perf_counter()
        theta = reptile_step(cfg, theta, step - 1, pool)
        record["step_s"].append(time.perf_counter() - began)
        if step == meta.meta_steps:
            save_state(run_dir / "meta" / LAST_WEIGHTS_FILE, {"weights": theta, "family": cfg.env.family, "arch": "ff"})
        if step % meta.eval_every == 0 or step == meta.meta_steps:
            _check(cfg, theta, step, pool, record, run_dir, on_progress)
            save_state(state_path, {"theta": theta, "step": step, "record": record})
    steps = record["step_s"]
    return record | {"seconds_per_meta_step": statistics.fmean(steps) if steps else None}


def _check(cfg: RLExperiment, theta: Weights, step: int, pool: ActorExecutor, record: dict, run_dir: Path,
           on_progress: OnProgress | None) -> None:  # fmt: skip
    """A validation check; the best theta so far is saved before Tune hears of it (it may stop the trial)."""
    if validation_check(cfg, theta, step, pool, record):
        save_state(run_dir / "meta" / WEIGHTS_FILE, {"weights": theta, "family": cfg.env.family, "arch": "ff"})
    if on_progress:
        on_progress(step, record["checks"][-1]["return_mean_adapted"])


def train_baselines(cfg: RLExperiment, run_dir: Path, pool: ActorExecutor) -> dict[str, Any]:
    """``multitask`` and ``rl2``: PPO over a new random task every episode, the same environment steps as Reptile."""
    meta = cfg.meta
    iterations = meta.baseline_iters or meta.meta_steps * meta.meta_batch * meta.inner_iters
    todo = [m for m in ("multitask", "rl2") if m in meta.methods and not (run_dir / m / WEIGHTS_FILE).exists()]
    if not todo:
        return {}
    print(f"[drml] training {', '.join(todo)}: {iterations} PPO iterations over randomised tasks", flush=True)
    arch: dict[str, Arch] = {m: "rl2" if m == "rl2" else "ff" for m in todo}
    inits = {m: pool.call("fresh", cfg.seed, arch[m]) for m in todo}
    jobs = [Job(m, "train_on", (inits[m], None, iterations, cfg.seed, arch[m], None, m)) for m in todo]
    began, results = time.perf_counter(), {}

    def done(index: int, weights: Weights) -> str:
        method = todo[index]
        saved = {"weights": weights, "family": cfg.env.family, "arch": arch[method]}
        save_state(run_dir / method / WEIGHTS_FILE, saved)
        results[method] = {"iterations": iterations, "wall_s": time.perf_counter() - began}
        return f"trained in {results[method]['wall_s']:.0f} s"

    pool.map(jobs, done)
    return results


def run_rl_meta_train(
    cfg: RLExperiment, run_dir: str | Path, *, overwrite: bool = False, on_progress: OnProgress | None = None
) -> dict[str, Any]:
    """Meta-train Reptile over PPO and train the baselines; ``meta_train.json`` is written last."""
    meta, began = cfg.meta, time.perf_counter()
    run_dir = open_run(run_dir, cfg, marker=META_TRAIN_FILE, overwrite=overwrite, free=FREE_KEYS)
    print(f"[drml] rl meta-train '{cfg.name}' -> {run_dir}: {', '.join(meta.methods)} on {cfg.env.family}; "
          f"{meta.meta_steps} meta-steps x {meta.meta_batch} tasks x {meta.inner_iters} PPO iteration(s) "
          f"({cfg.ppo.train_batch} steps each) on {meta.workers} Ray actors", flush=True)  # fmt: skip
    results: dict[str, Any] = {}
    with actor_pool(cfg, meta.workers, label="baselines") as pool:
        if "meta" in meta.methods:
            results["meta"] = meta_train_reptile(cfg, run_dir, pool, on_progress)
        results.update(train_baselines(cfg, run_dir, pool))
    results["wall_s"] = time.perf_counter() - began
    atomic_write_json(run_dir / META_TRAIN_FILE, results)
    print(f"[drml] rl meta-training done in {results['wall_s']:.0f} s; next: drml rl meta-eval with the same "
          "--output-dir", flush=True)  # fmt: skip
    return results


# --- drml tune: one trial meta-trains Reptile (no baselines) on its own actors ---------------------------


def prepare_search(cfg: RLExperiment) -> Prepared:
    return Prepared(None, f"meta-RL (Reptile over PPO) on {cfg.env.family}; the held-out return after adaptation "
                    "is the metric")  # fmt: skip


def search_trial(cfg: RLExperiment, trial_dir: Path, shared: None, callbacks: Any) -> None:
    """One trial: Reptile over PPO, reporting the validation return after adaptation at every check
    (``epoch`` = checks so far) with the folder of the best weights."""
    from ray import tune  # RAY

    cfg = cfg.model_copy(update={"meta": cfg.meta.model_copy(update={"methods": ["meta"]})})
    started = time.perf_counter()

    def on_progress(step: int, heldout_return: float) -> None:
        tune.report({"epoch": step / cfg.meta.eval_every, "heldout_return": heldout_return, "meta_step": step,  # RAY
                     "checkpoint_path": str(trial_dir / "run" / "meta"),
                     "train_s": time.perf_counter() - started})  # fmt: skip

    run_rl_meta_train(cfg, trial_dir / "run", on_progress=on_progress)


# --- adaptation evaluation -----------------------------------------------------------------------


def trained_starts(cfg: RLExperiment, run_dir: Path, init: str | None) -> dict[str, Weights]:
    """The trained starting points ``eval.methods`` needs, each from its ``weights.pt``."""
    found: dict[str, Weights] = {}
    for method in cfg.eval.methods:
        if method in ("scratch", "oracle"):
            continue
        path = Path(init) if method == "meta" and init else run_dir / method / WEIGHTS_FILE
        missing = not (path.is_file() or (path / WEIGHTS_FILE).is_file())
        if missing and method == "meta" and init:
            raise UserError(f"--init {path}: no {WEIGHTS_FILE} there (drml rl meta-train writes OUTPUT/meta/"
                            f"{WEIGHTS_FILE})")  # fmt: skip
        if missing:
            raise UserError(
                f"{path}: no trained {method} policy; run `drml rl meta-train` with the same --output-dir "
                f"(meta.methods: [{method}]){' or pass --init PATH' if method == 'meta' else ''}, "
                f"or drop {method} from eval.methods"
            )
        found[method] = load_weights(path, cfg.env.family)
        if cfg.eval.reset_log_std:
            found[method] = {k: torch.zeros_like(v) if k.endswith("log_std") else v for k, v in found[method].items()}
    return found


def run_rl_meta_eval(cfg: RLExperiment, run_dir: str | Path, *, init: str | None = None) -> dict[str, Any]:
    """Adaptation curves on held-out tasks for every method and seed; writes ``adaptation.json`` (+ .md, .png).

    Each finished (method, seed, task) curve is kept in ``adaptation_cells.json`` at once, so an interrupted
    evaluation resumes where it stopped."""
    from drml_ray.rl.results import summarise, write_adaptation_outputs

    inits = trained_starts(cfg, Path(run_dir).expanduser().resolve(), init)  # before touching anything
    run_dir = open_run(run_dir, cfg, marker=None, free=FREE_KEYS)
    ev, tasks = cfg.eval, heldout_tasks(cfg)
    budget = {"tasks": tasks, "adapt_iters": ev.adapt_iters, "episodes": ev.episodes, "oracle_iters": ev.oracle_iters,
              "meta_init": str(Path(init).resolve()) if init else None, "reset_log_std": ev.reset_log_std}  # fmt: skip
    cells_path = run_dir / CELLS_FILE
    cells = _kept_curves(cells_path, budget)
    keys = [(method, seed, t) for method in ev.methods
            for seed in (ev.seeds[: ev.oracle_seeds] if method == "oracle" else ev.seeds)
            for t in range(len(tasks)) if f"{method}/{seed}/{t}" not in cells]  # fmt: skip
    keys.sort(key=lambda key: key[0] != "oracle")  # its long training first: no actor waits alone at the end
    print(f"[drml] rl meta-eval -> {run_dir}: {len(tasks)} held-out {cfg.env.family} tasks, methods "
          f"{', '.join(ev.methods)}, seeds {ev.seeds}; {len(keys)} curves to run ({len(cells)} kept)",
          flush=True)  # fmt: skip
    if keys:
        with actor_pool(cfg, ev.workers, label="rl meta-eval") as pool:
            fresh = {seed: pool.call("fresh", seed) for seed in sorted({s for m, s, _ in keys if m == "scratch"})}

            def done(index: int, curve: list[float]) -> str:
                cells["/".join(map(str, keys[index]))] = curve
                atomic_write_text(cells_path, yaml.safe_dump({"budget": budget, "cells": cells}, sort_keys=True))
                return " -> ".join(f"{r:.1f}" for r in curve)

            pool.map([_curve_job(cfg, key, tasks, inits, fresh) for key in keys], done)
    curves: dict[str, dict[int, list[list[float]]]] = {}
    for key, curve in cells.items():
        method, seed, _ = key.split("/")
        if method in ev.methods:
            curves.setdefault(method, {}).setdefault(int(seed), []).append(curve)
    table = summarise({m: curves[m] for m in ev.methods if m in curves}, ev.adapt_iters)
    atomic_write_json(run_dir / ADAPTATION_FILE, table)
    print(write_adaptation_outputs(table, run_dir, ev.adapt_iters)["table"], flush=True)
    return table


def _kept_curves(cells_path: Path, budget: dict[str, Any]) -> dict[str, Any]:
    """The curves an earlier ``drml rl meta-eval`` measured with the same budget (tasks, iterations, init)."""
    if not cells_path.exists():
        return {}
    saved = yaml.safe_load(cells_path.read_text(encoding="utf-8"))
    if saved.get("budget") == budget:
        return saved["cells"]
    print(f"[drml] {cells_path} was measured with another budget (tasks, iterations, episodes, init): "
          "its curves are not reused", flush=True)  # fmt: skip
    return {}


def _curve_job(cfg: RLExperiment, key: tuple[str, int, int], tasks: list[Task], inits: dict[str, Weights],
               fresh: dict[int, Weights]) -> Job:  # fmt: skip
    """The job of one (method, seed, task) curve; PPO's sampling seed is the same for every method."""
    ev, (method, seed, t) = cfg.eval, key
    job_seed, name = seed * 1_000 + t, f"{method}/{seed}/{t}"
    if method == "oracle":  # (its cost, PPO iterations, weighs the time left: 43 against 3 by default)
        args = (tasks[t], job_seed, ev.oracle_iters, ev.adapt_iters, ev.episodes)
        return Job(name, "oracle_curve", args, ev.oracle_iters + ev.adapt_iters)
    start = fresh[seed] if method == "scratch" else inits[method]
    arch = "rl2" if method == "rl2" else "ff"
    return Job(name, "curve", (start, tasks[t], ev.adapt_iters, ev.episodes, job_seed, arch), ev.adapt_iters)
