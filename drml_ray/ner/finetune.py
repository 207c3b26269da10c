"""``drml finetune``: the driver side of distributed NER fine-tuning on Ray Train.

1. open the run directory (:func:`~drml_ray.runtime.rundir.open_run`: a finished run is kept unless
   ``--overwrite``, an unfinished one continues from its checkpoints), write the resolved ``config.yaml``,
2. load the corpus,
3. run a ``TorchTrainer`` with ``train_loop_per_worker`` on ``scaling.num_workers`` workers,
4. export the best checkpoint (by dev entity F1) to ``best/`` as a Hugging Face folder,
5. score ``best/`` on dev and test, write ``report_{dev,test}.txt``, ``predictions_test.jsonl`` (tokens, gold
   and predicted tags per test sentence: the report's error analysis), ``best/README.md`` (the model card)
   and, last, ``results.json``.

``drml tune`` runs the same training as its trials (:func:`search_trial`); :mod:`drml_ray.ner.results` is the
kind's part of ``drml report``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drml_ray._ray_compat import quiet_train_worker_logs
from drml_ray.checkpoints import STATE_FILE, load_state
from drml_ray.config import BUILT_IN_BACKBONES, DataConfig, FinetuneConfig, ModelConfig, ScalingSettings
from drml_ray.data.load import NerCorpus, load_corpus
from drml_ray.errors import RunInterrupted, UserError, first_line, user_error_in
from drml_ray.hub import local_folder
from drml_ray.ner.evaluate import load_saved_model, predict_and_score
from drml_ray.ner.features import first_words
from drml_ray.ner.metrics import format_split
from drml_ray.ner.model_card import model_card
from drml_ray.ner.results import PREDICTIONS, write_predictions
from drml_ray.ner.train_record import (
    LOCAL_RECORD,
    RAY_SNAPSHOT,
    RecordKeeper,
    local_result,
    prune_unregistered_checkpoints,
    recover_record,
)
from drml_ray.runtime.registry import Prepared
from drml_ray.runtime.rundir import open_run
from drml_ray.runtime.runfiles import atomic_write_json, atomic_write_text, replace_dir
from drml_ray.text import first_few

if TYPE_CHECKING:
    from drml_ray.ner.train_loop import LoopCallback

# The driver does not import the model code (transformers, peft, drml's loop) before training ends: the workers
# train and it waits, ~140 MB less while they do (BENCHMARKS.md, "Memory of the embedded default").

TRAIN_SUBDIR = "train"
"""Ray Train's storage folder inside the run directory: checkpoints and Ray's run snapshot."""


def train_worker(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: :func:`~drml_ray.ner.train_loop.train_loop_per_worker`, imported there."""
    from drml_ray.ner.train_loop import train_loop_per_worker

    train_loop_per_worker(config)


def check_backbone_apart(model: ModelConfig, num_labels: int, words: Sequence[str], *, here: bool = False) -> None:
    """:func:`~drml_ray.ner.modeling.check_backbone` in a short-lived Python, so that this process stays without
    transformers while the workers train; in-process where transformers is already imported or ``here`` (this
    process trains: nothing to save). Its ``UserError`` is raised here; anything else keeps the child's traceback
    (printed) and is a bug."""
    if here or "transformers" in sys.modules:
        from drml_ray.ner.modeling import check_backbone

        return check_backbone(model, num_labels, words)
    code = "import sys; from drml_ray.ner.modeling import check_backbone_main; sys.exit(check_backbone_main())"
    package_root = str(Path(__file__).resolve().parents[2])  # importable there however this process found it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    request = json.dumps({"model": model.model_dump(mode="json"), "num_labels": num_labels, "words": list(words)})
    child = subprocess.run([sys.executable, "-c", code], input=request, stdout=subprocess.PIPE, text=True, env=env)
    if child.returncode == 2:
        raise UserError(child.stdout.strip())
    if child.returncode != 0:
        raise RuntimeError(f"checking model.backbone failed in its own process (exit {child.returncode}; its "
                           "traceback is above)")  # fmt: skip


