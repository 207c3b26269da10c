"""``drml meta-train`` and ``drml meta-eval``: the Ray side of meta-learning.

Distribution (one design for both commands): an :class:`~drml_ray.runtime.executor.ActorExecutor` of
``workers`` actors (:class:`MetaWorker`), each owning one :class:`~drml_ray.meta.learner.NerLearner`
and reserving ``cpus_per_worker`` CPUs (its torch thread count). On a cluster the actors land on any
node; a meta-batch of 8 tasks with 8 workers adapts all 8 at once.

Per meta-step (:func:`meta_train_step`) the communication is:

1. the driver puts theta in the object store once (``ray.put``: encoder + head generator, 4 bytes a
   weight — 91 MB for MiniLM); every actor reads that one object (zero-copy on its own node);
2. the meta-batch's (task, episode seed) jobs are dealt round-robin to the actors; each adapts its
   episodes one after the other and returns the *sum* of their meta-gradients (one tensor dict per
   actor, not one per task);
3. the driver averages the sums over the meta-batch and takes one step of the meta-optimizer.

So a meta-step moves ``2 x workers x |theta|`` bytes, whatever the meta-batch size. With one worker
(``meta.workers: 1``, the setting for one GPU) nothing of that size moves: the actor holds theta and the
outer optimizer on its device (:meth:`MetaRun.hand_to`), adapts the meta-batch and steps itself, and
theta comes back to the driver only for a checkpoint and the export. Episodes are
seeded by (experiment seed, meta-step, slot), so a resumed or re-run meta-training samples the same
episodes whatever the number of workers (and, run serially, the same meta-gradients).

``drml meta-eval`` uses the same actors for the cells of the adaptation protocol: each cell (domain,
shots, seed, method) is one job; a finished cell goes into ``meta_eval.json`` at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from drml_ray.config import ModelConfig, TaskData, dump_config, with_params
from drml_ray.errors import RunExistsError, UserError
from drml_ray.meta.config import METHODS, AdaptSettings, MetaExperiment, MetaSettings
from drml_ray.meta.learner import NerLearner, adaptation_steps
from drml_ray.meta.outer import MetaRun, new_meta_run, start_meta_run
from drml_ray.meta.results import Cell, finished_twin, read_meta_eval, record_cell, twin_cell, write_meta_eval_outputs
from drml_ray.meta.tasks import Task, task_digests
from drml_ray.metagrad import Params, meta_lr_at, sum_gradients, to_cpu
from drml_ray.runtime.executor import ActorExecutor, Job, actor_factory
from drml_ray.runtime.registry import Prepared
from drml_ray.runtime.rundir import META_TRAIN_FILE, open_run
from drml_ray.runtime.runfiles import atomic_write_json, atomic_write_text, read_json
from drml_ray.text import tails

META_EVAL_FILE = "meta_eval.json"
META_ALGORITHMS = ("reptile", "fomaml")
STARTS_SUBDIR = "starts"
FREE_KEYS = ("eval", "tune")
"""Keys a meta-eval (or a search) may change in a meta-training run directory: they do not change meta-training."""

OnEval = Callable[[str, int, float], None]
"""Called after each held-out evaluation: ``(algorithm, meta_step, mean held-out dev F1)``."""


class MetaWorker:
    """A process that adapts tasks: episodes for meta-training, cells for meta-evaluation."""

    def __init__(self, model: dict, data: dict, seed: int, threads: int, device: str):
        torch.set_num_threads(threads)
        logging.getLogger("drml_ray.data").setLevel(logging.ERROR)  # (the driver read each task first and said so)
        self.data = TaskData.model_validate(data)
        self.learner = NerLearner(ModelConfig.model_validate(model), self.data, seed, device=device)
        self.outer: MetaRun | None = None  # theta and the outer optimizer, when this actor holds them

    def gradients(
        self, theta: Params, jobs: list[tuple[str, int]], settings: dict, algorithm: str
    ) -> tuple[Params, list[dict[str, float]]]:
        """The summed meta-gradient of ``jobs`` (task, episode seed) on the CPU, and each episode's losses."""
        summed, stats = self._episodes(theta, jobs, MetaSettings.model_validate(settings), algorithm)
        return {name: g.cpu() for name, g in summed.items()}, stats

    def _episodes(
        self, theta: Params, jobs: list[tuple[str, int]], meta: MetaSettings, algorithm: str
    ) -> tuple[Params, list[dict[str, float]]]:
        stats: list[dict[str, float]] = []

        def each() -> Iterator[Params]:
            for spec, seed in jobs:
                task = self.learner.task(spec, self.data.max_train_sentences)
                grad, stat = self.learner.episode_gradient(theta, task, seed, meta, algorithm)  # type: ignore[arg-type]
                stats.append(stat | {"task": spec})
                yield grad

        return sum_gradients(each())[0], stats  # summed as they come: one episode's gradient held at a time

    def hold(self, theta: Params, optimizer_state: dict, algorithm: str, settings: dict) -> None:
        """Keep theta and its outer optimizer here, on this actor's device, for :meth:`outer_step`."""
        meta = MetaSettings.model_validate(settings)
        self.outer = new_meta_run(meta, algorithm, theta, self.learner.device)
        self.outer.optimizer.load_state_dict(optimizer_state)  # (its state moves to the parameters' device)

    def outer_step(self, jobs: list[tuple[str, int]], settings: dict, lr: float) -> list[dict[str, float]]:
        """One outer update of the theta held here; nothing but the episodes' losses leaves the actor."""
        meta, run = MetaSettings.model_validate(settings), self._held()
        summed, stats = self._episodes(run.theta(), jobs, meta, run.algorithm)
        run.update(summed, len(jobs), lr)
        return stats

    def held_state(self) -> tuple[Params, dict]:
        """The theta and outer-optimizer state held here, on the CPU (for a checkpoint or the export)."""
        run = self._held()
        return to_cpu(run.theta()), to_cpu(run.optimizer.state_dict())

    def _held(self) -> MetaRun:
        if self.outer is None:  # a new actor in place of one that died
            raise RuntimeError("this actor holds no theta: the actor that held it stopped. Run the same command "
                               "again: it resumes from the last checkpoint (<algorithm>.state.pt)")  # fmt: skip
        return self.outer

    def heldout_f1(self, theta: Params | None, spec: str, settings: dict, lr: float, seed: int) -> float:
        """``theta`` ``None``: the theta this actor holds."""
        theta = self._held().theta() if theta is None else theta
        return self.learner.heldout_f1(theta, self.learner.task(spec), MetaSettings.model_validate(settings), lr, seed)

    def cell(self, start: str, spec: str, shots: int | str, seed: int, settings: dict) -> dict[str, float]:
        return self.learner.adapt_and_score(start, self.learner.task(spec), shots, seed,
                                            AdaptSettings.model_validate(settings))  # fmt: skip

    def pretrain(self, backbone: str, specs: list[str], steps: int, lr: float, batch_size: int, seed: int,
                 folder: str, label: str) -> list[str]:  # fmt: skip
        tasks = [self.learner.task(s, self.data.max_train_sentences) for s in specs]
        labels = self.learner.pretrain(backbone, tasks, steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                                       progress=label)  # fmt: skip
        self.learner.save(Path(folder))
        return labels


