"""``drml meta-train`` and ``drml meta-eval``: the Ray side of meta-learning.

Distribution (one design for both commands): a pool of ``workers`` Ray actors (:class:`MetaWorker`),
each owning one :class:`~drml_ray.meta.learner.NerLearner` and reserving ``cpus_per_worker`` CPUs
(its torch thread count). On a cluster the actors land on any node; a meta-batch of 8 tasks with
8 workers adapts all 8 at once.

Per meta-step the communication is:

1. the driver puts theta in the object store once (``ray.put``: encoder + head generator, 4 bytes a
   weight — 91 MB for MiniLM); every actor reads that one object (zero-copy on its own node);
2. the meta-batch's (task, episode seed) jobs are dealt round-robin to the actors; each adapts its
   episodes one after the other and returns the *sum* of their meta-gradients (one tensor dict per
   actor, not one per task);
3. the driver averages the sums over the meta-batch and takes one step of the meta-optimizer.

So a meta-step moves ``2 x workers x |theta|`` bytes, whatever the meta-batch size. Episodes are
seeded by (experiment seed, meta-step, slot), so a resumed or re-run meta-training samples the same
episodes whatever the number of workers (and, run serially, the same meta-gradients).

``drml meta-eval`` uses the same actors for the cells of the adaptation protocol: each cell (domain,
shots, seed, method) is one job; a finished cell goes into ``meta_eval.json`` at once.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray  # RAY
import torch
import yaml

from drml_ray.config import METHODS, AdaptSettings, MetaExperiment, MetaSettings, ModelConfig, TaskData, dump_config
from drml_ray.meta.algorithms import Params, meta_lr_at, meta_step, sum_gradients
from drml_ray.meta.learner import NerLearner, adaptation_steps
from drml_ray.meta.results import Cell, finished_twin, record_cell, twin_cell, write_meta_eval_outputs
from drml_ray.ray_env import ensure_ray
from drml_ray.runs import RunExistsError, atomic_write_json, atomic_write_text

META_TRAIN_FILE = "meta_train.json"
META_EVAL_FILE = "meta_eval.json"
META_ALGORITHMS = ("reptile", "fomaml")
STARTS_SUBDIR = "starts"

OnEval = Callable[[str, int, float], None]
"""Called after each held-out evaluation: ``(algorithm, meta_step, mean held-out dev F1)``."""


@ray.remote  # RAY: one learner per actor; resources set by make_workers
class MetaWorker:
    """A process that adapts tasks: episodes for meta-training, cells for meta-evaluation."""

    def __init__(self, model: dict, data: dict, seed: int, threads: int, device: str):
        torch.set_num_threads(threads)
        self.data = TaskData.model_validate(data)
        self.learner = NerLearner(ModelConfig.model_validate(model), self.data, seed, device=device)

    def gradients(
        self, theta: Params, jobs: list[tuple[str, int]], settings: dict, algorithm: str
    ) -> tuple[Params, list[dict[str, float]]]:
        """The summed meta-gradient of ``jobs`` (task, episode seed), and each episode's losses."""
        meta = MetaSettings.model_validate(settings)
        grads, stats = [], []
        for spec, seed in jobs:
            task = self.learner.task(spec, self.data.max_train_sentences)
            grad, stat = self.learner.episode_gradient(theta, task, seed, meta, algorithm)  # type: ignore[arg-type]
            grads.append(grad)
            stats.append(stat | {"task": spec})
        return sum_gradients(grads)[0], stats

    def heldout_f1(self, theta: Params, spec: str, settings: dict, lr: float, seed: int) -> float:
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


