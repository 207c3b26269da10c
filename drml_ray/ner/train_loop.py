"""The per-worker NER training loop that Ray Train runs on every worker, as named steps.

:func:`train_loop_per_worker` reads top to bottom: :func:`set_up` (features, model, optimizer,
schedule), :func:`restore` (the latest checkpoint, if Ray hands one over), then
:func:`train_one_epoch` until the epochs run out or dev F1 stops improving. At each evaluation point,
:func:`evaluate` scores dev (and test, with ``train.eval_test``) on all workers (predictions gathered, so
the F1 is the single-process F1) and :func:`checkpoint` reports the metrics and a checkpoint to Ray. The Ray
calls are marked ``# RAY``.

A :class:`LoopCallback` (``run_training(..., loop_callbacks=[...])``) is called on every worker after each
checkpoint; the tests inject faults through it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ray.train  # RAY
import ray.train.torch  # RAY
import torch
import torch.distributed as dist

from drml_ray._ray_compat import quiet_train_worker_logs
from drml_ray.checkpoints import STAGING_DIR, STATE_FILE, load_state, save_state
from drml_ray.config import FinetuneConfig, ScalingSettings
from drml_ray.errors import UserError
from drml_ray.ner import batching
from drml_ray.ner.averaging import WeightAverage
from drml_ray.ner.batching import supports_packing
from drml_ray.ner.features import Window, encode, encode_documents
from drml_ray.ner.inference import merge_outputs, predict_windows
from drml_ray.ner.metrics import entity_micro
from drml_ray.ner.modeling import build_model, load_tokenizer
from drml_ray.ner.optimization import (
    ExtraLoss,
    group_schedule,
    label_count,
    make_optimizer,
    regrouped_state,
    train_step,
)
from drml_ray.ner.strategies import trainable_summary
from drml_ray.ner.train_record import keep_local_checkpoint, local_checkpoint_name


@dataclass
class LoopState:
    """Everything besides model/optimizer weights that a resumed run needs."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_f1: float = -1.0
    best_epoch: float = 0.0
    evals_since_best: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_at_steps: list[int] = field(default_factory=list)
    """Global steps at which this run was restored from a checkpoint."""

    def note_dev(self, f1: float, epoch: float, warmup_steps: int) -> None:
        """Keep the best dev F1 and count the evaluations since it; those up to the end of warm-up do not count
        towards ``train.patience``: a start that already scores (a meta-learned one, a continual experience's
        previous model) can dip while the learning rate is still rising.

        >>> s = LoopState(global_step=13); s.note_dev(0.30, 1.0, warmup_steps=39)
        >>> s.global_step = 26; s.note_dev(0.20, 2.0, 39); s.global_step = 39; s.note_dev(0.22, 3.0, 39)
        >>> s.best_f1, s.best_epoch, s.evals_since_best
        (0.3, 1.0, 0)
        >>> s.global_step = 52; s.note_dev(0.25, 4.0, 39); s.evals_since_best
        1
        >>> s.global_step = 65; s.note_dev(0.40, 5.0, 39); s.best_f1, s.best_epoch, s.evals_since_best
        (0.4, 5.0, 0)

        A tie is no improvement, but the best epoch is the later one: the checkpoint kept is (Ray's
        ``num_to_keep=1`` keeps the later of two equal scores), so the log names the one exported.

        >>> s.global_step = 78; s.note_dev(0.40, 6.0, 39); s.best_f1, s.best_epoch, s.evals_since_best
        (0.4, 6.0, 1)
        """
        if f1 >= self.best_f1:
            self.best_epoch = epoch
        if f1 > self.best_f1:
            self.best_f1, self.evals_since_best = f1, 0
        elif self.global_step > warmup_steps:
            self.evals_since_best += 1


class LoopCallback(Protocol):
    """Called on every worker after each checkpoint was reported (rank 0 wrote it). Raising fails the
    worker, as a crash would: Ray Train restarts the group from the latest checkpoint (``scaling.max_failures``)."""

    def after_checkpoint(self, state: LoopState, rank: int, run_dir: Path) -> None: ...


@dataclass
class EvalSet:
    """A split scored at each evaluation point: its windows, this worker's share of them in length-sorted
    batches, and the gold tags of every sentence."""

    windows: list[Window]
    batches: list[list[int]]
    tags: list[list[str]]