def head_note(backbone: str, labels: Sequence[str]) -> str | None:
    """What the trained head of a backbone given as a model folder (or a Hub model in the Hub cache) hands the
    run: its row of each label it has (:func:`~drml_ray.ner.modeling.build_model` carries them by name). ``None``
    where it hands nothing (no trained head: a pre-trained encoder's ``LABEL_0``) or everything (these labels)."""
    from drml_ray.meta.label_head import GENERATOR_FILE

    folder = Path(local_folder(backbone)) if backbone not in BUILT_IN_BACKBONES else None
    if folder is None or not (folder / "config.json").is_file():
        return None
    saved = set((json.loads((folder / "config.json").read_text(encoding="utf-8")).get("id2label") or {}).values())
    kept, fresh = [label for label in labels if label in saved], [label for label in labels if label not in saved]
    if not kept or not fresh:
        return None
    how = "from their names (its label-name generator)" if (folder / GENERATOR_FILE).is_file() else "at random"
    return (
        f"{len(kept)} of {len(labels)} labels keep their row of {backbone}'s trained head ({first_few(kept)}); "
        f"{len(fresh)} start {how} ({first_few(fresh)})"
    )


def fit_reporting_ctrl_c(trainer: Any) -> Any:
    """``trainer.fit()``, a Ctrl+C during it reported as one. Ray Train's own SIGINT handler aborts the run
    gracefully (its checkpoints recorded), and then Ray ends the wait with ``SystemExit(1)`` and no word: that
    becomes :class:`RunInterrupted` (drml exits 130 and says how to continue). Ray's handler is removed after."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if on_main_thread else None
    try:
        return trainer.fit()
    except SystemExit as stop:
        raise RunInterrupted("Ray Train stopped the run (Ctrl+C, or the cluster ending this job): what finished "
                             "is kept; the same command continues from the last checkpoint") from stop  # fmt: skip
    finally:
        if on_main_thread:
            signal.signal(signal.SIGINT, previous)


def run_training(
    cfg: FinetuneConfig, corpus: NerCorpus, run_dir: Path, *, callbacks: list | None = None,
    resume_from: Any = None, name: str = TRAIN_SUBDIR, stop_after_epoch: int | None = None,
    loop_callbacks: Sequence[LoopCallback] = (), extra_loss: tuple[str, dict] | None = None,
):  # fmt: skip
    """Step 3: the Ray Train run, stored in ``run_dir/train``. Returns Ray's ``Result``.

    ``callbacks`` are Ray Train ``UserCallback``s (``drml tune`` passes ``TuneReportCallback``);
    ``resume_from`` is a ``ray.train.Checkpoint`` or folder to start from (PBT: a better trial's weights);
    ``name`` the storage folder; ``stop_after_epoch`` ends the run early (one PBT segment);
    ``loop_callbacks`` run on every worker after each checkpoint (:class:`~drml_ray.ner.train_loop.LoopCallback`);
    ``extra_loss`` is ``("module:function", kwargs)``, a factory each worker calls as ``function(model, device,
    **kwargs)`` for a term added to the loss (:data:`~drml_ray.ner.optimization.ExtraLoss`; continual learning).
    With ``scaling.num_workers: 0`` the loop runs here, in Ray Train's local mode, with no Ray cluster; it continues
    from the latest checkpoint it recorded, and the ``Result`` is read from that record.
    """
    from ray.train import ScalingConfig  # RAY
    from ray.train.torch import TorchTrainer  # RAY

    scaling, train_dir = cfg.scaling, run_dir / name
    if scaling.local:  # Ray Train's local mode: no cluster; the loop keeps its own record of checkpoints
        quiet_train_worker_logs()  # (the loop runs here: Ray Train's INFO lines, "running in local mode", ...)
        resume_from = local_result(train_dir).checkpoint or resume_from
    else:
        start_cluster_run()
    gpu = {"GPU": 1} if scaling.use_gpu else {}
    trainer = TorchTrainer(  # RAY
        train_worker,
        train_loop_config=loop_config(cfg, corpus, run_dir, resume_from)
        | {
            "callbacks": list(loop_callbacks),
            "stop_after_epoch": stop_after_epoch,
            "extra_loss": extra_loss,
        },  # fmt: skip
        scaling_config=ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=scaling.use_gpu,  # RAY
            resources_per_worker=None if scaling.local else {"CPU": scaling.cpus_per_worker} | gpu,
        ),  # fmt: skip
        run_config=_run_config(cfg, run_dir, name, callbacks),
    )
    try:
        result = fit_reporting_ctrl_c(trainer)
    except Exception as err:
        mistake = worker_mistake(err, run_dir)
        if mistake is not None:
            raise mistake from None
        raise
    return local_result(train_dir) if scaling.local else result


def check_scaling(scaling: ScalingSettings) -> None:
    """Where the training will run, checked before the run directory is touched: local mode's device here (the
    loop checks it too), or a Ray that can hold the workers (started here if none is)."""
    if scaling.local:
        from drml_ray.ner.train_loop import worker_device

        worker_device(scaling)
        return
    from drml_ray.ray_env import check_resources

    start_cluster_run()
    gpus = scaling.processes if scaling.use_gpu else 0
    check_resources(scaling.cpus, gpus, f"scaling ({workers_text(scaling)})")


def workers_text(scaling: ScalingSettings) -> str:
    """``2 workers x 1 CPU`` (``+ 1 GPU``): what a run with workers asks Ray for."""
    return f"{scaling.num_workers} workers x {scaling.cpus_per_worker} CPU" + (" + 1 GPU" if scaling.use_gpu else "")


def start_cluster_run() -> None:
    """Ray up (a local one started if none), and the controller's pace set for a run with workers."""
    from drml_ray.ray_env import ensure_ray

    ensure_ray()
    # Ray Train's controller looks at its workers every 2 s by default, and a finished report, checkpoint or run
    # waits for that look: ~8 s of a short run (a continual smoke experience: 20 s -> 11 s at 0.5 s; BENCHMARKS.md).
    # Ray passes the variable on to the controller, on a cluster too; a value the user set is kept.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")


