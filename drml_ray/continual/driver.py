"""``drml continual``: each strategy's pass over the experiences, every experience one Ray Train run.

For each strategy and each experience in turn: the run starts from the model the previous experience
exported (``strategies/NAME/expK/best``; the first from ``model.backbone``), its label space grown, and
trains on Ray Train (``train``, ``scaling``: DDP over the workers, GPUs, checkpoints) on the strategy's data
(``naive``, ``replay``, ``joint``) with the strategy's loss term on every worker (``ewc``, ``lwf``). Its best
checkpoint by dev F1 over every experience seen is exported to ``expK/best``; a Ray task scores that model
on every experience (``expK/row.json``: a row of R; the experience's Ray Train checkpoints are then deleted)
and, for EWC, computes the Fisher. Strategies that share a start train their first experience once (no loss
term applies yet and their data are the same); the others copy it. A rerun skips finished experiences and
continues an unfinished one from its last Ray Train checkpoint.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray  # RAY

from drml_ray.continual.config import ContinualExperiment, uses
from drml_ray.continual.learner import EWC_FILE, dev_split, save_ewc_state, score, training_data
from drml_ray.continual.protocols import Experience, experience_inputs, experiences
from drml_ray.continual.results import CONTINUAL_FILE, continual_table, read_baseline, read_row, write_outputs
from drml_ray.continual.strategies import grown_labels, replay_sample
from drml_ray.data.conll import Sentence
from drml_ray.data.load import NerCorpus, digest
from drml_ray.data.registry import SPLITS
from drml_ray.errors import UserError
from drml_ray.ner.finetune import TRAIN_SUBDIR, check_scaling, export_best, fit_best
from drml_ray.ray_env import how_many_fit
from drml_ray.runtime.executor import ActorExecutor, Job, actor_factory
from drml_ray.runtime.registry import Prepared
from drml_ray.runtime.rundir import open_run
from drml_ray.runtime.runfiles import atomic_write_json

ROW_FILE = "row.json"
STRATEGY_DIR = "strategies"
OnExperience = Callable[[int, float, Path], None]
"""Called after each experience: ``(experiences done, mean dev F1 over them, the exported model)``."""


def planned_runs(cfg: ContinualExperiment) -> dict[str, tuple[str, str]]:
    """Run name -> (strategy, start): every strategy from the backbone, some again from ``meta_init``."""
    c = cfg.continual
    runs = {s: (s, cfg.model.backbone) for s in c.strategies}
    if c.meta_init is not None:
        runs |= {f"{s}@meta": (s, c.meta_init) for s in c.meta_init_strategies}
    return runs


def check_inputs(cfg: ContinualExperiment) -> list[Experience]:
    """The backbone and the experiences, read before the run directory is touched (the meta-learned start is a
    model folder: :data:`~drml_ray.config.ModelPath`, checked with the config)."""
    from drml_ray.ner.features import first_words
    from drml_ray.ner.modeling import check_backbone

    read = experiences(cfg)
    check_backbone(cfg.model, num_labels=3, words=first_words(s for exp in read for s in exp.train))
    return read


def in_ray_task(cfg: ContinualExperiment, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(cfg, *args)`` as a Ray task with the CPUs (GPU) the training had (released when it ends)."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # RAY

    s = cfg.scaling
    task = ray.remote(fn).options(  # RAY: (inside a Tune trial too, outside its placement group)
        num_cpus=s.cpus, num_gpus=int(s.use_gpu),
        scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None),
    )  # fmt: skip
    return ray.get(task.remote(cfg, *args))  # RAY


def loss_term(cfg: ContinualExperiment, strategy: str, previous: Path | None, old_labels: list[str]) -> Any:
    """The strategy's loss term for the Ray Train workers (``None``: plain cross-entropy)."""
    c = cfg.continual
    if previous is None or not (uses(strategy, "ewc") or uses(strategy, "lwf")):
        return None
    if uses(strategy, "ewc"):
        return ("drml_ray.continual.learner:ewc_loss", {"path": str(previous / EWC_FILE), "weight": c.ewc_lambda})
    teacher = {"teacher": str(previous / "best"), "labels": old_labels, "cfg": cfg.model_dump(mode="json")}
    return ("drml_ray.continual.learner:lwf_loss", teacher | {"temperature": c.distill_temperature,
                                                              "weight": c.distill_weight})  # fmt: skip