@dataclass
class Worker:
    """One worker's view of the run: what :func:`set_up` builds and the steps use."""

    cfg: FinetuneConfig
    labels: list[str]
    run_dir: Path
    rank: int
    world: int
    device: torch.device
    dtype: torch.dtype | None
    tokenizer: Any
    train_windows: list[Window]
    lengths: list[int]
    """Sub-tokens of each training window (batch plans, packing)."""
    labelled: list[int]
    """Labelled sub-tokens of each training window (the global loss normaliser)."""
    dev: EvalSet
    test: EvalSet | None
    """Scored beside dev when ``train.eval_test`` is on (the test curve; never used to pick a checkpoint)."""
    model: torch.nn.Module
    ddp_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    pack: bool
    callbacks: list[LoopCallback]
    extra_loss: ExtraLoss | None = None
    """A term added to the loss (a continual-learning penalty), from ``config["extra_loss"]``."""
    average: WeightAverage | None = None
    """The moving average of the weights (``train.ema_decay``): what is scored, checkpointed and exported."""
    storage: Path = Path()
    """Ray Train's storage folder of the run (the run directory / the experiment's name): checkpoints are written
    beside it."""
    scheduler: Any = None
    scaler: Any = None
    state: LoopState = field(default_factory=LoopState)
    writer: Any = None
    log_loss: float = 0.0
    log_steps: int = 0
    warmup_steps: int = 0

    def say(self, text: str) -> None:
        if self.rank == 0:
            print(text, flush=True)

    def plan(self, epoch: int) -> list[list[int]]:
        """The global batches of ``epoch`` (the same on every worker)."""
        t = self.cfg.train
        return batching.epoch_batches(len(self.train_windows), batch_size=t.batch_size, seed=self.cfg.seed,
                                      shards=self.world * t.grad_accum, epoch=epoch,
                                      lengths=self.lengths if t.group_by_length else None)  # fmt: skip

    def stopped(self) -> bool:
        return self.cfg.train.patience > 0 and self.state.evals_since_best >= self.cfg.train.patience


def train_loop_per_worker(config: dict[str, Any]) -> None:
    worker = set_up(config)
    restore(worker, config.get("init_checkpoint"))
    if worker.rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        worker.writer = SummaryWriter(str(worker.run_dir / "tensorboard"), purge_step=worker.state.global_step or None)
    worker.ddp_model.train()
    # ``stop_after_epoch``: train a segment only (PBT runs a trial as segments between perturbations).
    last_epoch = min(worker.cfg.train.epochs, config.get("stop_after_epoch") or worker.cfg.train.epochs)
    # (a resumed run that had already stopped early has nothing left to train)
    for epoch in range(worker.state.epoch, worker.state.epoch if worker.stopped() else last_epoch):
        if train_one_epoch(worker, epoch):
            break
    if worker.writer is not None:
        worker.writer.close()


def set_up(config: dict[str, Any]) -> Worker:
    """Features (every worker encodes the whole corpus; the step plan picks its share), model, optimizer."""
    cfg = FinetuneConfig.model_validate(config["experiment"])
    labels: list[str] = config["labels"]
    context = ray.train.get_context()  # RAY
    quiet_train_worker_logs()
    torch.set_num_threads(cfg.scaling.cpus_per_worker)
    device = worker_device(cfg.scaling)
    tokenizer = load_tokenizer(cfg.model.backbone)
    label2id = {label: i for i, label in enumerate(labels)}
    windows = {"max_length": cfg.model.max_length, "overlap": cfg.model.window_overlap,
               "casing": cfg.model.shapes}  # fmt: skip
    documents = config.get("documents") or {}
    train = tuple(zip(*config["train"], strict=True))
    train_windows = _train_windows(cfg, tokenizer, train, label2id, documents.get("train"), windows)
    lengths, labelled = [len(w.input_ids) for w in train_windows], [label_count([w.labels]) for w in train_windows]
    rank, world = context.get_world_rank(), context.get_world_size()  # RAY

    def eval_set(split: str) -> EvalSet | None:
        if not config.get(split):
            return None
        tokens, tags = zip(*config[split], strict=True)
        split_windows = encode(tokenizer, tokens, None, label2id, documents=documents.get(split), **windows)
        batches = batching.eval_batches([len(w.input_ids) for w in split_windows], cfg.train.eval_batch_size,
                                        world, rank)  # fmt: skip
        return EvalSet(split_windows, batches, list(tags))

    model = build_model(cfg.model, labels, seed=cfg.seed, vocab_size=len(tokenizer))
    ddp_model = _prepared(model, device, cfg.scaling)
    optimizer = make_optimizer(model, cfg.train.lr, cfg.train.weight_decay, fused=cfg.train.fused_adamw,
                               head_lr=cfg.train.head_lr)  # fmt: skip
    worker = Worker(
        cfg, labels, Path(config["run_dir"]), rank, world, device, _autocast_dtype(cfg.train.precision, device),
        tokenizer, train_windows, lengths, labelled, eval_set("dev"), eval_set("test"), model, ddp_model, optimizer,
        cfg.train.pack_sequences and supports_packing(model),
        callbacks=list(config.get("callbacks") or []), extra_loss=_extra_loss(config.get("extra_loss"), model, device),
        storage=Path(config["run_dir"]) / context.get_experiment_name(),  # RAY: RunConfig's storage_path / name
    )  # fmt: skip
    _schedule(worker)
    worker.say(f"[drml] {cfg.model.backbone} ({cfg.model.strategy}): {trainable_summary(model)}")
    if cfg.train.pack_sequences and not worker.pack:
        worker.say(f"[drml] train.pack_sequences: {type(model).__name__} is not a BERT-family model; "
                   "training on unpacked (length-split) micro-batches instead")  # fmt: skip
    return worker


