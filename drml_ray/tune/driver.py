"""``drml tune``: hyper-parameter search over an experiment, every trial a distributed training run.

1. prepare the run directory (``--resume`` continues an interrupted search, ``--overwrite`` restarts),
2. load the corpus once and hand it to every trial through the object store,
3. run a ``Tuner`` over a *function trainable* (:func:`finetune_trial`): each trial applies its
   parameters to the experiment and runs its own ``TorchTrainer`` with ``TuneReportCallback``, so
   dev F1 reaches the scheduler after every epoch (Ray 2.60's supported Train-inside-Tune pattern),
4. summarise: ``trials.csv``, ``trials.png``, ``best_config.yaml`` (a plain ``drml finetune`` file),
5. export the best trial's best checkpoint to ``best/``, score it on dev and test, write ``results.json``.

Run directory::

    runs/<name>/config.yaml          the search as run
    runs/<name>/tune/trial_00000/    one folder per trial: Tune's results and TensorBoard events,
                                     train/ (Ray Train checkpoints), tensorboard/ (loss, lr, dev F1)
    runs/<name>/trials.csv, trials.png, best_config.yaml, best/, report_{dev,test}.txt, results.json
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import ray  # RAY
from ray import tune  # RAY

from drml_ray.config import FinetuneConfig, MetaExperiment, RLExperiment, dump_config, with_params
from drml_ray.data.load import NerCorpus, load_corpus
from drml_ray.ner.finetune import (
    TRAIN_SUBDIR,
    corpus_summary,
    export_and_score,
    prune_unregistered_checkpoints,
    run_training,
)
from drml_ray.ray_env import ensure_ray
from drml_ray.runs import RunExistsError, RunInterrupted, atomic_write_json, atomic_write_text, prepare_run_dir
from drml_ray.tune.space import expected_trials, make_scheduler, make_searcher, param_space
from drml_ray.tune.summary import format_trials, summarise_trials, write_trial_plot, write_trials_csv

TUNE_SUBDIR = "tune"
TRIAL_DRIVER_MEMORY = 512 * 1024**2
"""Bytes of memory reserved by a trial's own process (it waits on its Ray Train workers, using no CPU)."""


def trial_name(trial: Any) -> str:
    """``trial_00003``: the trial's creation index (Tune's ids carry a random prefix)."""
    return f"trial_{trial.trial_id[-5:]}"


Experiment = FinetuneConfig | MetaExperiment | RLExperiment
RL_METRIC = "heldout_return"
"""What a meta-RL trial reports: the held-out tasks' return averaged over ``eval.adapt_iters`` PPO iterations."""


def trial_cpus_gpus(cfg: Experiment) -> tuple[int, int]:
    """What one trial's Ray Train worker group (meta-learning: its actor pool) reserves."""
    if isinstance(cfg, MetaExperiment | RLExperiment):
        return cfg.meta.workers * cfg.meta.cpus_per_worker, 0
    workers = cfg.scaling.num_workers
    return workers * cfg.scaling.cpus_per_worker, workers if cfg.scaling.use_gpu else 0


def concurrent_trials(cfg: Experiment, cluster: dict[str, float]) -> int:
    """How many trials run at once: ``tune.max_concurrent_trials``, else as many worker groups as fit.

    A trial's own process reserves almost nothing (it waits on its TorchTrainer), so without this limit
    Tune would start every trial and their worker groups would queue for CPUs.

    >>> cfg = FinetuneConfig(name="x", scaling={"num_workers": 2}, tune={})
    >>> concurrent_trials(cfg, {"CPU": 5.0})
    2
    """
    assert cfg.tune is not None
    if cfg.tune.max_concurrent_trials:
        return cfg.tune.max_concurrent_trials
    cpus, gpus = trial_cpus_gpus(cfg)
    fits = math.floor(cluster.get("CPU", 0) / cpus)
    if gpus:
        fits = min(fits, math.floor(cluster.get("GPU", 0) / gpus))
    if fits < 1:
        raise ValueError(
            f"one trial needs {cpus} CPUs{f' and {gpus} GPUs' if gpus else ''} (scaling) but the cluster has "
            f"{cluster.get('CPU', 0):g} CPUs: lower scaling.num_workers (meta.workers), or set "
            "tune.max_concurrent_trials on an autoscaling cluster"
        )
    return fits


