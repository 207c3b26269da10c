"""``drml tune``: hyper-parameter search over any experiment kind, every trial a full run of that kind.

1. open the run directory (``--resume`` continues an interrupted search, ``--overwrite`` restarts),
2. the kind's ``prepare`` loads what every trial shares (a corpus) once, for the object store,
3. run a ``Tuner`` over a *function trainable* (:func:`trial`): each trial applies its parameters to
   the experiment and runs the kind's trial function (a ``TorchTrainer`` with ``TuneReportCallback``,
   or meta-training on its own actors), which reports the kind's metric to the scheduler,
4. summarise: ``trials.csv``, ``trials.png``, ``best_config.yaml`` (a plain experiment file),
5. the kind's ``finish`` turns the best trial into results (fine-tuning: ``best/`` scored on dev and test).

Nothing here knows a kind by name: :mod:`drml_ray.runtime.registry` says how each is searched. Run directory::

    runs/<name>/config.yaml          the search as run
    runs/<name>/tune/trial_00000/    one folder per trial: Tune's results and TensorBoard events, and
                                     what the trial's run writes (Ray Train checkpoints, meta/ weights)
    runs/<name>/trials.csv, trials.png, best_config.yaml, results.json (+ what the kind's finish writes)
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ray  # RAY
from ray import tune  # RAY

from drml_ray.config import TuneSettings, dump_config, with_params
from drml_ray.errors import RunExistsError, RunInterrupted, UserError
from drml_ray.ray_env import check_ray_address, ensure_ray, how_many_fit
from drml_ray.runtime.registry import Scope, TrialPlan, kind_named, kind_of, resolve, searched_kind
from drml_ray.runtime.rundir import check_same_config, check_same_inputs, open_run
from drml_ray.runtime.runfiles import atomic_write_json, atomic_write_text, read_json
from drml_ray.text import counted, shell
from drml_ray.tune.space import expected_trials, make_scheduler, make_searcher, param_space
from drml_ray.tune.summary import (
    TrialSummary,
    ended_trials,
    format_trials,
    summarise_trials,
    write_trial_plot,
    write_trials_csv,
)

TUNE_SUBDIR = "tune"
TRIAL_DRIVER_MEMORY = 512 * 1024**2
"""Bytes of memory reserved by a trial's own process (it waits on its workers or actors, using no CPU)."""


def trial_name(trial: Any) -> str:
    """``trial_00003``: the trial's creation index (Tune's ids carry a random prefix)."""
    return f"trial_{trial.trial_id[-5:]}"


ENDED_FILE = "ended_trials.json"
"""The ids of the trials Tune ended (finished, or stopped by the scheduler), kept across ``--resume``."""


class RecordEndedTrials(tune.Callback):  # RAY
    """Adds each trial Tune ends to ``ENDED_FILE``. Ctrl+C stops the running trials without ``on_trial_complete``
    and Tune lists them as terminated, as those its scheduler stopped: without this record a search whose every
    trial had started and reported was taken for finished, its cut-short trials for ``stopped by asha``."""

    def __init__(self, path: Path):
        self.path = path

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        atomic_write_json(self.path, sorted(read_ended(self.path) | {trial.trial_id}))


def read_ended(path: Path) -> frozenset[str]:
    return frozenset(read_json(path, list, schema=list[str], default=[]))


def recorded_trials(experiment: Path) -> frozenset[str]:
    """The folder names of the trials Tune's last saved state of ``experiment`` lists."""
    from ray.tune import ExperimentAnalysis  # RAY

    return frozenset(Path(t.path).name for t in ExperimentAnalysis(str(experiment)).trials)