def _schedule(worker: Worker) -> None:
    """The worker's learning-rate schedule (warm-up over its whole run's steps), loss scaler and weight average."""
    train = worker.cfg.train
    total_steps = len(worker.plan(0)) * train.epochs
    worker.warmup_steps = warmup = int(train.warmup_ratio * total_steps)
    worker.scheduler = torch.optim.lr_scheduler.LambdaLR(
        worker.optimizer, [group_schedule(group, warmup, total_steps) for group in worker.optimizer.param_groups]
    )  # fmt: skip
    worker.scaler = torch.amp.GradScaler(enabled=worker.dtype == torch.float16)
    if train.ema_decay is not None:
        worker.average = WeightAverage(worker.model, train.ema_decay)


def worker_device(scaling: ScalingSettings) -> torch.device:
    """The device the loop trains on: Ray's for this worker; in local mode (no worker: Ray assigns no GPU) the first
    GPU if the config asks for one."""
    if not scaling.local:
        return ray.train.torch.get_device()  # RAY
    if scaling.use_gpu and not torch.cuda.is_available():
        raise UserError("scaling.use_gpu: true, and this process sees no GPU (scaling.num_workers: 0, local mode, "
                        "trains in the process that runs drml)")  # fmt: skip
    return torch.device("cuda", 0) if scaling.use_gpu else torch.device("cpu")


def _prepared(model: torch.nn.Module, device: torch.device, scaling: ScalingSettings) -> torch.nn.Module:
    """The model on its device: Ray's ``prepare_model`` on workers (DDP when there are several), a plain move in
    local mode (where Ray's would move it to the CPU)."""
    return model.to(device) if scaling.local else ray.train.torch.prepare_model(model)  # RAY


def _train_windows(
    cfg: FinetuneConfig, tokenizer, train: tuple, label2id: dict[str, int], documents: list | None, windows: dict
) -> list[Window]:
    """The training set's windows (``windows``: their length and overlap): each sentence alone or in its own
    context window (:func:`encode`), or cut from whole documents (``data.context_train: document``,
    :func:`encode_documents`)."""
    label_all = cfg.model.label_all_tokens
    if documents is not None and cfg.data.context_train == "document":
        return encode_documents(tokenizer, *train, label2id, documents, label_all_tokens=label_all, **windows)
    return encode(tokenizer, *train, label2id, documents=documents, label_all_tokens=label_all, **windows)


def _extra_loss(spec: tuple[str, dict] | None, model: torch.nn.Module, device: torch.device) -> ExtraLoss | None:
    """The loss term ``("module:function", kwargs)`` names: ``function(model, device, **kwargs)``."""
    if spec is None:
        return None
    from drml_ray.runtime.registry import resolve

    ref, kwargs = spec
    return resolve(ref)(model, device, **kwargs)