def finetune_trial(
    params: dict[str, Any], *, base: dict[str, Any], corpus: NerCorpus, experiment_dir: str,
    fail_after_eval: int | None = None,
) -> None:  # fmt: skip
    """One Tune trial: the experiment with ``params`` applied, trained on its own Ray Train workers.

    Ray Train writes straight into the trial's folder under ``experiment_dir`` (the run directory's
    ``tune/``), not into Tune's local staging copy of it: Train keeps the best and the latest
    checkpoint and deletes the rest, but Tune's sync from staging to the run directory only ever adds
    files, so every epoch's checkpoint would pile up there (260 MB each for MiniLM with AdamW state).
    """
    from ray.tune.integration.ray_train import TuneReportCallback  # RAY

    cfg = with_params(FinetuneConfig.model_validate(base), params)
    trial_dir = Path(experiment_dir) / tune.get_context().get_trial_name()  # RAY
    if cfg.tune is not None and cfg.tune.scheduler.type == "pbt":
        _pbt_segments(cfg, corpus, trial_dir)
        return
    # Ray Train resumes by itself from trial_dir/train when a restored trial runs again.
    run_training(cfg, corpus, trial_dir, callbacks=[TuneReportCallback()],  # RAY: every report -> Tune
                 fail_after_eval=fail_after_eval)  # fmt: skip


def meta_trial(params: dict[str, Any], *, base: dict[str, Any]) -> None:
    """One Tune trial of a meta-learning search: meta-train with ``params`` applied, reporting the
    held-out dev F1 after adaptation at every evaluation (``epoch`` = evaluations so far)."""
    from drml_ray.meta.driver import run_meta_train

    cfg = with_params(MetaExperiment.model_validate(base), params)
    trial_dir = Path(tune.get_context().get_trial_dir())  # RAY
    started = time.perf_counter()

    def on_eval(algorithm: str, step: int, mean_f1: float) -> None:
        tune.report({"epoch": step / cfg.meta.eval_every, "dev_f1": mean_f1, "meta_step": step,  # RAY
                     "checkpoint_path": str(trial_dir / "meta" / algorithm),
                     "train_s": time.perf_counter() - started})  # fmt: skip

    run_meta_train(cfg, trial_dir / "meta", on_eval=on_eval)


def rl_trial(params: dict[str, Any], *, base: dict[str, Any]) -> None:
    """One Tune trial of a meta-RL search: Reptile over PPO with ``params`` applied (no baselines),
    reporting the held-out return after adaptation at every check (``epoch`` = checks so far)."""
    from drml_ray.rl.driver import run_rl_meta_train

    cfg = with_params(RLExperiment.model_validate(base), params | {"meta.methods": ["meta"]})
    trial_dir = Path(tune.get_context().get_trial_dir())  # RAY
    started = time.perf_counter()

    def on_progress(step: int, heldout_return: float) -> None:
        weights = str(trial_dir / "run" / "meta")
        tune.report({"epoch": step / cfg.meta.eval_every, RL_METRIC: heldout_return, "meta_step": step,  # RAY
                     "checkpoint_path": weights, "train_s": time.perf_counter() - started})  # fmt: skip

    run_rl_meta_train(cfg, trial_dir / "run", on_progress=on_progress)


def max_epochs(cfg: Experiment) -> int:
    """The schedulers' time budget of one trial: epochs, or held-out evaluations for meta-learning."""
    if isinstance(cfg, MetaExperiment | RLExperiment):
        return math.ceil(cfg.meta.meta_steps / cfg.meta.eval_every)
    return cfg.train.epochs