@dataclass
class StrategyRun:
    """One strategy's pass over the experiences, in ``folder`` (``strategies/NAME``)."""

    cfg: ContinualExperiment
    strategy: str
    start: str
    found: list[Experience]
    folder: Path
    shared: Any = None
    """The experiences in the object store (every scoring task reads them)."""

    def exp_dir(self, k: int) -> Path:
        """Experience ``k``'s folder (counted from 1): its exported model, row of R and EWC state."""
        return self.folder / f"exp{k}"

    def train_experience(self, i: int, labels: list[str], old_labels: list[str], replay: list[Sentence]) -> dict:
        """Experience ``i``: a Ray Train run from the previous experience's model, exported, then scored."""
        began, cfg, seen = time.perf_counter(), self.cfg, self.found[: i + 1]
        exp_dir, previous = self.exp_dir(i + 1), self.exp_dir(i) if i > 0 else None
        data = training_data(self.strategy, seen, replay, labels)
        corpus = NerCorpus(seen[-1].name, {"train": data, "dev": dev_split(seen), "test": seen[-1].test}, labels,
                           False, {})  # fmt: skip
        run_cfg = cfg.experience_config(str(previous / "best") if previous else self.start, len(data))
        print(f"[drml] {self.folder.name} experience {i + 1}/{len(self.found)}: {seen[-1].name}, {len(data):,} "
              f"training sentences, {len(labels)} labels, {run_cfg.train.epochs} epochs", flush=True)  # fmt: skip
        exp_dir.mkdir(parents=True, exist_ok=True)
        best, _, _ = fit_best(run_cfg, corpus, exp_dir, extra_loss=loss_term(cfg, self.strategy, previous, old_labels))
        export_best(run_cfg, labels, best, exp_dir / "best")
        row = in_ray_task(cfg, score, str(exp_dir / "best"), labels, self.shared, i + 1)
        row |= {"seconds": time.perf_counter() - began}
        atomic_write_json(exp_dir / ROW_FILE, row)
        shutil.rmtree(exp_dir / TRAIN_SUBDIR)  # its checkpoints (~0.5 GB for MiniLM): best/ and the row are kept
        return row

    def keep_fisher(self, i: int, labels: list[str]) -> None:
        """EWC: the online Fisher after experience ``i`` (``expK/ewc.safetensors``), unless already there."""
        exp_dir = self.exp_dir(i + 1)
        if uses(self.strategy, "ewc") and not (exp_dir / EWC_FILE).exists():
            before = str(self.exp_dir(i) / EWC_FILE) if i > 0 else None
            in_ray_task(self.cfg, save_ewc_state, str(exp_dir / "best"), labels, self.found[i], before,
                        str(exp_dir / EWC_FILE))  # fmt: skip

    def run(self, on_experience: OnExperience | None = None, until: int | None = None) -> dict[str, Any]:
        """Every experience in turn (the first ``until``; finished ones read back); R and what goes with it."""
        from drml_ray.ray_env import ensure_ray

        ensure_ray()
        self.shared = ray.put(self.found)  # RAY: shipped once to every scoring task
        baseline_path = self.folder / "baseline.json"
        if not baseline_path.exists():
            first = grown_labels([], self.found[0].types)
            atomic_write_json(baseline_path, in_ray_task(self.cfg, score, self.start, first, self.shared, 0)["R"])
        kept = sum((self.exp_dir(i + 1) / ROW_FILE).exists() for i in range(len(self.found[:until])))
        if kept:
            which = "experience 1" if kept == 1 else f"experiences 1-{kept}"
            print(f"[drml] {self.folder.name}: {which} trained before, kept", flush=True)
        labels: list[str] = []
        replay: list[Sentence] = []
        rows = []
        for i, exp in enumerate(self.found[:until]):
            old_labels, labels = labels, grown_labels(labels, exp.types)
            row_path = self.exp_dir(i + 1) / ROW_FILE
            done = row_path.exists()
            rows.append(read_row(row_path) if done else
                        self.train_experience(i, labels, old_labels, replay))  # fmt: skip
            self.keep_fisher(i, labels)
            if on_experience is not None:
                on_experience(i + 1, rows[-1]["dev_f1"], row_path.with_name("best"))
            if uses(self.strategy, "replay"):
                c = self.cfg.continual
                replay += replay_sample(exp.train, c.replay_size, c.replay_selection, self.cfg.seed + i)
        return {"R": [r["R"] for r in rows], "baseline": read_baseline(baseline_path),
                "seen": [r["seen"] for r in rows], "labels": labels, "seconds": sum(r["seconds"] for r in rows),
                "model": str(self.exp_dir(len(rows)) / "best")}  # fmt: skip