def restore(worker: Worker, init_checkpoint: str | None) -> None:
    """Continue from the checkpoint Ray hands over (a restart after a failure, or an interrupted run started
    again in the same run directory), else from ``init_checkpoint`` (a PBT segment's start), if any."""
    checkpoint = ray.train.get_checkpoint()  # RAY
    if checkpoint is None and init_checkpoint:
        checkpoint = ray.train.Checkpoint(init_checkpoint)  # RAY
    if checkpoint is None:
        return
    with checkpoint.as_directory() as folder:
        saved = load_state(Path(folder) / STATE_FILE, map_location=worker.device)
    worker.model.load_state_dict(saved["model"])
    if worker.average is not None:  # (a checkpoint written without an average starts one from its weights)
        worker.average.load_state_dict(saved.get("ema") or worker.average.params)
    worker.optimizer.load_state_dict(regrouped_state(saved["optimizer"], worker.optimizer, worker.model))
    worker.scheduler.load_state_dict(saved["scheduler"])
    worker.state = state = LoopState(**saved["loop"])
    # Every worker's dropout continues from where it stopped, so a resumed run (a restart, a trial that
    # successive halving paused) trains exactly as an uninterrupted one; not possible when the number of
    # workers changed, or from a checkpoint written before drml-ray saved the states.
    rng = saved.get("rng")
    if rng is not None and len(rng) == worker.world:
        _set_rng_state(rng[worker.rank], worker.device)
    else:
        worker.say("[drml] note: the checkpoint has no random state for these workers; dropout continues from "
                   "a fresh one (the run will not repeat an uninterrupted one exactly)")  # fmt: skip
    # The learning rates come from this run's config (PBT restarts a trial with a mutated lr).
    t, scheduler, groups = worker.cfg.train, worker.scheduler, worker.optimizer.param_groups
    scheduler.base_lrs = [t.head_lr if group.get("head") else t.lr for group in groups]
    for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)  # from the first step on, not the saved run's rate
    state.resumed_at_steps.append(state.global_step)
    worker.say(f"[drml] resumed from checkpoint at epoch {state.epoch}, step {state.global_step}")


def train_one_epoch(worker: Worker, epoch: int) -> bool:
    """This worker's steps of ``epoch`` (from where a resumed run stopped), evaluating at the epoch's end
    and every ``eval_every_steps``. True when training should stop (early stopping)."""
    cfg, state, batches = worker.cfg, worker.state, worker.plan(epoch)
    trainable = [p for p in worker.model.parameters() if p.requires_grad]
    loss_sum = torch.zeros((), device=worker.device)  # summed on the device: no host sync per step
    tokens = torch.zeros((), dtype=torch.long, device=worker.device)
    steps, started = 0, time.perf_counter()
    for i in range(state.step_in_epoch, len(batches)):
        micro_batches, n_tokens = _micro_batches(worker, batches[i])
        tokens += n_tokens
        step_loss = train_step(
            worker.ddp_model, micro_batches, optimizer=worker.optimizer, scaler=worker.scaler, world_size=worker.world,
            global_labels=sum(worker.labelled[j] for j in batches[i]), max_grad_norm=cfg.train.max_grad_norm,
            autocast_dtype=worker.dtype, params=trainable, extra_loss=worker.extra_loss,
        )  # fmt: skip
        loss_sum += step_loss
        worker.scheduler.step()
        if worker.average is not None:
            worker.average.update(state.global_step)
        state.global_step, state.step_in_epoch, steps = state.global_step + 1, i + 1, steps + 1
        _log_progress(worker, step_loss, epoch, i, len(batches), started, steps)
        at_end = state.step_in_epoch == len(batches)
        if at_end or (cfg.train.eval_every_steps and state.global_step % cfg.train.eval_every_steps == 0):
            state.train_seconds += time.perf_counter() - started
            progress = epoch + state.step_in_epoch / len(batches)
            if at_end:
                state.epoch, state.step_in_epoch = epoch + 1, 0
            checkpoint(worker, evaluate(worker, progress, loss_sum.item() / steps, int(tokens.item())))
            loss_sum.zero_()
            tokens.zero_()
            steps, started = 0, time.perf_counter()
            if worker.stopped():
                return True
    return False


