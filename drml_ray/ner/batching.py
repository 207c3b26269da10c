"""Batches: dynamic padding, the per-epoch step plan of each worker, and length-sorted evaluation.

The step plan replaces ``DistributedSampler`` + ``DataLoader``: every epoch draws one seeded
permutation of the training windows (the same on every worker), cuts it into global batches of
``batch_size``, and gives worker ``rank`` the items ``rank::world`` of each batch, split into
``grad_accum`` micro-batches. The global batch of step *k* is therefore the same whatever the
number of workers, and a resumed run can skip exactly the steps it already took.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from drml_ray.ner.features import IGNORE, Window

Step = list[list[int]]
"""One optimizer step of one worker: its micro-batches, each a list of window indices."""


def collate(windows: Sequence[Window], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a micro-batch to its longest window: ``input_ids``, ``attention_mask``, ``labels``."""
    width = max(len(w.input_ids) for w in windows)
    input_ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(windows), width), dtype=torch.long)
    labels = torch.full((len(windows), width), IGNORE, dtype=torch.long)
    for row, w in enumerate(windows):
        n = len(w.input_ids)
        input_ids[row, :n] = torch.tensor(w.input_ids)
        attention_mask[row, :n] = 1
        labels[row, :n] = torch.tensor(w.labels)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def epoch_plan(
    n_items: int, *, batch_size: int, world_size: int, rank: int, grad_accum: int, seed: int, epoch: int
) -> list[Step]:
    """This worker's steps for ``epoch``: a list of steps, each ``grad_accum`` non-empty micro-batches.

    The permutation is padded (wrapping around, like ``DistributedSampler``) to a multiple of
    ``world_size * grad_accum`` so that every worker takes the same number of steps and no
    micro-batch is empty; ``batch_size`` must be a multiple of that product.
    """
    shards = world_size * grad_accum
    if batch_size % shards:
        raise ValueError(f"batch_size {batch_size} is not a multiple of world_size x grad_accum = {shards}")
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n_items, generator=generator).tolist()
    order += order[: (-len(order)) % shards]
    steps = []
    for start in range(0, len(order), batch_size):
        mine = order[start : start + batch_size][rank::world_size]
        steps.append([mine[k::grad_accum] for k in range(grad_accum)])
    return steps


def eval_batches(lengths: Sequence[int], batch_size: int, world_size: int = 1, rank: int = 0) -> list[list[int]]:
    """Evaluation batches of this worker: items sorted by length (longest first), cut into batches,
    batches dealt round-robin to workers. Sorting keeps padding small; dealing whole batches
    makes every batch identical however many workers score the set."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return batches[rank::world_size]