def _pbt_segments(cfg: FinetuneConfig, corpus: NerCorpus, trial_dir: Path) -> None:
    """PBT needs Tune checkpoints to copy between trials: train ``perturbation_interval`` epochs per
    ``TorchTrainer`` run and report each segment's end to Tune with its checkpoint.

    A trial that PBT restarts from a better trial's checkpoint (with mutated parameters) starts its
    next segment from those weights; each segment pays a worker-group start.
    """
    assert cfg.tune is not None
    checkpoint = tune.get_checkpoint()  # RAY: the weights to continue from (own, or a better trial's)
    epoch = 0
    if checkpoint is not None:
        import torch

        from drml_ray.ner.train_loop import STATE_FILE

        with checkpoint.as_directory() as folder:
            epoch = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)["loop"]["epoch"]
    while epoch < cfg.train.epochs:
        stop_at = min(cfg.train.epochs, epoch + cfg.tune.scheduler.perturbation_interval)
        result = run_training(cfg, corpus, trial_dir, name=f"{TRAIN_SUBDIR}_from_epoch_{epoch}",
                              resume_from=checkpoint, stop_after_epoch=stop_at)  # fmt: skip
        metrics = dict(result.metrics)
        checkpoint = result.checkpoint
        tune.report(metrics | {"checkpoint_path": checkpoint.path}, checkpoint=tune.Checkpoint(checkpoint.path))  # RAY
        if metrics.get("stopped_early"):
            return
        epoch = stop_at


def _trainable(cfg: Experiment, corpus: NerCorpus | None, experiment_dir: Path) -> Any:
    if isinstance(cfg, MetaExperiment | RLExperiment):
        function = meta_trial if isinstance(cfg, MetaExperiment) else rl_trial
        trainable = tune.with_parameters(function, base=cfg.model_dump(mode="json"))  # RAY
        return tune.with_resources(trainable, {"CPU": 0, "memory": TRIAL_DRIVER_MEMORY})  # RAY
    assert corpus is not None
    # (the fault injection of the tests is read here, on the driver, and travels with the trials)
    fail_after = int(os.environ.get("DRML_TEST_FAIL_AFTER_EVAL", "0")) or None
    trainable = tune.with_parameters(finetune_trial, base=cfg.model_dump(mode="json"), corpus=corpus,
                                     experiment_dir=str(experiment_dir), fail_after_eval=fail_after)  # fmt: skip  # RAY
    # The trial itself only waits on its TorchTrainer, whose workers reserve the CPUs/GPUs. Tune refuses
    # an empty request, and any CPU share would leave the workers' whole CPUs short (2 trials x 0.01 CPU
    # on 2 CPUs: the second worker waits forever), so the trial reserves memory only.
    return tune.with_resources(trainable, {"CPU": 0, "memory": TRIAL_DRIVER_MEMORY})  # RAY