def _micro_batches(worker: Worker, batch: list[int]) -> tuple[list[dict[str, torch.Tensor]], int]:
    """This worker's share of a global batch as device tensors (packed rows, or length-split micro-batches),
    and its number of sub-tokens."""
    lengths = worker.lengths
    pieces = batching.shard(batch, rank=worker.rank, world_size=worker.world, grad_accum=worker.cfg.train.grad_accum)
    if worker.cfg.train.split_by_length and not worker.pack:
        pieces = [piece for items in pieces for piece in batching.split_by_length(items, lengths)]
    pad = worker.tokenizer.pad_token_id
    out = []
    for items in pieces:
        if worker.pack:
            rows = batching.pack_rows(items, lengths, worker.cfg.model.max_length)
            inputs = batching.collate_packed(worker.train_windows, rows, pad)
        else:
            inputs = batching.collate([worker.train_windows[j] for j in items], pad)
        out.append({key: value.to(worker.device) for key, value in inputs.items()})
    return out, sum(lengths[j] for items in pieces for j in items)


def _log_progress(worker: Worker, step_loss: torch.Tensor, epoch: int, i: int, n_batches: int, since: float,
                  steps: int) -> None:  # fmt: skip
    """A progress line and the TensorBoard loss every ``log_every_steps`` (one host sync then, none between); the
    time per step is the mean over the ``steps`` since ``since`` (the epoch's start or the last evaluation)."""
    worker.log_loss = step_loss + worker.log_loss
    worker.log_steps += 1
    if worker.state.global_step % worker.cfg.train.log_every_steps:
        return
    loss = float(worker.log_loss) * worker.world / worker.log_steps  # this worker's share, scaled (a host sync)
    per_step = (time.perf_counter() - since) / steps  # (after the sync: on a GPU the steps have run)
    worker.log_loss, worker.log_steps = 0.0, 0
    lr = worker.scheduler.get_last_lr()[0]
    worker.say(
        f"[drml] epoch {epoch + 1}/{worker.cfg.train.epochs} step {i + 1}/{n_batches} loss {loss:.4f} lr "
        f"{lr:.2e} · {per_step:.3f} s/step, epoch ends in {_duration(per_step * (n_batches - i - 1))}"
    )
    if worker.writer is not None:
        worker.writer.add_scalar("train/loss", loss, worker.state.global_step)
        worker.writer.add_scalar("train/lr", lr, worker.state.global_step)