def make_workers(cfg: MetaExperiment, count: int, cpus: int) -> list[Any]:
    """``count`` actors of ``cpus`` CPUs each (and ``meta.gpus_per_worker`` GPUs: then they train on CUDA)."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # RAY

    ensure_ray()
    options = {
        "num_cpus": cpus,
        "num_gpus": cfg.meta.gpus_per_worker,
        "runtime_env": {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
        # Inside a Tune trial, never join the trial's placement group (it reserves memory only):
        # the actors reserve their own CPUs, which is what Tune's concurrency limit counts on.
        "scheduling_strategy": PlacementGroupSchedulingStrategy(placement_group=None),
    }
    model, data = cfg.model.model_dump(mode="json"), cfg.data.model_dump(mode="json")
    device = "cuda" if cfg.meta.gpus_per_worker > 0 else "cpu"
    return [MetaWorker.options(**options).remote(model, data, cfg.seed, cpus, device) for _ in range(count)]  # RAY


def _check_config(run_dir: Path, cfg: MetaExperiment) -> None:
    """Refuse a run directory whose meta-learning setup (everything but ``eval`` and ``tune``) differs."""
    written = run_dir / "config.yaml"
    text = dump_config(cfg, exclude={"eval", "tune"})
    if written.exists() and _setup(written.read_text(encoding="utf-8")) != _setup(text):
        raise RunExistsError(
            f"{run_dir} holds a meta-learning run of a different config ({written}); "
            "pass --overwrite to start over, or --output-dir to run elsewhere"
        )
    atomic_write_text(written, text)


def _setup(text: str) -> dict[str, Any]:
    """The meta-learning setup a config text describes, defaults filled in (so a key added to drml-ray
    later, at its default, does not make an older run directory look different)."""
    data = {k: v for k, v in (yaml.safe_load(text) or {}).items() if k not in ("eval", "tune")}
    try:
        return MetaExperiment.model_validate(data).model_dump(mode="json", exclude={"eval", "tune"})
    except ValueError:
        return data


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

    >>> cfg = MetaExperiment(name="x", meta={"train_tasks": ["a", "b"], "heldout_tasks": ["c"], "meta_batch": 3})
    >>> episode_jobs(cfg, 0) == episode_jobs(cfg, 0), len(episode_jobs(cfg, 5))
    (True, 3)
    """
    rng = random.Random(cfg.seed * 1_000_003 + step)
    return [(rng.choice(cfg.meta.train_tasks), rng.randrange(2**31)) for _ in range(cfg.meta.meta_batch)]


def _heldout_eval(workers: list[Any], theta_ref: Any, cfg: MetaExperiment) -> dict[str, float]:
    settings = cfg.meta.model_dump(mode="json")
    specs = cfg.meta.heldout_tasks
    refs = [workers[i % len(workers)].heldout_f1.remote(theta_ref, spec, settings, cfg.eval.lrs[0], cfg.seed)
            for i, spec in enumerate(specs)]  # fmt: skip  # RAY
    return dict(zip(specs, ray.get(refs), strict=True))  # RAY