def drop_unrecorded_trials(experiment: Path, recorded: frozenset[str]) -> list[str]:
    """Remove the folders of trials Tune's saved state does not list (``recorded``) and return their names.

    A driver killed after a trial started, before Tune next saved its state, leaves that trial's folder (started,
    or even finished) while the state does not list it; on ``--resume`` Tune creates the trial again from its
    saved searcher, finds its name taken and gives it a random suffix (``trial_00001_b741``, beside a
    ``trial_00001`` no table lists). Such a trial runs again from scratch either way; the folders of the trials
    the state lists, reported or not, are Tune's own and stay.
    """
    dropped = sorted(p.name for p in experiment.glob("trial_*") if p.is_dir() and p.name not in recorded)
    for name in dropped:
        shutil.rmtree(experiment / name)
    return dropped


def concurrent_trials(plan: TrialPlan, limit: int | None, cluster: dict[str, float]) -> int:
    """How many trials run at once: ``tune.max_concurrent_trials``, else as many trials' workers as fit.

    A trial's own process reserves almost nothing (it waits on its workers), so without this limit
    Tune would start every trial and their workers would queue for CPUs.

    >>> concurrent_trials(TrialPlan(cpus=2, gpus=0, budget=3, workers="2 workers"), None, {"CPU": 5.0})
    2
    """
    if limit:
        return limit
    fits = how_many_fit(plan.cpus, plan.gpus, cluster) or 0
    if fits < 1:
        gpus = f" and {counted(plan.gpus, 'GPU')}" if plan.gpus else ""
        raise UserError(
            f"one trial needs {counted(plan.cpus, 'CPU')}{gpus} ({plan.workers}) but the cluster has "
            f"{counted(cluster.get('CPU', 0), 'CPU')}: use fewer workers, or set tune.max_concurrent_trials on an "
            "autoscaling cluster"
        )
    return fits


def trial(params: dict[str, Any], *, kind: str, base: dict[str, Any], shared: Any, experiment_dir: str,
          callbacks: Sequence[Any]) -> None:  # fmt: skip
    """One Tune trial: the experiment with ``params`` applied, run by its kind in the trial's own folder of
    ``tune/`` (the run directory itself, not Tune's staging copy of it). The folder is named as Tune named it: the
    trial's name, suffixed where a folder of that name was there (one a killed driver's trial left behind)."""
    spec = kind_named(kind)
    cfg = with_params(spec.config.model_validate(base), params)
    trial_dir = Path(experiment_dir) / Path(tune.get_context().get_trial_dir()).name  # RAY
    resolve(spec.tune.trial)(cfg, trial_dir, shared, callbacks)  # type: ignore[union-attr]