class StrategyWorker:
    """A process that runs strategies' passes; it reserves no CPU (its Ray Train workers and scoring tasks do)."""

    def run(self, cfg: dict, strategy: str, start: str, found: list[Experience], folder: str,
            until: int | None = None) -> dict[str, Any]:  # fmt: skip
        run = StrategyRun(ContinualExperiment.model_validate(cfg), strategy, start, found, Path(folder))
        return run.run(until=until)


def same_first_experience(runs: dict[str, tuple[str, str]], found: list[Experience]) -> list[list[str]]:
    """The planned runs grouped by their first experience's Ray Train run: the same start and the same training
    data (no strategy adds a loss term before a second experience), so one run serves the whole group."""
    groups: dict[tuple, list[str]] = {}
    labels = grown_labels([], found[0].types)
    for name, (strategy, start) in runs.items():
        groups.setdefault((start, tuple(training_data(strategy, found[:1], [], labels))), []).append(name)
    return list(groups.values())


def copy_first(source: Path, target: Path) -> None:
    """``target`` takes ``source``'s untrained score and finished first experience (its model, row of R and
    curves; not its Ray Train checkpoints); the row goes last, so an interrupted copy is made again."""
    if (target / "exp1" / ROW_FILE).exists():
        return
    (target / "exp1").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "baseline.json", target / "baseline.json")
    for part in ("best", "tensorboard"):
        if (source / "exp1" / part).is_dir():
            shutil.copytree(source / "exp1" / part, target / "exp1" / part, dirs_exist_ok=True)
    row = read_row(source / "exp1" / ROW_FILE)
    atomic_write_json(target / "exp1" / ROW_FILE, row | {"copied_from": source.name})


def train_first_experiences(pool: ActorExecutor, cfg: ContinualExperiment, runs: dict[str, tuple[str, str]],
                            found: list[Experience], shared: Any, folder: Callable[[str], Path]) -> None:  # fmt: skip
    """Each group of :func:`same_first_experience` trains its first experience once, as its first run; the
    others copy it."""
    groups = [g for g in same_first_experience(runs, found) if len(g) > 1]
    setup = cfg.model_dump(mode="json")
    for group in groups:
        print(f"[drml] experience 1 is one Ray Train run for {', '.join(group)} (same start and data, no loss "
              f"term yet): trained once, as {group[0]}", flush=True)  # fmt: skip
    jobs = [Job(g[0], "run", (setup, *runs[g[0]], shared, str(folder(g[0])), 1)) for g in groups]
    pool.map(jobs, lambda i, r: "experience 1 trained", label="the shared experience 1")
    for group in groups:
        for name in group[1:]:
            copy_first(folder(group[0]), folder(name))


def side_by_side(cfg: ContinualExperiment, runs: int) -> int:
    """How many strategies run at once: ``continual.parallel``, else as many as the cluster's CPUs (GPUs) hold."""
    if cfg.continual.parallel is not None:
        return min(runs, cfg.continual.parallel)
    s = cfg.scaling
    fits = how_many_fit(s.cpus, s.processes if s.use_gpu else 0, ray.cluster_resources()) or 0  # RAY
    return max(1, min(runs, fits))