def actor_pool(cfg: MetaExperiment, count: int, label: str | None = None) -> ActorExecutor:
    """``count`` :class:`MetaWorker` actors (with ``meta.gpus_per_worker`` GPUs they train on CUDA)."""
    device = "cuda" if cfg.meta.gpus_per_worker > 0 else "cpu"
    cpus = cfg.meta.cpus_per_worker
    make = actor_factory(MetaWorker, cfg.model.model_dump(mode="json"), cfg.data.model_dump(mode="json"), cfg.seed,
                         cpus, device, cpus=cpus, gpus=cfg.meta.gpus_per_worker)  # fmt: skip
    return ActorExecutor(make, count, label=label)


EVAL_FREE_KEYS = {"methods", "shots", "seeds", "workers"}
"""``eval`` keys a later ``drml meta-eval`` may change: they choose cells, not how a cell is computed."""


def _check_budget(run_dir: Path, cfg: MetaExperiment) -> None:
    """Every cell of one ``meta_eval.json`` is adapted with the same budget (``meta_eval_budget.yaml``)."""
    path = run_dir / "meta_eval_budget.yaml"
    text = dump_config(cfg.eval, exclude=EVAL_FREE_KEYS)
    if path.exists() and path.read_text(encoding="utf-8") != text:
        raise RunExistsError(
            f"{run_dir / META_EVAL_FILE} holds cells adapted with another budget ({path}); only "
            f"{', '.join(sorted(EVAL_FREE_KEYS))} may change between meta-eval runs: use another --output-dir"
        )
    atomic_write_text(path, text)