def _duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``.

    >>> _duration(3725), _duration(185), _duration(41.6)
    ('1h02m', '3m05s', '42s')
    """
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def evaluate(worker: Worker, epoch_progress: float, train_loss: float, tokens: int) -> dict[str, Any]:
    """Score dev on all workers and update the best F1 and early stopping; returns the metrics to report."""
    state, started = worker.state, time.perf_counter()
    release_freed_memory()
    splits = [("dev", worker.dev), *([("test", worker.test)] if worker.test is not None else [])]
    worker.say("[drml] scoring " + " and ".join(f"{name} ({len(split.tags):,} sentences, {len(split.windows):,} "
                                                f"windows)" for name, split in splits) + " ...")  # fmt: skip
    with worker.average.swapped_in() if worker.average is not None else contextlib.nullcontext():
        micro = score(worker, worker.dev)
        test = {"test_f1": score(worker, worker.test)["f1"]} if worker.test is not None else {}
    state.train_tokens += sum(_gather(tokens))
    state.note_dev(micro["f1"], epoch_progress, worker.warmup_steps)
    state.eval_seconds += time.perf_counter() - started
    metrics = {
        "epoch": epoch_progress, "step": state.global_step, "dev_f1": micro["f1"],
        "dev_precision": micro["precision"], "dev_recall": micro["recall"], **test,
        "train_loss": sum(_gather(train_loss)),  # shares of the global mean token loss, summed
        "lr": worker.scheduler.get_last_lr()[0], "tokens_per_s": state.train_tokens / max(1e-9, state.train_seconds),
        "best_dev_f1": state.best_f1, "stopped_early": worker.stopped(),
        "train_s": state.train_seconds, "eval_s": state.eval_seconds,
    }  # fmt: skip
    state.history.append(metrics)
    worker.say(f"[drml] eval epoch {epoch_progress:.2f} step {state.global_step}: dev F1 {micro['f1']:.4f} (best "
               f"{state.best_f1:.4f} at epoch {state.best_epoch:.2f})"
               + (f", test F1 {test['test_f1']:.4f}" if test else "") + f", train loss {metrics['train_loss']:.4f}, "
               f"{metrics['tokens_per_s']:,.0f} tok/s, scored in {_duration(time.perf_counter() - started)}"
               + (" - stopping early" if worker.stopped() else ""))  # fmt: skip
    if worker.writer is not None:
        for key in ("dev_f1", "dev_precision", "dev_recall", "test_f1", "tokens_per_s"):
            if key in metrics:
                worker.writer.add_scalar(f"eval/{key}", metrics[key], state.global_step)
        worker.writer.flush()
    return metrics


def release_freed_memory() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``; nothing elsewhere). The training
    steps leave their freed activations in the heap, and evaluation's tensors, of other shapes, do not fit them:
    without it a worker's memory peaks while it scores (BENCHMARKS.md, "Memory of the embedded default")."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def score(worker: Worker, split: EvalSet) -> dict[str, float]:
    """Entity micro precision/recall/F1 of ``split``, each worker predicting its share (gathered, so the
    figure is the single-process one)."""
    outputs: dict = {}
    predicted = predict_windows(worker.model, split.windows, split.batches, pad_id=worker.tokenizer.pad_token_id,
                                device=worker.device, autocast_dtype=worker.dtype)  # fmt: skip
    for part in _gather(predicted):
        outputs.update(part)
    pred, _ = merge_outputs(split.windows, outputs, [len(t) for t in split.tags], dict(enumerate(worker.labels)),
                            worker.cfg.model.decoding)  # fmt: skip
    return entity_micro(split.tags, pred)


def checkpoint(worker: Worker, metrics: dict[str, Any]) -> None:
    """Report ``metrics`` to Ray with a checkpoint (only rank 0 writes it; every rank reports), then call
    the loop callbacks. The checkpoint is written beside Ray's storage folder and renamed into it
    (:func:`_move_into`; in local mode :func:`~drml_ray.ner.train_record.keep_local_checkpoint`), so it appears
    there whole and at once, with no copy."""
    rng = _gather(_rng_state(worker.device))  # every worker's, in rank order
    if worker.rank != 0:
        ray.train.report(metrics, checkpoint=None)  # RAY
    else:
        staging = worker.storage / STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=staging, ignore_cleanup_errors=True) as folder:
            os.chmod(folder, 0o755)  # as Ray's own copy makes it (a temporary folder is the owner's alone)
            save_state(Path(folder) / STATE_FILE, {"model": worker.model.state_dict(), "optimizer":
                       worker.optimizer.state_dict(), "scheduler": worker.scheduler.state_dict(),
                       "loop": asdict(worker.state), "rng": rng,
                       **({"ema": worker.average.state_dict()} if worker.average is not None else {})})  # fmt: skip
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),  # RAY
                             checkpoint_upload_fn=_move_into(worker.storage),
                             delete_local_checkpoint_after_upload=False)  # fmt: skip
            if worker.cfg.scaling.local:  # no controller: Ray neither uploads nor records it
                name = local_checkpoint_name()
                _move_into(worker.storage)(ray.train.Checkpoint(folder), name)  # RAY
                keep_local_checkpoint(worker.storage, name, metrics)
    for callback in worker.callbacks:
        callback.after_checkpoint(worker.state, worker.rank, worker.run_dir)


def _move_into(storage: Path) -> Callable[[Any, str], Any]:
    """Ray's upload of a checkpoint as one rename into ``storage`` (Ray's experiment folder), where Ray's own
    upload would put it: the folder was written on the same file system, so nothing is copied (~2 s of a
    360 MB checkpoint per evaluation on 2 cores), and a crash leaves either the whole checkpoint or none."""

    def upload(local: Any, name: str) -> Any:
        destination = storage / name
        os.replace(local.path, destination)
        return ray.train.Checkpoint.from_directory(str(destination))  # RAY

    return upload


def _gather(obj: Any) -> list[Any]:
    """All workers' ``obj`` (in rank order); a plain list in a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This worker's random state (dropout masks; data order is seeded per epoch)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on a GPU that has it, else fp32; ``bf16`` on a CPU autocasts too (fast with AMX or
    AVX512-BF16); ``fp16`` needs a GPU (a CPU has no fast fp16 and its loss scaling is GPU-only)."""
    if precision == "fp32" or (device.type != "cuda" and precision in ("auto", "fp16")):
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