def loop_config(cfg: FinetuneConfig, corpus: NerCorpus, run_dir: Path, resume_from: Any) -> dict[str, Any]:
    """What every worker's loop is handed: the experiment, labels, sentences (and documents), where to start."""
    splits = ("train", "dev", "test") if cfg.train.eval_test else ("train", "dev")
    as_pairs = {split: [(s.tokens, s.tags) for s in corpus.splits[split]] for split in splits}
    documents = {split: [s.doc for s in corpus.splits[split]] for split in as_pairs} if cfg.data.context else None
    return {
        "experiment": cfg.model_dump(mode="json"),
        "labels": corpus.labels,
        "run_dir": str(run_dir),
        # Train V2 dropped resume_from_checkpoint: the loop loads this folder when Ray hands it none.
        "init_checkpoint": str(getattr(resume_from, "path", resume_from)) if resume_from is not None else None,
        "documents": documents,
        **as_pairs,
    }


def _run_config(cfg: FinetuneConfig, run_dir: Path, name: str, callbacks: list | None) -> Any:
    """Where Ray Train stores the run, what it keeps, how often it may restart it."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig  # RAY

    return RunConfig(  # RAY
        name=name,
        storage_path=str(run_dir),
        failure_config=FailureConfig(max_failures=cfg.scaling.max_failures),
        # Keeps the best checkpoint by dev F1 and, always, the latest (to resume from).
        checkpoint_config=CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute="dev_f1", checkpoint_score_order="max"
        ),  # fmt: skip
        logging_config=LoggingConfig(log_level="WARNING"),
        # Worker prints go straight to the driver's console (Ray Train's print patch doubles them).
        worker_runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}},
        callbacks=[*(callbacks or []), RecordKeeper(str(run_dir / name))],
    )


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def worker_mistake(err: Exception, run_dir: Path) -> UserError | None:
    """A worker failure that is the user's to fix, as one: a ``UserError`` raised there (a tampered
    checkpoint), or a disk that filled while Ray Train stored a checkpoint (the one before it stays recorded).
    In local mode the loop's own exception is ``err``."""
    failures = [err, *getattr(err, "worker_failures", {}).values(), getattr(err, "controller_failure", None)]
    for failure in filter(None, failures):  # (a full disk fails the worker storing, or Ray's bookkeeping)
        cause = getattr(failure, "cause", failure)  # (Ray wraps a worker's exception: its cause)
        if (mistake := user_error_in(failure)) is not None:
            return mistake
        if isinstance(cause, OSError) and (cause.errno in FULL_DISK or "No space left" in str(cause)):
            return UserError(f"{run_dir}: a checkpoint could not be stored ({first_line(cause)}); the last recorded "
                             "one is intact: free space and run the same command again to continue")  # fmt: skip
    return None