# --- meta-training ---------------------------------------------------------------------------------


def episode_jobs(cfg: MetaExperiment, step: int) -> list[tuple[str, int]]:
    """The meta-batch of ``step``: (task, episode seed) pairs, a function of the seed and step only.

    >>> tasks = {"train_tasks": ["generated:PER", "generated:LOC"], "heldout_tasks": ["generated:ORG"]}
    >>> cfg = MetaExperiment(name="x", meta=tasks | {"meta_batch": 3})
    >>> episode_jobs(cfg, 0) == episode_jobs(cfg, 0), len(episode_jobs(cfg, 5))
    (True, 3)
    """
    rng = random.Random(cfg.seed * 1_000_003 + step)
    return [(rng.choice(cfg.meta.train_tasks), rng.randrange(2**31)) for _ in range(cfg.meta.meta_batch)]


def meta_train_step(cfg: MetaExperiment, run: MetaRun, pool: ActorExecutor) -> dict[str, float]:
    """One outer update at ``run.step``: the meta-batch's episodes adapted on the actors, their
    meta-gradients averaged, one step of the outer optimizer. Returns the episodes' mean losses."""
    began, meta = time.perf_counter(), cfg.meta
    jobs, settings = episode_jobs(cfg, run.step), meta.model_dump(mode="json")
    lr = meta_lr_at(run.step, meta.meta_steps, run.lr, meta.meta_lr_decay)
    name = f"{run.algorithm} meta-step {run.step + 1}"
    if run.holder is not None:  # one actor: theta stays on its device
        stats = run.holder.map([Job(f"{name} episodes {jobs}", "outer_step", (jobs, settings, lr))])[0]
    else:
        theta_ref = pool.put(run.theta())  # one broadcast per meta-step
        shares = [jobs[i :: pool.size] for i in range(pool.size)]
        outputs = pool.map([Job(f"{name} episodes {share}", "gradients", (theta_ref, share, settings, run.algorithm))
                            for share in shares if share])  # fmt: skip
        stats = [stat for _, share_stats in outputs for stat in share_stats]
        run.update(sum_gradients(grad for grad, _ in outputs)[0], len(jobs), lr)
    run.step += 1
    seconds = time.perf_counter() - began
    run.record["train_s"] += seconds
    losses = {k: sum(s[k] for s in stats) / len(stats) for k in ("support_loss_first", "support_loss_last",
                                                                "query_loss")}  # fmt: skip
    run.record["steps"].append({"step": run.step, "seconds": seconds, **losses})
    return losses | {"seconds": seconds}


def heldout_check(cfg: MetaExperiment, run: MetaRun, pool: ActorExecutor, on_eval: OnEval | None) -> None:
    """Adapt theta to each held-out task's few shots and score its dev set (meta-training's yardstick)."""
    settings, specs = cfg.meta.model_dump(mode="json"), cfg.meta.heldout_tasks
    theta_ref = None if run.holder is not None else pool.put(run.theta())  # (None: the holder's own theta)
    f1 = dict(zip(specs, pool.map([Job(f"held-out {spec}", "heldout_f1", (theta_ref, spec, settings, cfg.eval.lrs[0],
                                                                            cfg.seed)) for spec in specs]),
                  strict=True))  # fmt: skip
    mean = sum(f1.values()) / len(f1)
    run.record["evals"].append({"step": run.step, "heldout_dev_f1": f1, "mean": mean})
    print(f"[drml] {run.algorithm} meta-step {run.step}/{cfg.meta.meta_steps}: held-out dev F1 after "
          f"{cfg.meta.eval_steps} adaptation steps on {cfg.meta.eval_shots} shots: "
          + ", ".join(f"{k} {v:.4f}" for k, v in f1.items()), flush=True)  # fmt: skip
    if on_eval is not None:
        on_eval(run.algorithm, run.step, mean)