def _open_search(cfg: Any, run_dir: Path, resume: bool, overwrite: bool, inputs: Mapping[str, str]) -> Path:
    """The search's run directory: ``--resume`` continues one of the same config and ``inputs`` (finished or not:
    its errored trials run again), an unfinished one is never started over without ``--overwrite``."""
    run_dir = Path(run_dir).expanduser().resolve()
    if resume and not overwrite:
        if (run_dir / "config.yaml").exists():
            check_same_config(run_dir / "config.yaml", cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        check_same_inputs(run_dir, inputs)  # (trials on other data would be ranked beside the finished ones)
        atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
        return run_dir
    if (run_dir / TUNE_SUBDIR).exists() and not overwrite and not (run_dir / "results.json").exists():
        raise RunExistsError(f"{run_dir} holds an unfinished search: pass --resume to continue it, or --overwrite")
    return open_run(run_dir, cfg, overwrite=overwrite, inputs=inputs)


def run_tune(
    cfg: Any, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Search, summarise, let the kind finish the best trial; returns what was written to ``results.json``.
    ``callbacks`` go to every trial's training loop (fault injection in tests)."""
    kind = searched_kind(cfg)
    spec, settings = kind.tune, cfg.tune
    assert spec is not None
    launched = time.time()
    check_ray_address()  # (before the kind reads its inputs: seconds, for a corpus)
    plan = spec.plan(cfg)  # (a trial the kind cannot run, or inputs it cannot read, refused before anything is written)
    shared, what, inputs = resolve(spec.prepare)(cfg)
    run_dir = _open_search(cfg, Path(run_dir), resume, overwrite, inputs)
    print(f"[drml] tune '{cfg.name}' -> {run_dir}\n[drml] {what}")
    ensure_ray()
    limit = concurrent_trials(plan, settings.max_concurrent_trials, ray.cluster_resources())  # RAY
    gpus = f", {counted(plan.gpus, 'GPU')}" if plan.gpus else ""
    print(f"[drml] each trial: {plan.workers} ({counted(plan.cpus, 'CPU')}{gpus}); "
          f"{limit} trial(s) at a time; search {settings.search}, scheduler {settings.scheduler.type}")  # fmt: skip
    trainable = tune.with_parameters(trial, kind=kind.name, base=cfg.model_dump(mode="json"), shared=shared,  # RAY
                                     experiment_dir=str(run_dir / TUNE_SUBDIR), callbacks=list(callbacks))  # fmt: skip
    # The trial itself only waits on its workers, which reserve the CPUs/GPUs. Tune refuses an empty
    # request, and any CPU share would leave the workers' whole CPUs short (2 trials x 0.01 CPU on 2 CPUs:
    # the second worker waits forever), so the trial reserves memory only.
    trainable = tune.with_resources(trainable, {"CPU": 0, "memory": TRIAL_DRIVER_MEMORY})  # RAY
    started = time.perf_counter()
    grid = _tuner(cfg, trainable, run_dir, plan, limit, resume).fit()
    wall_s = time.perf_counter() - started
    trials, best = _best_trial(grid, settings, plan.budget, spec.scope, run_dir)
    # named apart from the search: `drml finetune runs/NAME/best_config.yaml` writes runs/NAME_best, not into the
    # search's folder (where it was refused as a finished run, and --overwrite would have deleted the search)
    best_cfg = with_params(cfg, best.params).model_copy(update={"tune": None, "name": f"{cfg.name[:195]}_best"})
    atomic_write_text(run_dir / "best_config.yaml", dump_config(best_cfg, exclude={"tune"}))
    print(f"[drml] best trial {best.name}: {settings.metric} {best.best_metric:.4f} with {best.params}")
    results = resolve(spec.finish)(best_cfg, run_dir, best, shared) | {
        "best_trial": best.name, "best_params": best.params, f"best_{settings.metric}": best.best_metric,
        "trials": [t.row() for t in trials],
        "tune": {"wall_s": wall_s, "trial_epochs": sum(t.epochs for t in trials), "max_concurrent": limit,
                 "first_trial_started_after_s": first_start_after(trials, launched),
                 "mean_trial_overhead_s": sum(t.wall_s - t.train_s for t in trials) / len(trials)},
    }  # fmt: skip
    atomic_write_json(run_dir / "results.json", results)  # written last: marks the search finished
    print(f"[drml] everything is in {run_dir} (TensorBoard: drml tensorboard {shell(run_dir)})")
    return results


def _best_trial(
    grid: Any, settings: TuneSettings, budget: int, scope: Scope, run_dir: Path
) -> tuple[list[TrialSummary], TrialSummary]:
    """Every trial of the search (written to ``trials.csv`` and ``trials.png``, printed) and the best one; raises
    :class:`RunInterrupted` when the search stopped before all its trials ended (Ctrl+C: Tune saved its state)."""
    trials = summarise_trials(grid, settings, budget, scope, ended=read_ended(run_dir / ENDED_FILE))
    write_trials_csv(trials, run_dir / "trials.csv")
    write_trial_plot(trials, run_dir / "trials.png", settings.metric)
    print(format_trials(trials, settings.metric, scope))
    ended = min(grid.num_terminated + grid.num_errors, len(ended_trials(trials)))
    expected = max(expected_trials(settings), len(trials))
    if ended < expected:  # nothing is marked finished
        raise RunInterrupted(f"the search stopped with {ended} of {expected} trials ended ({run_dir / 'trials.csv'} "
                             "lists them); run the same command with --resume to continue it")  # fmt: skip
    failed = [t for t in trials if t.state == "error"]
    if failed:
        print(f"[drml] {len(failed)} of {counted(len(trials), 'trial')} failed (trials.csv has each one's error); "
              + "; ".join(f"{t.name} {t.params}: {t.error}" for t in failed[:3]))  # fmt: skip
    finished = [t for t in trials if t.best_checkpoint]
    if failed and len(failed) == len(trials) and failed[0].error.startswith("UserError: "):  # (a setting of all)
        raise UserError(f"every trial failed; {failed[0].name}: {failed[0].error.removeprefix('UserError: ')}")
    if not finished:
        raise RuntimeError(f"{run_dir}: no trial reported a checkpoint (see trials.csv and the trial folders)")
    return trials, max(finished, key=lambda t: t.best_metric if settings.mode == "max" else -t.best_metric)


def _tuner(cfg: Any, trainable: Any, run_dir: Path, plan: TrialPlan, limit: int, resume: bool) -> Any:
    """A new ``Tuner``, or the interrupted search of ``run_dir`` restored (``--resume``)."""
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner  # RAY

    settings, experiment = cfg.tune, run_dir / TUNE_SUBDIR
    if resume and Tuner.can_restore(str(experiment)):
        print(f"[drml] resuming the search in {experiment} (unfinished and errored trials run again)")
        for name in drop_unrecorded_trials(experiment, recorded_trials(experiment)):
            print(f"[drml] {name} started after the search last saved its state, so it runs again")
        return Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True, resume_errored=True)
    if resume:
        print(f"[drml] --resume: no search to resume in {run_dir}, so it starts")
    return Tuner(
        trainable,
        param_space=param_space(settings),
        tune_config=TuneConfig(
            metric=settings.metric, mode=settings.mode,
            num_samples=1 if settings.search == "grid" else settings.num_samples,
            # Tune limits an Optuna searcher itself; its own variant generators take the limit from make_searcher
            # (given max_concurrent_trials too, Tune warns the user that it ignores it).
            max_concurrent_trials=limit if settings.search == "optuna" else None,
            scheduler=make_scheduler(settings, plan.budget, state_dir=run_dir, max_concurrent=limit),
            search_alg=make_searcher(settings, cfg.seed, limit, state_dir=run_dir),
            trial_name_creator=trial_name, trial_dirname_creator=trial_name,
        ),
        run_config=RunConfig(
            name=TUNE_SUBDIR, storage_path=str(run_dir),
            failure_config=FailureConfig(max_failures=plan.retries),
            callbacks=[RecordEndedTrials(run_dir / ENDED_FILE)],  # (pickled with the search: --resume keeps it)
            checkpoint_config=CheckpointConfig(num_to_keep=4),  # PBT copies them between trials
            verbose=1,
        ),
    )  # fmt: skip


def first_start_after(trials: list[Any], launched: float) -> float | None:
    """Seconds from this ``drml tune`` invocation to its first trial's first report (trials of an earlier
    invocation, before a ``--resume``, do not count); None if no trial started.

    >>> from types import SimpleNamespace as T
    >>> first_start_after([T(started_at=90.0), T(started_at=130.0), T(started_at=float("nan"))], launched=100.0)
    30.0
    """
    started = [t.started_at for t in trials if t.started_at >= launched]
    return min(started) - launched if started else None


def best_model_results(best_cfg: Any, run_dir: Path, best: Any, shared: Any) -> dict[str, Any]:
    """The ``finish`` of kinds whose trials report the folder of what they trained as ``checkpoint_path``
    (meta-learning, meta-RL): that folder, once the trial got as far as writing it."""
    model = Path(best.best_checkpoint)
    exported = model.is_dir() and any(model.iterdir())
    where = str(model) if exported else "not exported (the trial was stopped before it wrote it)"
    kind = kind_of(best_cfg)
    command = kind.tune.command if kind.tune and kind.tune.command else kind.commands[0].name
    print(f"[drml] best trial's model: {where}; `drml {command} {shell(run_dir / 'best_config.yaml')}` trains it again")
    return {"best_model": str(model) if exported else None}