def export_best(cfg: FinetuneConfig, labels: list[str], checkpoint_dir: Path, out_dir: Path) -> None:
    """Step 4: rebuild the model, load the checkpoint's weights, save a plain HF folder atomically."""
    from drml_ray.ner.modeling import build_model, load_tokenizer, save_hf_folder

    tokenizer = load_tokenizer(cfg.model.backbone)
    model = build_model(cfg.model, labels, seed=cfg.seed, vocab_size=len(tokenizer))
    state = load_state(checkpoint_dir / STATE_FILE)
    model.load_state_dict(state["model"])
    if "ema" in state:  # ``train.ema_decay``: the averaged weights are the ones scored and chosen
        model.load_state_dict(state["ema"], strict=False)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # Windowing settings travel in config.json so evaluate/predict split long sentences the same way.
    model.config.drml = {"max_length": cfg.model.max_length, "window_overlap": cfg.model.window_overlap,
                         "context": cfg.data.context, "decoding": cfg.model.decoding,
                         "casing": cfg.model.casing}  # fmt: skip
    save_hf_folder(model, tokenizer, tmp)
    replace_dir(tmp, out_dir)


def export_and_score(cfg: FinetuneConfig, corpus: NerCorpus, checkpoint_dir: Path, run_dir: Path) -> dict[str, Any]:
    """Steps 4-5: ``checkpoint_dir`` -> ``run_dir/best``, scored on dev and test (reports written)."""
    best_dir = run_dir / "best"
    export_best(cfg, corpus.labels, checkpoint_dir, best_dir)
    print(f"[drml] saved {best_dir}")
    saved = load_saved_model(best_dir)
    scores = {}
    for split in ("dev", "test"):
        sentences = corpus.splits[split]
        scores[split], pred = predict_and_score(saved, sentences, cfg.train.eval_batch_size, f"scoring {split}")
        if split == "test":  # what `drml report` draws its error analysis from
            write_predictions(run_dir / PREDICTIONS, sentences, pred)
        report = format_split(scores[split], split)
        atomic_write_text(run_dir / f"report_{split}.txt", report)
        print(report)
    return scores


def write_model_card(cfg: FinetuneConfig, config_file: Path, results: dict[str, Any], best_dir: Path) -> None:
    """``best/README.md``: the model card of the exported model (:mod:`drml_ray.ner.model_card`)."""
    card = model_card(cfg.name, cfg.model.backbone, config_file.read_text(encoding="utf-8"), results)
    atomic_write_text(best_dir / "README.md", card)


def corpus_summary(corpus: NerCorpus) -> dict[str, Any]:
    """What ``results.json`` records about the data a run used."""
    return {
        "name": corpus.name,
        "generated": corpus.generated,
        "sources": corpus.sources,
        "sizes": {k: len(v) for k, v in corpus.splits.items()},
        "labels": corpus.labels,
    }


