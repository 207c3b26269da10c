"""Batches: dynamic padding, the per-epoch step plan of each worker, and length-sorted evaluation.

The epoch plan replaces ``DistributedSampler`` + ``DataLoader``: every epoch draws one seeded
permutation of the training windows (the same on every worker), cuts it into global batches of
``batch_size`` (optionally grouped by length), and gives worker ``rank`` the items ``rank::world``
of each batch, split into ``grad_accum`` micro-batches. The global batch of step *k* is therefore
the same whatever the number of workers — every worker also knows its size in labelled tokens,
which normalises the loss without communication — and a resumed run skips exactly the steps it
already took.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from drml_ray.ner.features import IGNORE, Window

Step = list[list[int]]
"""One optimizer step of one worker: its micro-batches, each a list of window indices."""


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A collated batch without its ``labels``: the keyword arguments of a token-classification model's forward."""
    return {key: value for key, value in batch.items() if key != "labels"}


def collate(windows: Sequence[Window], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a micro-batch to its longest window: ``input_ids``, ``attention_mask``, ``labels``, and
    ``token_type_ids`` when the windows carry word shapes."""
    width = max(len(w.input_ids) for w in windows)
    input_ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(windows), width), dtype=torch.long)
    labels = torch.full((len(windows), width), IGNORE, dtype=torch.long)
    types = torch.zeros((len(windows), width), dtype=torch.long) if windows[0].type_ids is not None else None
    for row, w in enumerate(windows):
        n = len(w.input_ids)
        input_ids[row, :n] = torch.tensor(w.input_ids)
        attention_mask[row, :n] = 1
        labels[row, :n] = torch.tensor(w.labels)
        if types is not None and w.type_ids is not None:
            types[row, :n] = torch.tensor(w.type_ids)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    return batch | ({"token_type_ids": types} if types is not None else {})


GROUP_SPAN = 50
"""Length grouping sorts spans of this many global batches at a time (as Hugging Face's
``group_by_length`` does), so batches hold similar lengths yet the order stays random."""


def epoch_batches(
    n_items: int,
    *,
    batch_size: int,
    shards: int,
    seed: int,
    epoch: int,
    lengths: Sequence[int] | None = None,
    group_span: int = GROUP_SPAN,
) -> list[list[int]]:
    """The global batches of ``epoch``: the same list on every worker.

    A seeded permutation is padded (wrapping around, like ``DistributedSampler``) to a multiple of
    ``shards`` (workers x accumulation steps) and cut into batches of ``batch_size``, which must be
    a multiple of ``shards``. With ``lengths``, each span of ``group_span`` batches is sorted by
    length before cutting and the batches are shuffled: every item is still seen exactly once per
    epoch, and little compute goes to padding.
    """
    if batch_size % shards:
        raise ValueError(f"batch_size {batch_size} is not a multiple of world_size x grad_accum = {shards}")
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n_items, generator=generator).tolist()
    order += order[: (-len(order)) % shards]
    if lengths is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    span = batch_size * group_span
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def shard(batch: Sequence[int], *, rank: int, world_size: int, grad_accum: int) -> Step:
    """This worker's micro-batches of a global batch: items ``rank::world_size``, then split
    ``grad_accum`` ways. Never empty when ``len(batch)`` is a multiple of ``world_size * grad_accum``."""
    mine = list(batch[rank::world_size])
    return [mine[k::grad_accum] for k in range(grad_accum)]


SPLIT_OVERHEAD_TOKENS = 64
"""What one more forward/backward pass costs, in padded tokens (measured with MiniLM on CPU):
:func:`split_by_length` opens a new micro-batch only where it saves more padding than this."""


def split_by_length(items: Sequence[int], lengths: Sequence[int], overhead: int = SPLIT_OVERHEAD_TOKENS) -> Step:
    """Cut one micro-batch into length-sorted pieces that minimise padded tokens + ``overhead`` per piece.

    Exact dynamic programme over the sorted items (a batch holds tens of items). Because the loss
    is normalised by the global batch's label count (:mod:`drml_ray.ner.optimization`), the
    accumulated gradient of the pieces equals the gradient of the whole micro-batch: this saves
    padding without changing what is learned, unlike grouping sentences of similar length into
    batches.

    >>> split_by_length([0, 1, 2, 3], [50, 4, 48, 5], overhead=10)
    [[0, 2], [3, 1]]
    """
    order = sorted(items, key=lambda i: -lengths[i])
    n = len(order)
    cost = [0.0] + [float("inf")] * n
    start = [0] * (n + 1)
    for end in range(1, n + 1):
        for begin in range(end):  # piece order[begin:end] is padded to its first (longest) item
            c = cost[begin] + (end - begin) * lengths[order[begin]] + overhead
            if c < cost[end]:
                cost[end], start[end] = c, begin
    pieces, end = [], n
    while end > 0:
        pieces.append(order[start[end] : end])
        end = start[end]
    return pieces[::-1]


def pack_rows(items: Sequence[int], lengths: Sequence[int], max_length: int) -> Step:
    """Pack windows end to end into as few rows of at most ``max_length`` tokens as they need, rows of even length.

    First-fit over the items longest first, into the smallest capacity (from an even share of the
    tokens per row up to ``max_length``) that needs no more rows than ``max_length`` would. Even rows
    leave little padding when the rows are batched together (see :func:`collate_packed`).

    >>> pack_rows([0, 1, 2, 3, 4], [60, 50, 40, 30, 20], max_length=128)  # two rows of 100, not 110 + 90
    [[0, 2], [1, 3, 4]]
    >>> pack_rows([0, 1], [100, 90], max_length=128)  # no two fit together: one row each
    [[0], [1]]
    """
    order = sorted(items, key=lambda i: -lengths[i])
    total = sum(lengths[i] for i in order)
    needed = len(_first_fit(order, lengths, max_length))
    capacity = max(lengths[order[0]], -(-total // needed))
    while True:
        rows = _first_fit(order, lengths, capacity)
        if len(rows) <= needed or capacity >= max_length:
            return rows
        capacity += 1


def _first_fit(order: Sequence[int], lengths: Sequence[int], capacity: int) -> Step:
    rows: Step = []
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


PACKABLE_MODEL_TYPES = ("bert",)
"""Architectures that take absolute ``position_ids`` and a 4-D attention mask as given, so windows
packed into one row (:func:`drml_ray.ner.batching.collate_packed`) compute exactly what they would
alone. (RoBERTa offsets its positions by the padding index; DistilBERT takes no ``position_ids``.)"""


def supports_packing(model: torch.nn.Module) -> bool:
    """Whether ``model`` (a PEFT wrapper included) is an architecture packed rows are exact for."""
    return getattr(getattr(model, "config", None), "model_type", None) in PACKABLE_MODEL_TYPES


def collate_packed(windows: Sequence[Window], rows: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Rows of windows packed end to end: each window attends only to itself and keeps its own positions.

    Returns ``input_ids``, ``position_ids`` (restarting at 0 for every window), ``labels`` and a
    boolean ``attention_mask`` of shape (rows, 1, width, width), block-diagonal per window (padding
    attends to itself only, so no softmax row is empty), and ``token_type_ids`` when the windows carry word
    shapes. For a BERT-style model the logits of a packed window equal those of the window alone: packing
    removes padding, not information.
    """
    width = max(sum(len(windows[i].input_ids) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long) if windows[rows[0][0]].type_ids is not None else None
    for r, row in enumerate(rows):
        start = 0
        for k, i in enumerate(row):
            window = windows[i]
            n = len(window.input_ids)
            input_ids[r, start : start + n] = torch.tensor(window.input_ids)
            labels[r, start : start + n] = torch.tensor(window.labels)
            position_ids[r, start : start + n] = torch.arange(n)
            segment[r, start : start + n] = k
            if types is not None and window.type_ids is not None:
                types[r, start : start + n] = torch.tensor(window.type_ids)
            start += n
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    mask = same | torch.eye(width, dtype=torch.bool)
    batch = {"input_ids": input_ids, "attention_mask": mask[:, None], "position_ids": position_ids, "labels": labels}
    return batch | ({"token_type_ids": types} if types is not None else {})


def eval_batches(lengths: Sequence[int], batch_size: int, world_size: int = 1, rank: int = 0) -> list[list[int]]:
    """Evaluation batches of this worker: items sorted by length (longest first), cut into batches,
    batches dealt round-robin to workers. Sorting keeps padding small; dealing whole batches
    makes every batch identical however many workers score the set."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return batches[rank::world_size]