def meta_train_one(
    cfg: MetaExperiment, algorithm: str, run_dir: Path, pool: ActorExecutor, on_eval: OnEval | None = None
) -> dict[str, Any]:
    """Meta-train one algorithm; checkpoints to ``run_dir/<algorithm>.state.pt``, exports ``run_dir/<algorithm>/``."""
    meta, state_path = cfg.meta, run_dir / f"{algorithm}.state.pt"
    learner = NerLearner(cfg.model, cfg.data, cfg.seed)  # the driver's copy: theta, exports
    run = start_meta_run(cfg, algorithm, learner.meta_state(), state_path)
    if pool.size == 1:  # its one actor keeps theta, on the GPU too, instead of a broadcast every meta-step
        run.hand_to(pool, meta)
    if run.step == 0 and not run.record["evals"]:
        heldout_check(cfg, run, pool, on_eval)
    first = run.step
    while run.step < meta.meta_steps:
        losses = meta_train_step(cfg, run, pool)
        if run.step % max(1, meta.meta_steps // 20) == 0 or run.step == first + 1:
            print(f"[drml] {algorithm} meta-step {run.step}/{meta.meta_steps}: support loss "
                  f"{losses['support_loss_first']:.3f} -> {losses['support_loss_last']:.3f}, query "
                  f"{losses['query_loss']:.3f}, {losses['seconds']:.1f} s", flush=True)  # fmt: skip
        if run.step % meta.eval_every == 0 or run.step == meta.meta_steps:
            heldout_check(cfg, run, pool, on_eval)
            run.save(state_path)
    folder = run_dir / algorithm  # (theta here is the holder's: the last meta-step saved, and so synced)
    learner.export(run.theta(), learner.task(meta.heldout_tasks[0]).labels, folder)
    print(f"[drml] {algorithm}: meta-learned initialisation saved to {folder} "
          f"(head built from the label names of {meta.heldout_tasks[0]})")  # fmt: skip
    steps = len(run.record["steps"]) or 1
    return run.record | {"folder": str(folder), "s_per_meta_step": run.record["train_s"] / steps}


def run_meta_train(
    cfg: MetaExperiment, run_dir: str | Path, *, overwrite: bool = False, on_eval: OnEval | None = None
) -> dict[str, Any]:
    """Meta-train every algorithm of ``meta.algorithms``; writes ``meta_train.json`` (results) last."""
    meta = cfg.meta
    tasks = check_inputs(cfg, meta.heldout_tasks, episodes=tuple(meta.train_tasks))
    run_dir = open_run(run_dir, cfg, marker=META_TRAIN_FILE, overwrite=overwrite, free=FREE_KEYS,
                       inputs=task_digests(tasks.values()))  # fmt: skip
    print(f"[drml] meta-train '{cfg.name}' -> {run_dir}: {', '.join(meta.algorithms)} over "
          f"{', '.join(meta.train_tasks)}; held out: {', '.join(meta.heldout_tasks)}")  # fmt: skip
    print(f"[drml] {meta.meta_steps} meta-steps x {meta.meta_batch} episodes ({meta.shots} support + "
          f"{meta.query} query sentences, {meta.inner_steps} inner steps) on {meta.workers} Ray actors")  # fmt: skip
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with actor_pool(cfg, meta.workers) as pool:
        for algorithm in meta.algorithms:
            results[algorithm] = meta_train_one(cfg, algorithm, run_dir, pool, on_eval)
    results["wall_s"] = time.perf_counter() - started
    atomic_write_json(run_dir / META_TRAIN_FILE, results)  # written last: marks meta-training finished
    print(f"[drml] meta-training done in {results['wall_s']:.0f} s; next: drml meta-eval with the same --output-dir")
    return results


# --- drml tune: one trial meta-trains one algorithm on its own actors ----------------------------------


def prepare_search(cfg: MetaExperiment) -> Prepared:
    """Checks that each trial tunes one algorithm and that the tasks read and fill an episode, as ``drml
    meta-train`` does, at every value the search gives the episode's settings; trials read their tasks themselves."""
    assert cfg.tune is not None
    if len(cfg.meta.algorithms) != 1 and "meta.algorithms" not in cfg.tune.space:
        raise UserError(
            "a meta-learning search tunes one algorithm per trial: set meta.algorithms: [reptile], or search "
            "over it with tune.space: {meta.algorithms: {choice: [[reptile], [fomaml]]}}"
        )
    varied = sorted({f"meta.{key}" for key in ("shots", "query", "n_way", "train_tasks")} & set(cfg.tune.space))
    tasks = check_inputs(cfg, cfg.meta.heldout_tasks, episodes=() if varied else tuple(cfg.meta.train_tasks))
    from drml_ray.meta.tasks import check_episodes, load_task

    for key, value in ((k, v) for k in varied for v in cfg.tune.space[k].args):
        meta = with_params(cfg, {key: value}).meta  # (each value with the others at the config's own)
        try:
            for spec in meta.train_tasks:
                tasks[spec] = tasks.get(spec) or load_task(spec, cfg.data)
                check_episodes(tasks[spec], meta.shots, meta.query, meta.n_way)
        except UserError as err:
            raise UserError(f"tune.space.{key} {value}: {err}") from None
    what = f"meta-learning over {', '.join(cfg.meta.train_tasks)}; held-out dev F1 after adaptation is the metric"
    return Prepared(None, what, task_digests(tasks.values()))


def search_trial(cfg: MetaExperiment, trial_dir: Path, shared: None, callbacks: Any) -> None:
    """One trial: meta-train, reporting the held-out dev F1 after adaptation at every evaluation
    (``epoch`` = evaluations so far) with the folder the algorithm's model is exported to."""
    from ray import tune  # RAY

    started = time.perf_counter()

    def on_eval(algorithm: str, step: int, mean_f1: float) -> None:
        tune.report({"epoch": step / cfg.meta.eval_every, "dev_f1": mean_f1, "meta_step": step,  # RAY
                     "checkpoint_path": str(trial_dir / "meta" / algorithm),
                     "train_s": time.perf_counter() - started})  # fmt: skip

    run_meta_train(cfg, trial_dir / "meta", on_eval=on_eval)


# --- meta-evaluation -------------------------------------------------------------------------------


def resolve_starts(cfg: MetaExperiment, run_dir: Path, inits: list[str]) -> dict[str, str | None]:
    """method -> starting folder/backbone (``None``: a start that meta-eval pre-trains first)."""
    meta_inits: dict[str, str] = {}
    for item in inits:
        method, sep, path = item.partition("=")
        if sep and method in META_ALGORITHMS:
            meta_inits[method] = path
        elif sep and not Path(item).exists():
            raise UserError(f"--init {item}: {method!r} is not a meta-learning method ({', '.join(META_ALGORITHMS)})")
        elif item in META_ALGORITHMS and not Path(item).exists():
            raise UserError(f"--init {item}: a method needs its folder: --init {item}=FOLDER")
        else:  # a model folder for every method, or a meta-train run directory holding one per method
            meta_inits.update({m: str(Path(item) / m) if (Path(item) / m / "config.json").is_file() else item
                               for m in META_ALGORITHMS})  # fmt: skip
    starts: dict[str, str | None] = {}
    for method in cfg.eval.methods:
        if method == "direct":
            starts[method] = cfg.model.backbone
        elif method == "conll_then_finetune":
            starts[method] = cfg.eval.conll_model or _pretrained(run_dir, "conll")
        elif method == "multitask_then_finetune":
            starts[method] = _pretrained(run_dir, "multitask")
        else:
            folder = Path(meta_inits.get(method, run_dir / method))
            if not (folder / "config.json").is_file():
                raise UserError(_no_meta_model(folder, method, given=method in meta_inits))
            starts[method] = str(folder.resolve())
    return starts


def _no_meta_model(folder: Path, method: str, given: bool) -> str:
    """Why ``folder`` gives meta-eval no ``method`` start: an ``--init`` (``given``) that holds no model, or the
    run directory's own folder that meta-train has not written."""
    if given:
        return (f"--init {folder}: no {method} model there (config.json): give the folder drml meta-train writes, "
                f"OUTPUT/{method}, or its run directory OUTPUT")  # fmt: skip
    return (f"{folder}: no meta-trained {method} model; run `drml meta-train` with the same --output-dir "
            f"(meta.algorithms: [{method}]) or pass --init PATH, or drop {method} from eval.methods")  # fmt: skip


def _pretrained(run_dir: Path, name: str) -> str | None:
    folder = run_dir / STARTS_SUBDIR / name
    return str(folder) if (folder / "config.json").is_file() else None


def _pretrain_missing(cfg: MetaExperiment, run_dir: Path, starts: dict[str, str | None], pool: ActorExecutor) -> None:
    """Train the CoNLL and multi-task starting points that are not there yet (once per run directory), one
    per actor, before the cells that start from them."""
    recipes = {"conll_then_finetune": ("conll", [cfg.eval.conll_task]),
               "multitask_then_finetune": ("multitask", list(cfg.meta.train_tasks))}  # fmt: skip
    missing = [m for m in recipes if m in starts and starts[m] is None]
    if not missing:
        return
    jobs = []
    for method in missing:
        name, specs = recipes[method]
        folder = run_dir / STARTS_SUBDIR / name
        print(f"[drml] pre-training the {method} start on {', '.join(specs)}: {cfg.eval.pretrain_steps} steps "
              f"-> {folder}")  # fmt: skip
        args = (cfg.model.backbone, specs, cfg.eval.pretrain_steps, cfg.eval.pretrain_lr, cfg.eval.batch_size,
                cfg.seed, str(folder), name)  # fmt: skip
        jobs.append(Job(f"the {method} start", "pretrain", args))
        starts[method] = str(folder)
    pool.map(jobs, lambda i, labels: f"ready in {starts[missing[i]]}")


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def cell_cost(shots: str, settings: AdaptSettings) -> int:
    """A cell's expected cost in adaptation steps, for the time-left estimate: its step budget (``all``:
    the most it may take) plus ~10 steps' worth of scoring. Measured on politics, a cell took about
    0.9 s per step plus 10 s (40 steps 47 s, 80 steps 90 s, 260 steps 250 s).

    >>> from drml_ray.meta.config import AdaptSettings
    >>> [cell_cost(k, AdaptSettings()) for k in ("10", "50", "all")]
    [50, 90, 410]
    """
    steps = settings.max_steps if shots == "all" else adaptation_steps(int(shots), settings)
    return steps + 10


def check_inputs(cfg: MetaExperiment, specs: list[str], episodes: tuple[str, ...] = ()) -> dict[str, Task]:
    """Read the backbone's tokenizer and config and each task of ``specs`` (on the driver: a few MB each)
    before any run directory is touched, checking that each task of ``episodes`` fills an episode; returns the
    tasks read."""
    from drml_ray.meta.tasks import check_episodes, load_task
    from drml_ray.ner.features import first_words
    from drml_ray.ner.modeling import check_backbone

    tasks = {spec: load_task(spec, cfg.data) for spec in dict.fromkeys([*specs, *episodes])}
    check_backbone(cfg.model, 3, first_words(sentence for task in tasks.values() for sentence in task.splits["train"]))
    for spec in episodes:
        check_episodes(tasks[spec], cfg.meta.shots, cfg.meta.query, cfg.meta.n_way)
    return tasks


def _tasks_to_read(cfg: MetaExperiment, starts: dict[str, str | None]) -> list[str]:
    """The held-out tasks, and the tasks of the starting points meta-eval has to pre-train."""
    pretrain = {"conll_then_finetune": [cfg.eval.conll_task], "multitask_then_finetune": cfg.meta.train_tasks}
    return [*cfg.meta.heldout_tasks, *(t for m, tasks in pretrain.items() if m in starts and starts[m] is None
                                       for t in tasks)]  # fmt: skip


def run_meta_eval(cfg: MetaExperiment, run_dir: str | Path, *, inits: list[str] | None = None) -> dict[str, Any]:
    """Fill ``meta_eval.json`` cell by cell (finished cells are skipped), then its table and plot."""
    starts = resolve_starts(cfg, Path(run_dir).expanduser().resolve(), inits or [])  # before touching anything
    tasks = check_inputs(cfg, _tasks_to_read(cfg, starts))
    sizes = {spec: len(task.splits["train"]) for spec, task in tasks.items()}
    run_dir = open_run(run_dir, cfg, marker=None, free=FREE_KEYS, inputs=task_digests(tasks.values()))
    _check_budget(run_dir, cfg)
    out_path = run_dir / META_EVAL_FILE
    table = read_meta_eval(out_path)
    cells: list[Cell] = [(d, str(k), seed, m) for d in cfg.meta.heldout_tasks for seed in cfg.eval.seeds
                         for k in cfg.eval.shots for m in cfg.eval.methods]  # fmt: skip
    done = {c for c in cells if str(c[2]) in table.get(c[0], {}).get(c[1], {}).get(c[3], {}).get("runs", {})}
    todo = [c for c in cells if c not in done]
    print(f"[drml] meta-eval '{cfg.name}' -> {out_path}: {len(cells)} cells "
          f"({_count(cfg.meta.heldout_tasks, 'domain')} x {_count(cfg.eval.shots, 'shot count')} x "
          f"{_count(cfg.eval.seeds, 'seed')} x {_count(cfg.eval.methods, 'method')})"
          + (f"; {len(done)} already there, skipped" if done else ""))  # fmt: skip
    names = tails(cfg.meta.heldout_tasks)  # (as the table names them)
    todo = [cell for cell in todo if not _copy_finished_twin(out_path, table, cell, sizes, names)]
    if todo:
        with actor_pool(cfg, cfg.eval.workers, label="meta-eval") as pool:
            _pretrain_missing(cfg, run_dir, starts, pool)
            _compute_cells(cfg, out_path, todo, starts, sizes, pool)
        table = read_json(out_path)
    outputs = write_meta_eval_outputs(table, run_dir, order=[m for m in METHODS if m in cfg.eval.methods])
    print(outputs["table"])
    print(f"[drml] {out_path}, {outputs['png']}, {outputs['md']}")
    return table


def _copy_finished_twin(out_path: Path, table: dict[str, Any], cell: Cell, sizes: dict[str, int],
                        names: dict[str, str]) -> bool:  # fmt: skip
    """Record ``cell`` as a copy of a finished cell that computed exactly the same (see :func:`twin_cell`)."""
    twin = finished_twin(table, cell, sizes)
    if twin is None:
        return False
    (twin_shots, result), (domain, shots, seed, method) = twin, cell
    table.update(record_cell(out_path, cell, result | {"same_as": twin_shots}))
    print(f"[drml] {names[domain]} {shots} shots seed {seed} {method}: the train split has {sizes[domain]} "
          f"sentences, so this is the {twin_shots}-shot cell (test F1 {result['f1']:.4f}), copied")  # fmt: skip
    return True


def _compute_cells(cfg: MetaExperiment, out_path: Path, todo: list[Cell], starts: dict[str, str | None],
                   sizes: dict[str, int], pool: ActorExecutor) -> None:  # fmt: skip
    """One job per group of twin cells; each finished cell goes into ``meta_eval.json`` at once (under every
    key of its group), whatever happens to the others."""
    twins: dict[Cell, list[Cell]] = {}
    for cell in todo:
        twins.setdefault(twin_cell(cell, sizes), []).append(cell)
    computed = [group[0] for group in twins.values()]
    settings = cfg.eval.model_dump(mode="json")
    names = tails(cfg.meta.heldout_tasks)  # (as the table names them)
    jobs = [Job(f"{names[domain]} {shots} shots seed {seed} {method}", "cell",
                (starts[method], domain, "all" if shots == "all" else int(shots), seed, settings),
                cost=cell_cost(shots, cfg.eval)) for domain, shots, seed, method in computed]  # fmt: skip

    def done(index: int, result: dict[str, Any]) -> str:
        cell = computed[index]
        record_cell(out_path, cell, result)  # kept, whatever happens next
        copies = twins[twin_cell(cell, sizes)][1:]
        for twin in copies:
            record_cell(out_path, twin, result | {"same_as": cell[1]})
        also = f"; the same cell as {', '.join(f'{c[1]} shots' for c in copies)}: the train split has " \
               f"{sizes[cell[0]]} sentences" if copies else ""  # fmt: skip
        return (f"test F1 {result['f1']:.4f} (dev {result['dev_f1']:.4f}, lr {result['lr']:g}, {result['steps']} "
                f"steps, {result['seconds']:.0f} s){also}")  # fmt: skip

    pool.map(jobs, done)