def run_tune(cfg: Experiment, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Search, summarise, export the best; returns what was written to ``results.json``."""
    if cfg.tune is None or not cfg.tune.space:
        raise ValueError(f"experiment '{cfg.name}' has no tune.space to search (see configs/tune/smoke.yaml)")
    settings = cfg.tune
    rl = isinstance(cfg, RLExperiment)
    if rl and settings.metric != RL_METRIC:
        raise ValueError(f"a meta-RL search reports {RL_METRIC} (the held-out return after adaptation): "
                         f"set tune.metric: {RL_METRIC} and tune.mode: max (got {settings.metric!r})")  # fmt: skip
    meta = isinstance(cfg, MetaExperiment | RLExperiment)
    if isinstance(cfg, MetaExperiment) and len(cfg.meta.algorithms) != 1 and "meta.algorithms" not in settings.space:
        raise ValueError(
            "a meta-learning search tunes one algorithm per trial: set meta.algorithms: [reptile], or search "
            "over it with tune.space: {meta.algorithms: {choice: [[reptile], [fomaml]]}}"
        )
    launched = time.time()
    run_dir = Path(run_dir).expanduser().resolve()
    experiment = run_dir / TUNE_SUBDIR
    if resume and not overwrite:  # a finished search may be resumed too: its errored trials run again
        written = run_dir / "config.yaml"
        if written.exists() and written.read_text(encoding="utf-8") != dump_config(cfg):
            raise RunExistsError(
                f"{run_dir} holds a search of a different config ({written}); resume it with that file"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        if experiment.exists() and not overwrite and not (run_dir / "results.json").exists():
            raise RunExistsError(f"{run_dir} holds an unfinished search: pass --resume to continue it, or --overwrite")
        run_dir = prepare_run_dir(run_dir, overwrite=overwrite)
    corpus = None if meta else load_corpus(cfg.data)
    if rl:
        what = f"meta-RL (Reptile over PPO) on {cfg.env.family}; the held-out return after adaptation is the metric"
    elif meta:
        what = f"meta-learning over {', '.join(cfg.meta.train_tasks)}; held-out dev F1 after adaptation is the metric"
    else:
        what = corpus.describe()
    print(f"[drml] tune '{cfg.name}' -> {run_dir}\n[drml] {what}")
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))

    ensure_ray()
    limit = concurrent_trials(cfg, ray.cluster_resources())  # RAY
    cpus, gpus = trial_cpus_gpus(cfg)
    print(f"[drml] each trial: {cfg.meta.workers if meta else cfg.scaling.num_workers} "
          f"{'Ray actors' if meta else 'Ray Train workers'} ({cpus} CPUs"
          f"{f', {gpus} GPUs' if gpus else ''}); {limit} trial(s) at a time; search {settings.search}, "
          f"scheduler {settings.scheduler.type}")  # fmt: skip

    from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner  # RAY

    started = time.perf_counter()
    if resume and Tuner.can_restore(str(experiment)):
        print(f"[drml] resuming the search in {experiment} (unfinished and errored trials run again)")
        tuner = Tuner.restore(str(experiment), trainable=_trainable(cfg, corpus, experiment),
                              resume_unfinished=True, resume_errored=True)  # fmt: skip
    else:
        tuner = Tuner(
            _trainable(cfg, corpus, experiment),
            param_space=param_space(settings),
            tune_config=TuneConfig(
                metric=settings.metric, mode=settings.mode,
                num_samples=1 if settings.search == "grid" else settings.num_samples,
                max_concurrent_trials=limit,
                scheduler=make_scheduler(settings, max_epochs(cfg), state_dir=run_dir, max_concurrent=limit),
                search_alg=make_searcher(settings, cfg.seed, limit, state_dir=run_dir),
                trial_name_creator=trial_name, trial_dirname_creator=trial_name,
            ),
            run_config=RunConfig(
                name=TUNE_SUBDIR, storage_path=str(run_dir.resolve()),
                failure_config=FailureConfig(max_failures=0 if meta else max(0, cfg.scaling.max_failures)),
                checkpoint_config=CheckpointConfig(num_to_keep=4),  # PBT copies them between trials
                verbose=1,
            ),
        )  # fmt: skip
    grid = tuner.fit()
    wall_s = time.perf_counter() - started
    if not meta:  # a trial stopped mid-report (ASHA, PBT) leaves an upload Ray Train never registered
        trains = experiment.glob(f"trial_*/{TRAIN_SUBDIR}*")
        orphans = [p for train in trains for p in prune_unregistered_checkpoints(train)]
        if orphans:
            print(f"[drml] removed {len(orphans)} checkpoint(s) that stopped trials left unregistered")

    trials = summarise_trials(grid, settings, max_epochs(cfg))
    write_trials_csv(trials, run_dir / "trials.csv")
    write_trial_plot(trials, run_dir / "trials.png", settings.metric)
    print(format_trials(trials, settings.metric))
    expected, ended = max(expected_trials(settings), len(trials)), grid.num_terminated + grid.num_errors
    if ended < expected:  # Ctrl+C: Tune saved its state and returned; nothing is marked finished
        raise RunInterrupted(f"the search stopped with {ended} of {expected} trials ended ({run_dir / 'trials.csv'} "
                             "lists them); run the same command with --resume to continue it")  # fmt: skip
    finished = [t for t in trials if t.best_checkpoint]
    if not finished:
        raise RuntimeError(f"{experiment}: no trial reported a checkpoint (see trials.csv and the trial folders)")
    best = max(finished, key=lambda t: t.best_metric if settings.mode == "max" else -t.best_metric)
    best_cfg = with_params(cfg, best.params).model_copy(update={"tune": None})
    atomic_write_text(run_dir / "best_config.yaml", dump_config(best_cfg, exclude={"tune"}))
    print(f"[drml] best trial {best.name}: {settings.metric} {best.best_metric:.4f} with {best.params}")

    if meta:
        return _finish_meta_search(cfg, run_dir, best, trials, wall_s, limit, launched)
    assert corpus is not None
    scores = export_and_score(best_cfg, corpus, Path(best.best_checkpoint), run_dir)
    results = {
        **scores,
        "best_trial": best.name,
        "best_params": best.params,
        "trials": [t.row() for t in trials],
        "tune": {
            "wall_s": wall_s,
            "trial_epochs": sum(t.epochs for t in trials),
            "max_concurrent": limit,
            "first_trial_started_after_s": first_start_after(trials, launched),
            "mean_trial_overhead_s": sum(t.wall_s - t.train_s for t in trials) / len(trials),
        },
        "data": corpus_summary(corpus),
    }
    atomic_write_json(run_dir / "results.json", results)  # written last: marks the search finished
    print(f"[drml] best trial's test entity F1 {scores['test']['entity']['micro']['f1']:.4f}; "
          f"everything is in {run_dir} (TensorBoard: drml tensorboard {run_dir})")  # fmt: skip
    return results


def first_start_after(trials: list[Any], launched: float) -> float | None:
    """Seconds from this ``drml tune`` invocation to its first trial's first report (trials of an earlier
    invocation, before a ``--resume``, do not count); None if no trial started.

    >>> from types import SimpleNamespace as T
    >>> first_start_after([T(started_at=90.0), T(started_at=130.0), T(started_at=float("nan"))], launched=100.0)
    30.0
    """
    started = [t.started_at for t in trials if t.started_at >= launched]
    return min(started) - launched if started else None


def _finish_meta_search(
    cfg: MetaExperiment | RLExperiment, run_dir: Path, best: Any, trials: list, wall_s: float, limit: int,
    launched: float,
) -> dict[str, Any]:  # fmt: skip
    """A meta-learning search's results: the best trial's held-out score and its meta-learned model."""
    model = Path(best.best_checkpoint)
    rl = isinstance(cfg, RLExperiment)
    exported = (model / "weights.pt").is_file() if rl else (model / "config.json").is_file()
    results = {
        "best_trial": best.name,
        "best_params": best.params,
        ("best_heldout_return" if rl else "best_heldout_dev_f1"): best.best_metric,
        "best_model": str(model) if exported else None,
        "trials": [t.row() for t in trials],
        "tune": {
            "wall_s": wall_s,
            "trial_evaluations": sum(t.epochs for t in trials),
            "max_concurrent": limit,
            "first_trial_started_after_s": first_start_after(trials, launched),
        },
    }
    atomic_write_json(run_dir / "results.json", results)
    where = results["best_model"] or "not exported (the trial was stopped before its last meta-step)"
    command = "drml rl meta-train" if rl else "drml meta-train"
    print(
        f"[drml] best trial's meta-learned model: {where}; `{command} {run_dir / 'best_config.yaml'}` trains it again"
    )
    return results
