"""The per-worker NER training loop that Ray Train runs on every worker.

Reads top to bottom: build features and the model, restore the latest checkpoint if Ray hands
one over, then for each epoch take this worker's steps of the shared plan, evaluate on dev
(predictions gathered from every worker, so the F1 is the single-process F1), report metrics and
a checkpoint to Ray, and stop early when dev entity F1 has not improved for ``patience``
evaluations. The Ray calls are marked ``# RAY``.
"""

from __future__ import annotations

import contextlib
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
from drml_ray.ner.batching import collate, epoch_plan, eval_batches
from drml_ray.ner.features import encode
from drml_ray.ner.inference import merge_outputs, predict_windows
from drml_ray.ner.metrics import entity_report
from drml_ray.ner.modeling import build_model, load_tokenizer, param_groups, trainable_summary

STATE_FILE = "state.pt"


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from 0 to 1 over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


@dataclass
class LoopState:
    """Everything besides model/optimizer weights that a resumed run needs."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_f1: float = -1.0
    best_step: int = 0
    best_epoch: float = 0.0
    evals_since_best: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
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
    optimizer = torch.optim.AdamW(param_groups(model, cfg.train.weight_decay), lr=cfg.train.lr)
    steps_per_epoch = len(epoch_plan(len(train_windows), batch_size=cfg.train.batch_size, world_size=world,
                                     rank=rank, grad_accum=cfg.train.grad_accum, seed=cfg.seed, epoch=0))  # fmt: skip
    total_steps = steps_per_epoch * cfg.train.epochs
    warmup = int(cfg.train.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total_steps))
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)

    # 3. Resume from the latest checkpoint, if Ray hands one over (a restart after a failure,
    #    or an interrupted run started again in the same run directory).
    state = LoopState()
    checkpoint = ray.train.get_checkpoint()  # RAY
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            saved = torch.load(Path(folder) / STATE_FILE, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = LoopState(**saved["loop"])
        state.resumed_at_steps.append(state.global_step)
        say(f"[drml] resumed from checkpoint at epoch {state.epoch}, step {state.global_step}", flush=True)

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=state.global_step or None)

    def evaluate_and_report(epoch_progress: float, train_loss: float, tokens: int) -> bool:
        """Score dev on all workers, report to Ray with a checkpoint; True when training should stop."""
        outputs: dict = {}
        for part in _gather(predict_windows(model, dev_windows, dev_batches, pad_id=tokenizer.pad_token_id,
                                            device=device, autocast_dtype=dtype)):  # fmt: skip
            outputs.update(part)
        dev_pred, _ = merge_outputs(dev_windows, outputs, [len(t) for t in dev_tok], id2label)
        micro = entity_report(dev_tags, dev_pred)["micro"]
        state.train_tokens += sum(_gather(tokens))
        train_loss = sum(_gather(train_loss)) / world  # the mean over workers, not rank 0's share
        improved = micro["f1"] > state.best_f1
        if improved:
            state.best_f1, state.best_step, state.best_epoch = micro["f1"], state.global_step, epoch_progress
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
        fail_after = config.get("fail_after_eval")
        with tempfile.TemporaryDirectory() as folder:
            ray_checkpoint = None
            if rank == 0:  # only rank 0 writes; every rank reports
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "loop": asdict(state)},
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
    accum = cfg.train.grad_accum
    running_loss = torch.zeros((), device=device)  # summed on the device: no host sync per step
    running_tokens = torch.zeros((), dtype=torch.long, device=device)
    running_steps = 0
    for epoch in range(state.epoch, state.epoch if stop else cfg.train.epochs):
        plan = epoch_plan(len(train_windows), batch_size=cfg.train.batch_size, world_size=world, rank=rank,
                          grad_accum=accum, seed=cfg.seed, epoch=epoch)  # fmt: skip
        started = time.perf_counter()
        for i in range(state.step_in_epoch, len(plan)):
            for k, micro_batch in enumerate(plan[i]):
                inputs = collate([train_windows[j] for j in micro_batch], tokenizer.pad_token_id)
                batch = {key: value.to(device) for key, value in inputs.items()}
                sync = k == accum - 1 or not hasattr(ddp_model, "no_sync")
                with contextlib.nullcontext() if sync else ddp_model.no_sync():  # no all-reduce on micro-steps
                    with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                        loss = ddp_model(**batch).loss / accum
                    scaler.scale(loss).backward()
                running_loss += loss.detach()
                running_tokens += batch["attention_mask"].sum()
            if cfg.train.max_grad_norm > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.global_step += 1
            state.step_in_epoch = i + 1
            running_steps += 1
            if state.global_step % cfg.train.log_every_steps == 0:
                loss_value = running_loss.item() / running_steps
                say(f"[drml] epoch {epoch + 1}/{cfg.train.epochs} step {i + 1}/{len(plan)} "
                    f"loss {loss_value:.4f} lr {scheduler.get_last_lr()[0]:.2e}", flush=True)  # fmt: skip
                if writer is not None:
                    writer.add_scalar("train/loss", loss_value, state.global_step)
                    writer.add_scalar("train/lr", scheduler.get_last_lr()[0], state.global_step)
            at_epoch_end = state.step_in_epoch == len(plan)
            every = cfg.train.eval_every_steps
            if at_epoch_end or (every and state.global_step % every == 0):
                state.train_seconds += time.perf_counter() - started
                progress = epoch + state.step_in_epoch / len(plan)
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