def meta_train_one(
    cfg: MetaExperiment, algorithm: str, run_dir: Path, workers: list[Any], on_eval: OnEval | None = None
) -> dict[str, Any]:
    """Meta-train one algorithm; checkpoints to ``run_dir/<algorithm>.state.pt``, exports ``run_dir/<algorithm>/``."""
    meta = cfg.meta
    state_path = run_dir / f"{algorithm}.state.pt"
    learner = NerLearner(cfg.model, cfg.data, cfg.seed)  # the driver's copy: theta, exports
    params = {n: torch.nn.Parameter(p.detach().clone()) for n, p in learner.meta_state().items()}
    reptile = algorithm == "reptile"
    kind, lr = (meta.meta_optimizer, meta.meta_lr) if reptile else (meta.fomaml_optimizer, meta.fomaml_lr)
    optimizer = torch.optim.Adam(params.values(), lr=lr) if kind == "adam" else torch.optim.SGD(params.values(), lr=lr)
    record: dict[str, Any] = {"steps": [], "evals": [], "train_s": 0.0}
    start = 0
    if state_path.exists():
        saved = torch.load(state_path, map_location="cpu", weights_only=False)
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(saved["theta"][name])
        optimizer.load_state_dict(saved["optimizer"])
        record, start = saved["record"], saved["step"]
        print(f"[drml] {algorithm}: resuming at meta-step {start} from {state_path}")
    settings = meta.model_dump(mode="json")

    def theta() -> Params:
        return {n: p.detach() for n, p in params.items()}

    def evaluate(step: int) -> None:
        f1 = _heldout_eval(workers, ray.put(theta()), cfg)  # RAY
        mean = sum(f1.values()) / len(f1)
        record["evals"].append({"step": step, "heldout_dev_f1": f1, "mean": mean})
        print(f"[drml] {algorithm} meta-step {step}/{meta.meta_steps}: held-out dev F1 after "
              f"{meta.eval_steps} adaptation steps on {meta.eval_shots} shots: "
              + ", ".join(f"{k} {v:.4f}" for k, v in f1.items()), flush=True)  # fmt: skip
        if on_eval is not None:
            on_eval(algorithm, step, mean)

    if start == 0 and not record["evals"]:
        evaluate(0)
    for step in range(start, meta.meta_steps):
        began = time.perf_counter()
        theta_ref = ray.put(theta())  # RAY: one broadcast per meta-step
        jobs = episode_jobs(cfg, step)
        shares = [jobs[i :: len(workers)] for i in range(len(workers))]
        refs = [w.gradients.remote(theta_ref, share, settings, algorithm)  # RAY
                for w, share in zip(workers, shares, strict=True) if share]  # fmt: skip
        shares_out = ray.get(refs)  # RAY
        summed, _ = sum_gradients(grad for grad, _ in shares_out)
        stats = [stat for _, share_stats in shares_out for stat in share_stats]
        for group in optimizer.param_groups:
            group["lr"] = meta_lr_at(step, meta.meta_steps, lr, meta.meta_lr_decay)
        meta_step(params, {n: g / len(jobs) for n, g in summed.items()}, optimizer)
        seconds = time.perf_counter() - began
        record["train_s"] += seconds
        losses = {k: sum(s[k] for s in stats) / len(stats) for k in ("support_loss_first", "support_loss_last",
                                                                    "query_loss")}  # fmt: skip
        record["steps"].append({"step": step + 1, "seconds": seconds, **losses})
        if (step + 1) % max(1, meta.meta_steps // 20) == 0 or step == start:
            print(f"[drml] {algorithm} meta-step {step + 1}/{meta.meta_steps}: support loss "
                  f"{losses['support_loss_first']:.3f} -> {losses['support_loss_last']:.3f}, query "
                  f"{losses['query_loss']:.3f}, {seconds:.1f} s", flush=True)  # fmt: skip
        if (step + 1) % meta.eval_every == 0 or step + 1 == meta.meta_steps:
            evaluate(step + 1)
            tmp = state_path.with_name(f".{state_path.name}.tmp")
            torch.save({"theta": theta(), "optimizer": optimizer.state_dict(), "record": record,
                        "step": step + 1}, tmp)  # fmt: skip
            tmp.replace(state_path)
    folder = run_dir / algorithm
    labels = learner.task(meta.heldout_tasks[0]).labels
    learner.export(theta(), labels, folder)
    print(f"[drml] {algorithm}: meta-learned initialisation saved to {folder} "
          f"(head built from the label names of {meta.heldout_tasks[0]})")  # fmt: skip
    steps = len(record["steps"]) or 1
    return record | {"folder": str(folder), "s_per_meta_step": record["train_s"] / steps}


def run_meta_train(
    cfg: MetaExperiment, run_dir: str | Path, *, overwrite: bool = False, on_eval: OnEval | None = None
) -> dict[str, Any]:
    """Meta-train every algorithm of ``meta.algorithms``; writes ``meta_train.json`` (results) last."""
    from drml_ray.runs import prepare_run_dir

    run_dir = prepare_run_dir(run_dir, overwrite=overwrite, marker=META_TRAIN_FILE)
    _check_config(run_dir, cfg)
    meta = cfg.meta
    print(f"[drml] meta-train '{cfg.name}' -> {run_dir}: {', '.join(meta.algorithms)} over "
          f"{', '.join(meta.train_tasks)}; held out: {', '.join(meta.heldout_tasks)}")  # fmt: skip
    print(f"[drml] {meta.meta_steps} meta-steps x {meta.meta_batch} episodes ({meta.shots} support + "
          f"{meta.query} query sentences, {meta.inner_steps} inner steps) on {meta.workers} Ray actors")  # fmt: skip
    workers = make_workers(cfg, meta.workers, meta.cpus_per_worker)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for algorithm in meta.algorithms:
        results[algorithm] = meta_train_one(cfg, algorithm, run_dir, workers, on_eval)
    results["wall_s"] = time.perf_counter() - started
    for w in workers:
        ray.kill(w)  # RAY
    atomic_write_json(run_dir / META_TRAIN_FILE, results)  # written last: marks meta-training finished
    print(f"[drml] meta-training done in {results['wall_s']:.0f} s; next: drml meta-eval with the same --output-dir")
    return results


# --- meta-evaluation -------------------------------------------------------------------------------


def resolve_starts(cfg: MetaExperiment, run_dir: Path, inits: list[str]) -> dict[str, str | None]:
    """method -> starting folder/backbone (``None``: a start that meta-eval pre-trains first)."""
    meta_inits: dict[str, str] = {}
    for item in inits:
        method, sep, path = item.partition("=")
        if sep and method in META_ALGORITHMS:
            meta_inits[method] = path
        else:
            meta_inits.update(dict.fromkeys(META_ALGORITHMS, item))
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
                raise FileNotFoundError(
                    f"{folder}: no meta-trained {method} model; run `drml meta-train` with the same --output-dir "
                    f"(meta.algorithms: [{method}]) or pass --init PATH, or drop {method} from eval.methods"
                )
            starts[method] = str(folder.resolve())
    return starts


def _pretrained(run_dir: Path, name: str) -> str | None:
    folder = run_dir / STARTS_SUBDIR / name
    return str(folder) if (folder / "config.json").is_file() else None


def _pretrain_missing(
    cfg: MetaExperiment, run_dir: Path, starts: dict[str, str | None], workers: list[Any]
) -> dict[Any, tuple[str, str, Any]]:
    """Start training the CoNLL and multi-task starting points that are not there yet (once per run
    directory), one per actor. Returns ``ref -> (method, folder, actor)``; cells of other methods run
    on the remaining actors meanwhile."""
    jobs = {"conll_then_finetune": ("conll", [cfg.eval.conll_task]),
            "multitask_then_finetune": ("multitask", list(cfg.meta.train_tasks))}  # fmt: skip
    pending = {}
    for i, method in enumerate(m for m in jobs if m in starts and starts[m] is None):
        name, specs = jobs[method]
        folder = run_dir / STARTS_SUBDIR / name
        print(f"[drml] pre-training the {method} start on {', '.join(specs)}: {cfg.eval.pretrain_steps} steps "
              f"-> {folder}")  # fmt: skip
        worker = workers[i % len(workers)]
        ref = worker.pretrain.remote(  # RAY
            cfg.model.backbone, specs, cfg.eval.pretrain_steps, cfg.eval.pretrain_lr, cfg.eval.batch_size,
            cfg.seed, str(folder), name,
        )  # fmt: skip
        pending[ref] = (method, str(folder), worker)
    return pending


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def cell_cost(shots: str, settings: AdaptSettings) -> int:
    """A cell's expected cost in adaptation steps, for the time-left estimate: its step budget (``all``:
    the most it may take) plus ~10 steps' worth of scoring. Measured on politics, a cell took about
    0.9 s per step plus 10 s (40 steps 47 s, 80 steps 90 s, 260 steps 250 s).

    >>> from drml_ray.config import AdaptSettings
    >>> [cell_cost(k, AdaptSettings()) for k in ("10", "50", "all")]
    [50, 90, 410]
    """
    steps = settings.max_steps if shots == "all" else adaptation_steps(int(shots), settings)
    return steps + 10


def _train_sizes(cfg: MetaExperiment, cells: list[Cell]) -> dict[str, int]:
    """Train-split sizes of the domains of ``cells`` (read on the driver: a few MB per domain)."""
    from drml_ray.meta.tasks import load_task

    domains = sorted({c[0] for c in cells})
    return {d: len(load_task(d, cfg.data).splits["train"]) for d in domains}


def run_meta_eval(cfg: MetaExperiment, run_dir: str | Path, *, inits: list[str] | None = None) -> dict[str, Any]:
    """Fill ``meta_eval.json`` cell by cell (finished cells are skipped), then its table and plot."""
    run_dir = Path(run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(run_dir, cfg)
    _check_budget(run_dir, cfg)
    starts = resolve_starts(cfg, run_dir, inits or [])
    out_path = run_dir / META_EVAL_FILE
    table: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8")) if out_path.exists() else {}
    cells: list[Cell] = [(d, str(k), seed, m) for d in cfg.meta.heldout_tasks for seed in cfg.eval.seeds
             for k in cfg.eval.shots for m in cfg.eval.methods]  # fmt: skip
    done = {c for c in cells if str(c[2]) in table.get(c[0], {}).get(c[1], {}).get(c[3], {}).get("runs", {})}
    todo = [c for c in cells if c not in done]
    print(f"[drml] meta-eval '{cfg.name}' -> {out_path}: {len(cells)} cells "
          f"({_count(cfg.meta.heldout_tasks, 'domain')} x {_count(cfg.eval.shots, 'shot count')} x "
          f"{_count(cfg.eval.seeds, 'seed')} x {_count(cfg.eval.methods, 'method')})"
          + (f"; {len(done)} already there, skipped" if done else ""))  # fmt: skip
    sizes = _train_sizes(cfg, todo)
    for cell in list(todo):
        twin = finished_twin(table, cell, sizes)
        if twin is None:
            continue
        (twin_shots, result), (domain, shots, seed, method) = twin, cell
        table = record_cell(out_path, cell, result | {"same_as": twin_shots})
        todo.remove(cell)
        print(f"[drml] {domain} {shots} shots seed {seed} {method}: the train split has {sizes[domain]} "
              f"sentences, so this is the {twin_shots}-shot cell (test F1 {result['f1']:.4f}), copied")  # fmt: skip
    twins: dict[Cell, list[Cell]] = {}
    for cell in todo:
        twins.setdefault(twin_cell(cell, sizes), []).append(cell)
    if todo:
        workers = make_workers(cfg, cfg.eval.workers, cfg.meta.cpus_per_worker)
        pretraining = _pretrain_missing(cfg, run_dir, starts, workers)
        settings = cfg.eval.model_dump(mode="json")
        busy = {id(worker) for _, _, worker in pretraining.values()}
        idle, running = [w for w in workers if id(w) not in busy], {}
        queue = [group[0] for group in twins.values()]  # one cell of each group of twins is computed
        computing = len(queue)
        finished, cost_done, cost_total = 0, 0, sum(cell_cost(c[1], cfg.eval) for c in queue)
        started = time.perf_counter()
        while queue or running or pretraining:
            while idle and (ready_cells := [c for c in queue if starts[c[3]] is not None]):
                cell = ready_cells[0]
                queue.remove(cell)
                worker = idle.pop()
                domain, shots, seed, method = cell
                ref = worker.cell.remote(starts[method], domain, "all" if shots == "all" else int(shots), seed,
                                         settings)  # fmt: skip  # RAY
                running[ref] = (cell, worker)
            if not running and not pretraining:
                raise RuntimeError(f"no start for the cells {queue[:3]} ...")  # resolve_starts names every start
            ready, _ = ray.wait(list(running) + list(pretraining), num_returns=1)  # RAY
            if ready[0] in pretraining:
                method, folder, worker = pretraining.pop(ready[0])
                ray.get(ready[0])  # RAY: raises if pre-training failed
                starts[method] = folder
                idle.append(worker)
                print(f"[drml] the {method} start is ready: {folder}")
                continue
            cell, worker = running.pop(ready[0])
            idle.append(worker)
            result = ray.get(ready[0])  # RAY
            domain, shots, seed, method = cell
            table = record_cell(out_path, cell, result)  # every finished cell is kept, whatever happens next
            copies = twins[twin_cell(cell, sizes)][1:]
            for twin in copies:
                table = record_cell(out_path, twin, result | {"same_as": shots})
            finished += 1
            cost_done += cell_cost(shots, cfg.eval)  # cells differ: an all-shot cell costs ~5 ten-shot ones
            eta = (time.perf_counter() - started) / cost_done * (cost_total - cost_done)
            print(f"[drml] [{finished}/{computing}] {domain} {shots} shots seed {seed} {method}: test F1 "
                  f"{result['f1']:.4f} (dev {result['dev_f1']:.4f}, lr {result['lr']:g}, {result['steps']} steps, "
                  f"{result['seconds']:.0f} s); about {eta / 60:.0f} min left", flush=True)  # fmt: skip
            if copies:
                also = ", ".join(f"{c[1]} shots" for c in copies)
                print(f"[drml]   the same cell as {also}: the train split has {sizes[domain]} sentences")
        for w in workers:
            ray.kill(w)  # RAY
    outputs = write_meta_eval_outputs(table, run_dir, order=[m for m in METHODS if m in cfg.eval.methods])
    print(outputs["table"])
    print(f"[drml] {out_path}, {outputs['png']}, {outputs['md']}")
    return table
