"""One optimizer step in plain torch: the loss normalisation, AdamW groups, the learning-rate schedule.

The loss of a step is the mean over every labelled sub-token of the *global* batch, however the
batch is split over workers and accumulation micro-batches: each micro-batch contributes
``sum(token losses) * world_size / global_label_count``. DDP averages gradients over workers, so
the gradient is exactly the full-batch gradient — 1 worker or 8, ``grad_accum`` 1 or 4 — which a
per-micro-batch ``mean`` (the usual recipe) only approximates when micro-batches hold different
numbers of labelled tokens.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from drml_ray.errors import UserError
from drml_ray.ner.batching import model_inputs
from drml_ray.ner.features import IGNORE

log = logging.getLogger(__name__)

ExtraLoss = Callable[[dict[str, torch.Tensor], torch.Tensor, float], torch.Tensor]


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from 0 to 1 over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def param_groups(model: torch.nn.Module, weight_decay: float, head_lr: float | None = None) -> list[dict]:
    """AdamW groups: weight decay on matrices only, never on biases or LayerNorm weights. With ``head_lr``,
    the classification head (the parameters of a module named ``classifier``, as in every Hugging Face token
    classifier, PEFT-wrapped or not) has groups of its own at that rate, marked ``"head": True``."""
    groups = {(head, decay): [] for head in (False, True) for decay in (True, False)}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        head = head_lr is not None and "classifier" in name.split(".")
        groups[head, not (p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name)].append(p)
    if head_lr is not None and not groups[True, True] + groups[True, False]:
        raise UserError(f"train.head_lr is set, but {type(model).__name__} has no trainable module named "
                        "'classifier' (Hugging Face's token classifiers' head): remove train.head_lr")  # fmt: skip
    own_rate = {"lr": head_lr, "head": True}
    return [
        {"params": params, "weight_decay": weight_decay if decay else 0.0} | (own_rate if head else {})
        for (head, decay), params in groups.items() if params or not head
    ]  # fmt: skip


def group_schedule(group: dict, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """A group's learning-rate factor at each step: :func:`lr_factor`, without the warm-up for the head's own
    groups (a freshly initialised head has no pretrained weights for warm-up to protect)."""
    warmup = 0 if group.get("head") else warmup_steps
    return lambda step: lr_factor(step, warmup, total_steps)


def regrouped_state(saved: dict, optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> dict:
    """``saved`` (an optimizer state of ``model``, from a checkpoint) laid out in ``optimizer``'s groups, each
    parameter keeping its own Adam moments; ``saved`` itself when the layouts agree. They differ when
    ``train.head_lr`` was set for one and not the other (a PBT trial carrying on from another's checkpoint): the
    saved layout is rebuilt by :func:`param_groups` from the ``"head"`` marks torch keeps in the saved groups."""
    head = any(group.get("head") for group in saved["param_groups"])
    if head == any(group.get("head") for group in optimizer.param_groups):
        return saved
    saved_order = [p for group in param_groups(model, 0.0, 1.0 if head else None) for p in group["params"]]
    if len(saved_order) != sum(len(group["params"]) for group in saved["param_groups"]):
        raise ValueError("the optimizer state is not of this model's trainable parameters")
    moments = {id(p): saved["state"][i] for i, p in enumerate(saved_order) if i in saved["state"]}
    order = [p for group in optimizer.param_groups for p in group["params"]]
    state = {i: moments[id(p)] for i, p in enumerate(order) if id(p) in moments}
    return {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}


def make_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float, fused: bool, head_lr: float | None = None
) -> torch.optim.AdamW:  # fmt: skip
    """``torch.optim.AdamW`` over :func:`param_groups`; ``fused`` uses the single-kernel implementation
    (one pass over the weights: on CPU about 8x faster than the default for-each version) where the
    device and dtype support it, and the default otherwise."""
    groups = param_groups(model, weight_decay, head_lr)
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, fused=True)
        except RuntimeError as err:
            log.warning("fused AdamW unavailable here (%s); using the default implementation", err)
    return torch.optim.AdamW(groups, lr=lr)


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over labelled positions (``-100`` ignored), in float32."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")


def label_count(labels: Sequence[Sequence[int]]) -> int:
    """Labelled positions (loss terms) in a list of per-window label lists."""
    return sum(sum(1 for label in window if label != IGNORE) for window in labels)


def train_step(
    model: torch.nn.Module,
    micro_batches: Sequence[dict[str, torch.Tensor]],
    *,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    global_labels: int,
    world_size: int = 1,
    max_grad_norm: float = 0.0,
    autocast_dtype: torch.dtype | None = None,
    params: Sequence[torch.nn.Parameter] | None = None,
    extra_loss: ExtraLoss | None = None,
) -> torch.Tensor:
    """Forward/backward every micro-batch, then clip and step. Returns this worker's loss share.

    ``model`` may be DDP-wrapped: gradients are synchronised on the last micro-batch only
    (``no_sync`` before). The returned tensor stays on the device (no host sync); summed over
    workers it is the global batch's mean token loss. ``extra_loss(batch, logits, scale)`` adds a term to
    each micro-batch's loss (a continual-learning penalty), ``scale`` being the cross-entropy's normaliser.
    """
    scale = world_size / max(1, global_labels)
    total = torch.zeros((), device=micro_batches[0]["input_ids"].device)
    for k, batch in enumerate(micro_batches):
        last = k == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        amp = (
            torch.autocast(batch["input_ids"].device.type, dtype=autocast_dtype)
            if autocast_dtype
            else contextlib.nullcontext()
        )
        with sync:
            with amp:
                logits = model(**model_inputs(batch)).logits
            loss = token_loss_sum(logits, batch["labels"]) * scale
            if extra_loss is not None:
                loss = loss + extra_loss(batch, logits, scale)
            scaler.scale(loss).backward()
        total += loss.detach()
    if max_grad_norm > 0:
        scaler.unscale_(optimizer)
        clip = params if params is not None else [p for g in optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(clip, max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return total / world_size