def fit_best(
    cfg: FinetuneConfig, corpus: NerCorpus, run_dir: Path, *, loop_callbacks: Sequence[LoopCallback] = (),
    extra_loss: tuple[str, dict] | None = None,
) -> tuple[Path, dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Step 3 in an opened run directory, continuing from its checkpoints: the best checkpoint's folder, its
    metrics and the latest checkpoint's loop state."""
    restart = recover_record(run_dir / TRAIN_SUBDIR)
    result = run_training(cfg, corpus, run_dir, loop_callbacks=loop_callbacks, resume_from=restart,
                          extra_loss=extra_loss)  # fmt: skip
    prune_unregistered_checkpoints(run_dir / TRAIN_SUBDIR)  # an upload an interrupted earlier attempt left
    if not result.best_checkpoints:
        raise RuntimeError(f"{run_dir}: training reported no checkpoint")
    best_checkpoint, best_metrics = max(result.best_checkpoints, key=lambda cm: cm[1]["dev_f1"])
    latest = load_state(Path(result.checkpoint.path) / STATE_FILE)["loop"]
    print(f"[drml] best checkpoint: epoch {best_metrics['epoch']:.2f}, dev F1 {best_metrics['dev_f1']:.4f}")
    return Path(best_checkpoint.path), best_metrics, latest


def run_finetune(
    cfg: FinetuneConfig, run_dir: str | Path, *, overwrite: bool = False, corpus: NerCorpus | None = None,
    loop_callbacks: Sequence[LoopCallback] = (),
) -> dict[str, Any]:  # fmt: skip
    """Train, export, evaluate; returns what was written to ``results.json``.

    ``corpus`` is ``cfg.data`` already loaded, when the caller has it (it is read otherwise).
    """
    if not cfg.scaling.local:
        from drml_ray.ray_env import check_ray_address

        check_ray_address()
    corpus = corpus or load_corpus(cfg.data)  # the inputs are checked before the run directory is touched
    check_backbone_apart(cfg.model, len(corpus.labels), first_words(corpus.splits["train"]), here=cfg.scaling.local)
    check_scaling(cfg.scaling)
    print(f"[drml] run '{cfg.name}' -> {run_dir}\n[drml] {corpus.describe()}")
    if note := head_note(cfg.model.backbone, corpus.labels):
        print(f"[drml] {note}")
    begun = (Path(run_dir).expanduser() / "config.yaml").exists() and not overwrite
    run_dir = open_run(run_dir, cfg, overwrite=overwrite, free=("tune",), inputs=corpus.digests())
    if begun and not any((run_dir / TRAIN_SUBDIR / record).exists() for record in (RAY_SNAPSHOT, LOCAL_RECORD)):
        print("[drml] no checkpoint was recorded there yet: training starts from the beginning")
    s = cfg.scaling
    where = (f"local mode, in this process ({s.cpus_per_worker} torch thread(s), no cluster)" if s.local else
             workers_text(s))  # fmt: skip
    print(f"[drml] Ray Train: {where}")
    started = time.perf_counter()
    best_checkpoint, best_metrics, latest = fit_best(cfg, corpus, run_dir, loop_callbacks=loop_callbacks)
    wall_s = time.perf_counter() - started
    scores = export_and_score(cfg, corpus, best_checkpoint, run_dir)
    results = {
        **scores,
        "best_epoch": best_metrics["epoch"],
        "history": latest["history"],
        "train": {
            "tokens_per_s": latest["train_tokens"] / max(1e-9, latest["train_seconds"]),
            "wall_s": wall_s,
            "train_s": latest["train_seconds"],
            "steps": latest["global_step"],
            "num_workers": cfg.scaling.num_workers,
            "resumed_at_steps": latest["resumed_at_steps"],
        },
        "data": corpus_summary(corpus),
    }
    write_model_card(cfg, run_dir / "config.yaml", results, run_dir / "best")
    atomic_write_json(run_dir / "results.json", results)  # written last: marks the run finished
    print(f"[drml] test entity F1 {scores['test']['entity']['micro']['f1']:.4f}; everything is in {run_dir}")
    return results


# --- drml tune: one trial is one Ray Train run (the kind's TuneSpec) -----------------------------------


SearchData = tuple[DataConfig, NerCorpus]
"""The corpus read once for a search (shipped through the object store) and the data section it was read from."""


def prepare_search(cfg: FinetuneConfig) -> Prepared:
    """The corpus the trials train on (read once), what it is, and its splits' hashes."""
    corpus = load_corpus(cfg.data)
    return Prepared((cfg.data, corpus), corpus.describe(), corpus.digests())


def _corpus_of(cfg: FinetuneConfig, shared: SearchData) -> NerCorpus:
    """The search's corpus, or the trial's own where it searches the data section (data.corpus, data.train, ...)."""
    data, corpus = shared
    return corpus if cfg.data == data else load_corpus(cfg.data, progress=False)


def search_trial(cfg: FinetuneConfig, trial_dir: Path, shared: SearchData, callbacks: Sequence[LoopCallback]) -> None:
    """One trial: Ray Train writes straight into ``trial_dir`` (the run directory's ``tune/trial_N``), not
    into Tune's staging copy of it: Train keeps the best and the latest checkpoint and deletes the rest,
    but Tune's sync from staging only ever adds files, so every epoch's checkpoint would pile up there.
    A restored trial that runs again resumes from ``trial_dir/train`` by itself."""
    from ray.tune.integration.ray_train import TuneReportCallback  # RAY

    corpus = _corpus_of(cfg, shared)
    if cfg.tune is not None and cfg.tune.scheduler.type == "pbt":
        _pbt_segments(cfg, corpus, trial_dir, callbacks)
    else:  # every report of the Train run reaches Tune
        run_training(cfg, corpus, trial_dir, callbacks=[TuneReportCallback()], loop_callbacks=callbacks)


def _pbt_segments(cfg: FinetuneConfig, corpus: NerCorpus, trial_dir: Path, callbacks: Sequence[LoopCallback]) -> None:
    """PBT needs Tune checkpoints to copy between trials: train ``perturbation_interval`` epochs per
    ``TorchTrainer`` run and report each segment's end to Tune with its checkpoint.

    A trial that PBT restarts from a better trial's checkpoint (with mutated parameters) starts its
    next segment from those weights; each segment pays a worker-group start.
    """
    from ray import tune  # RAY

    assert cfg.tune is not None
    checkpoint = tune.get_checkpoint()  # RAY: the weights to continue from (own, or a better trial's)
    epoch = 0
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            epoch = load_state(Path(folder) / STATE_FILE)["loop"]["epoch"]
    while epoch < cfg.train.epochs:
        stop_at = min(cfg.train.epochs, epoch + cfg.tune.scheduler.perturbation_interval)
        result = run_training(cfg, corpus, trial_dir, name=f"{TRAIN_SUBDIR}_from_epoch_{epoch}",
                              resume_from=checkpoint, stop_after_epoch=stop_at, loop_callbacks=callbacks)  # fmt: skip
        metrics = dict(result.metrics)
        checkpoint = result.checkpoint
        tune.report(metrics | {"checkpoint_path": checkpoint.path}, checkpoint=tune.Checkpoint(checkpoint.path))  # RAY
        if metrics.get("stopped_early"):
            return
        epoch = stop_at


def finish_search(best_cfg: FinetuneConfig, run_dir: Path, best: Any, shared: SearchData) -> dict[str, Any]:
    """After the search: every trial's stray checkpoints pruned, the best trial's best checkpoint exported
    to ``best/`` and scored on dev and test (on the best trial's corpus)."""
    corpus = _corpus_of(best_cfg, shared)
    orphans = [p for train in (run_dir / "tune").glob(f"trial_*/{TRAIN_SUBDIR}*")
               for p in prune_unregistered_checkpoints(train)]  # fmt: skip
    if orphans:  # a trial stopped mid-report (ASHA, PBT) leaves an upload Ray Train never registered
        print(f"[drml] removed {len(orphans)} checkpoint(s) that stopped trials left unregistered")
    scores = export_and_score(best_cfg, corpus, Path(best.best_checkpoint), run_dir)
    print(f"[drml] best trial's test entity F1 {scores['test']['entity']['micro']['f1']:.4f}")
    results = {**scores, "data": corpus_summary(corpus)}
    write_model_card(best_cfg, run_dir / "best_config.yaml", results, run_dir / "best")
    return results
