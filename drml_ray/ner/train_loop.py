"""The per-worker NER training loop that Ray Train runs on every worker.

Reads top to bottom: build features and the model, restore the latest checkpoint if Ray hands
one over, then for each epoch take this worker's steps of the shared plan, evaluate on dev
(predictions gathered from every worker, so the F1 is the single-process F1), report metrics and
a checkpoint to Ray, and stop early when dev entity F1 has not improved for ``patience``
evaluations. The Ray calls are marked ``# RAY``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray.train  # RAY
import ray.train.torch  # RAY
import torch
import torch.distributed as dist

from drml_ray.config import FinetuneConfig
from drml_ray.ner.batching import (
    collate,
    collate_packed,
    epoch_batches,
    eval_batches,
    pack_rows,
    shard,
    split_by_length,
)
from drml_ray.ner.features import encode
from drml_ray.ner.inference import merge_outputs, predict_windows
from drml_ray.ner.metrics import entity_report
from drml_ray.ner.modeling import build_model, load_tokenizer, supports_packing, trainable_summary
from drml_ray.ner.optimization import label_count, lr_factor, make_optimizer, train_step

STATE_FILE = "state.pt"


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
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None


def _quiet_ray_train_logs() -> None:
    """Drop Ray Train's per-report INFO lines from the console (they dump every metric twice)."""
    from ray.train.v2._internal.execution import context as train_context  # RAY internals, logger named by file

    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    cfg = FinetuneConfig.model_validate(config["experiment"])
    labels: list[str] = config["labels"]
    run_dir = Path(config["run_dir"])
    context = ray.train.get_context()  # RAY
    _quiet_ray_train_logs()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(cfg.scaling.cpus_per_worker)
    device = ray.train.torch.get_device()  # RAY
    dtype = _autocast_dtype(cfg.train.precision, device)
    say = print if rank == 0 else (lambda *a, **k: None)

    # 1. Features: every worker encodes the whole (small) corpus; the step plan picks its share.
    tokenizer = load_tokenizer(cfg.model.backbone)
    label2id = {label: i for i, label in enumerate(labels)}
    id2label = dict(enumerate(labels))
    window_args = {"max_length": cfg.model.max_length, "overlap": cfg.model.window_overlap}
    train_tok, train_tags = zip(*config["train"], strict=True)
    dev_tok, dev_tags = zip(*config["dev"], strict=True)
    train_windows = encode(
        tokenizer, train_tok, train_tags, label2id, label_all_tokens=cfg.model.label_all_tokens, **window_args
    )
    dev_windows = encode(tokenizer, dev_tok, None, label2id, **window_args)
    dev_batches = eval_batches([len(w.input_ids) for w in dev_windows], cfg.train.eval_batch_size, world, rank)

    # 2. Model, optimizer, schedule.
    model = build_model(cfg.model, labels, seed=cfg.seed, vocab_size=len(tokenizer))
    say(f"[drml] {cfg.model.backbone} ({cfg.model.strategy}): {trainable_summary(model)}", flush=True)
    ddp_model = ray.train.torch.prepare_model(model)  # RAY: moves to device, wraps in DDP when world > 1
    optimizer = make_optimizer(model, cfg.train.lr, cfg.train.weight_decay, fused=cfg.train.fused_adamw)
    lengths = [len(w.input_ids) for w in train_windows]
    labelled = [label_count([w.labels]) for w in train_windows]
    pack = cfg.train.pack_sequences and supports_packing(model)
    if cfg.train.pack_sequences and not pack:
        say(f"[drml] train.pack_sequences: {type(model).__name__} is not a BERT-family model; "
            "training on unpacked (length-split) micro-batches instead", flush=True)  # fmt: skip
    accum = cfg.train.grad_accum

    def plan(epoch: int) -> list[list[int]]:
        """The global batches of ``epoch`` (the same on every worker)."""
        return epoch_batches(len(train_windows), batch_size=cfg.train.batch_size, shards=world * accum,
                             seed=cfg.seed, epoch=epoch,
                             lengths=lengths if cfg.train.group_by_length else None)  # fmt: skip

    total_steps = len(plan(0)) * cfg.train.epochs
    warmup = int(cfg.train.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total_steps))
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)

    # 3. Resume from the latest checkpoint, if Ray hands one over (a restart after a failure,
    #    or an interrupted run started again in the same run directory).
    state = LoopState()
    checkpoint = ray.train.get_checkpoint()  # RAY
    if checkpoint is None and config.get("init_checkpoint"):  # a PBT segment starts from a given state
        checkpoint = ray.train.Checkpoint(config["init_checkpoint"])  # RAY
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            saved = torch.load(Path(folder) / STATE_FILE, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = LoopState(**saved["loop"])
        # Every worker's dropout continues from where it stopped, so a resumed run (a restart, a trial
        # that successive halving paused) trains exactly as an uninterrupted one; not possible when the
        # number of workers changed, or from a checkpoint written before drml-ray saved the states.
        rng = saved.get("rng")
        if rng is not None and len(rng) == world:
            _set_rng_state(rng[rank], device)
        else:
            say("[drml] note: the checkpoint has no random state for these workers; dropout continues from a "
                "fresh one (the run will not repeat an uninterrupted one exactly)", flush=True)  # fmt: skip
        # The learning rate comes from this run's config (PBT restarts a trial with a mutated lr).
        scheduler.base_lrs = [cfg.train.lr] * len(optimizer.param_groups)
        state.resumed_at_steps.append(state.global_step)
        say(f"[drml] resumed from checkpoint at epoch {state.epoch}, step {state.global_step}", flush=True)

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=state.global_step or None)

    def evaluate_and_report(epoch_progress: float, train_loss: float, tokens: int) -> bool:
        """Score dev on all workers, report to Ray with a checkpoint; True when training should stop."""
        eval_started = time.perf_counter()
        outputs: dict = {}
        for part in _gather(predict_windows(model, dev_windows, dev_batches, pad_id=tokenizer.pad_token_id,
                                            device=device, autocast_dtype=dtype)):  # fmt: skip
            outputs.update(part)
        dev_pred, _ = merge_outputs(dev_windows, outputs, [len(t) for t in dev_tok], id2label)
        micro = entity_report(dev_tags, dev_pred)["micro"]
        state.train_tokens += sum(_gather(tokens))
        train_loss = sum(_gather(train_loss))  # shares of the global mean token loss, summed
        if micro["f1"] > state.best_f1:
            state.best_f1, state.best_epoch = micro["f1"], epoch_progress
            state.evals_since_best = 0
        else:
            state.evals_since_best += 1
        stop = cfg.train.patience > 0 and state.evals_since_best >= cfg.train.patience
        metrics = {
            "epoch": epoch_progress, "step": state.global_step, "dev_f1": micro["f1"],
            "dev_precision": micro["precision"], "dev_recall": micro["recall"],
            "train_loss": train_loss, "lr": scheduler.get_last_lr()[0],
            "tokens_per_s": state.train_tokens / max(1e-9, state.train_seconds),
            "best_dev_f1": state.best_f1, "stopped_early": stop,
            "train_s": state.train_seconds, "eval_s": state.eval_seconds + time.perf_counter() - eval_started,
        }  # fmt: skip
        state.history.append(metrics)
        say(
            f"[drml] eval epoch {epoch_progress:.2f} step {state.global_step}: dev F1 {micro['f1']:.4f} "
            f"(best {state.best_f1:.4f} at epoch {state.best_epoch:.2f}), train loss {metrics['train_loss']:.4f}, "
            f"{metrics['tokens_per_s']:,.0f} tok/s" + (" - stopping early" if stop else ""),
            flush=True,
        )
        if writer is not None:
            for key in ("dev_f1", "dev_precision", "dev_recall", "tokens_per_s"):
                writer.add_scalar(f"eval/{key}", metrics[key], state.global_step)
            writer.flush()
        state.eval_seconds = metrics["eval_s"]
        fail_after = config.get("fail_after_eval")
        rng = _gather(_rng_state(device))  # every worker's, in rank order
        with tempfile.TemporaryDirectory() as folder:
            ray_checkpoint = None
            if rank == 0:  # only rank 0 writes; every rank reports
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "loop": asdict(state), "rng": rng},
                           Path(folder) / STATE_FILE)  # fmt: skip
                ray_checkpoint = ray.train.Checkpoint.from_directory(folder)  # RAY
            ray.train.report(metrics, checkpoint=ray_checkpoint)  # RAY
        if fail_after and len(state.history) == fail_after and rank == 0:
            marker = run_dir / ".injected_failure"
            if not marker.exists():  # fault injection for tests: fail once, then recover
                marker.touch()
                raise RuntimeError(f"injected failure after evaluation {fail_after} (DRML_TEST_FAIL_AFTER_EVAL)")
        return stop

    # 4. Train.
    ddp_model.train()
    # A resumed run that had already stopped early has nothing left to train.
    stop = cfg.train.patience > 0 and state.evals_since_best >= cfg.train.patience
    trainable = [p for p in model.parameters() if p.requires_grad]
    running_loss = torch.zeros((), device=device)  # summed on the device: no host sync per step
    running_tokens = torch.zeros((), dtype=torch.long, device=device)
    running_steps = 0
    log_loss = torch.zeros((), device=device)  # since the last progress line
    log_steps = 0
    # ``stop_after_epoch``: train a segment only (PBT runs a trial as segments between perturbations).
    last_epoch = min(cfg.train.epochs, config.get("stop_after_epoch") or cfg.train.epochs)
    for epoch in range(state.epoch, state.epoch if stop else last_epoch):
        batches = plan(epoch)
        started = time.perf_counter()
        for i in range(state.step_in_epoch, len(batches)):
            micro_batches = []
            pieces = shard(batches[i], rank=rank, world_size=world, grad_accum=accum)
            if cfg.train.split_by_length and not pack:
                pieces = [piece for items in pieces for piece in split_by_length(items, lengths)]
            for items in pieces:
                if pack:
                    rows = pack_rows(items, lengths, cfg.model.max_length)
                    inputs = collate_packed(train_windows, rows, tokenizer.pad_token_id)
                else:
                    inputs = collate([train_windows[j] for j in items], tokenizer.pad_token_id)
                micro_batches.append({key: value.to(device) for key, value in inputs.items()})
                running_tokens += sum(lengths[j] for j in items)
            step_loss = train_step(
                ddp_model, micro_batches, optimizer=optimizer, scaler=scaler, world_size=world,
                global_labels=sum(labelled[j] for j in batches[i]), max_grad_norm=cfg.train.max_grad_norm,
                autocast_dtype=dtype, params=trainable,
            )  # fmt: skip
            running_loss += step_loss
            log_loss += step_loss
            log_steps += 1
            scheduler.step()
            state.global_step += 1
            state.step_in_epoch = i + 1
            running_steps += 1
            if state.global_step % cfg.train.log_every_steps == 0:
                loss_value = log_loss.item() * world / log_steps  # this worker's share, scaled
                log_loss.zero_()
                log_steps = 0
                say(f"[drml] epoch {epoch + 1}/{cfg.train.epochs} step {i + 1}/{len(batches)} "
                    f"loss {loss_value:.4f} lr {scheduler.get_last_lr()[0]:.2e}", flush=True)  # fmt: skip
                if writer is not None:
                    writer.add_scalar("train/loss", loss_value, state.global_step)
                    writer.add_scalar("train/lr", scheduler.get_last_lr()[0], state.global_step)
            at_epoch_end = state.step_in_epoch == len(batches)
            every = cfg.train.eval_every_steps
            if at_epoch_end or (every and state.global_step % every == 0):
                state.train_seconds += time.perf_counter() - started
                progress = epoch + state.step_in_epoch / len(batches)
                if at_epoch_end:
                    state.epoch, state.step_in_epoch = epoch + 1, 0
                stop = evaluate_and_report(progress, running_loss.item() / running_steps, int(running_tokens.item()))
                running_loss.zero_()
                running_tokens.zero_()
                running_steps = 0
                started = time.perf_counter()
                if stop:
                    break
        if stop:
            break
    if writer is not None:
        writer.close()