def run_continual(cfg: ContinualExperiment, run_dir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Every planned strategy over the experiences; writes ``continual.json`` (+ .md, .png) last."""
    from drml_ray.ray_env import ensure_ray

    found, runs = check_inputs(cfg), planned_runs(cfg)
    check_scaling(cfg.scaling)  # (each experience's workers, or local mode's device)
    run_dir = open_run(run_dir, cfg, marker=CONTINUAL_FILE, overwrite=overwrite, free=("tune",),
                       inputs=experience_digests(found))  # fmt: skip
    ensure_ray()
    size = side_by_side(cfg, len(runs))
    where = (
        "in local mode, in its strategy's process" if cfg.scaling.local else f"on {cfg.scaling.num_workers} worker(s)"
    )
    print(f"[drml] continual '{cfg.name}' -> {run_dir}: {cfg.continual.protocol}-incremental, {len(found)} "
          f"experiences ({', '.join(e.name for e in found)}); strategies {', '.join(runs)}, {size} at a time, each "
          f"experience a Ray Train run {where}", flush=True)  # fmt: skip
    names, shared, setup = list(runs), ray.put(found), cfg.model_dump(mode="json")  # RAY
    jobs = [Job(name, "run", (setup, *runs[name], shared, str(run_dir / STRATEGY_DIR / name))) for name in names]
    done = lambda i, r: f"average test F1 {sum(r['R'][-1]) / len(found):.4f} after the last experience"  # noqa: E731
    with ActorExecutor(actor_factory(StrategyWorker, cpus=0), size, label="continual") as pool:
        train_first_experiences(pool, cfg, runs, found, shared, lambda name: run_dir / STRATEGY_DIR / name)
        results = dict(zip(names, pool.map(jobs, done), strict=True))
    table = continual_table(cfg.continual.protocol, [e.name for e in found], results)
    print(write_outputs(table, run_dir), flush=True)
    return table


# --- drml tune: one trial is one strategy's pass; the schedulers count experiences ----------------------


def experience_count(cfg: ContinualExperiment) -> int:
    """How many experiences a run has (the class protocol reads its corpus' types, unless ``type_order``)."""
    c = cfg.continual
    if c.protocol == "domain":
        return len(c.experiences)
    if c.type_order is not None:
        count = len(c.type_order)
    else:
        from drml_ray.meta.tasks import load_task

        count = len(load_task(c.corpus, cfg.data).types)
    return 1 + -(-max(0, count - c.first_types) // c.types_per_step)


def experience_digests(experiences: list[Experience]) -> dict[str, str]:
    """A hash of each experience's splits (a continued run, or search, checks them)."""
    return {f"experience {e.name}'s {split}": digest(getattr(e, split)) for e in experiences for split in SPLITS}


def prepare_search(cfg: ContinualExperiment) -> Prepared:
    """The experiences the trials train on (read once), what they were read from, and what they are; one strategy
    per trial."""
    assert cfg.tune is not None
    if len(planned_runs(cfg)) != 1 and "continual.strategies" not in cfg.tune.space:
        raise UserError("a continual search tunes one strategy per trial: set continual.strategies: [ewc] (and no "
                        "meta_init), or search over it with tune.space: {continual.strategies: {choice: [[ewc], "
                        "[replay]]}}")  # fmt: skip
    found = check_inputs(cfg)
    what = f"continual learning over {', '.join(e.name for e in found)}; the mean dev F1 over the experiences seen"
    return Prepared((experience_inputs(cfg), found), f"{what} is the metric", experience_digests(found))


def search_trial(cfg: ContinualExperiment, trial_dir: Path, shared: tuple[dict[str, Any], list[Experience]],
                 callbacks: Any) -> None:  # fmt: skip
    """One trial: the strategy over the experiences (its own where it searches what they are read from: the
    protocol, data, ...), reporting after each (``epoch`` = experiences done)."""
    from ray import tune  # RAY

    inputs, found = shared
    found = found if experience_inputs(cfg) == inputs else experiences(cfg)
    started = time.perf_counter()
    [(name, (strategy, start))] = planned_runs(cfg).items()

    def on_experience(done: int, dev_f1: float, model: Path) -> None:
        tune.report({"epoch": done, "dev_f1": dev_f1, "checkpoint_path": str(model),  # RAY
                     "train_s": time.perf_counter() - started})  # fmt: skip

    StrategyRun(cfg, strategy, start, found, trial_dir / STRATEGY_DIR / name).run(on_experience)
