from __future__ import annotations

from collections import Counter

import pytest

from drml_ray.ner.batching import collate, epoch_batches, eval_batches, shard
from drml_ray.ner.features import IGNORE, Window


def plans(n, *, batch_size, world, accum, seed=1, epoch=0, lengths=None):
    """Per-worker step lists, as the training loop builds them."""
    batches = epoch_batches(n, batch_size=batch_size, shards=world * accum, seed=seed, epoch=epoch, lengths=lengths)
    return [[shard(b, rank=r, world_size=world, grad_accum=accum) for b in batches] for r in range(world)]


def items(plan):
    return [i for step in plan for micro in step for i in micro]


@pytest.mark.parametrize(("world", "accum"), [(1, 1), (2, 1), (2, 2), (4, 1)])
@pytest.mark.parametrize("grouped", [False, True])
def test_every_item_once_per_epoch(world, accum, grouped):
    lengths = [(7 * i) % 23 + 1 for i in range(40)] if grouped else None
    per_worker = plans(40, batch_size=8, world=world, accum=accum, epoch=3, lengths=lengths)
    assert Counter(i for p in per_worker for i in items(p)) == Counter(range(40))
    assert len({len(p) for p in per_worker}) == 1  # every worker takes the same number of steps
    assert all(len(step) == accum and all(step) for p in per_worker for step in p)


def test_padding_wraps_so_no_micro_batch_is_empty():
    per_worker = plans(11, batch_size=4, world=2, accum=1, seed=0)
    seen = [i for p in per_worker for i in items(p)]
    assert len(seen) == 12 and set(seen) == set(range(11))


def test_global_batches_do_not_depend_on_the_worker_count():
    one = plans(32, batch_size=8, world=1, accum=1, seed=5)[0]
    two = plans(32, batch_size=8, world=2, accum=1, seed=5)
    for k, step in enumerate(one):
        assert set(step[0]) == set(two[0][k][0]) | set(two[1][k][0])


def test_epochs_are_shuffled_differently_but_reproducibly():
    kwargs = {"batch_size": 4, "shards": 1, "seed": 7}
    assert epoch_batches(20, epoch=0, **kwargs) == epoch_batches(20, epoch=0, **kwargs)
    assert epoch_batches(20, epoch=0, **kwargs) != epoch_batches(20, epoch=1, **kwargs)


def test_length_grouping_keeps_the_epoch_and_cuts_padding():
    lengths = [(37 * i) % 97 + 3 for i in range(1600)]
    kwargs = {"batch_size": 16, "shards": 2, "seed": 3, "epoch": 0}
    plain = epoch_batches(1600, **kwargs)
    grouped = epoch_batches(1600, lengths=lengths, **kwargs)
    assert sorted(i for b in grouped for i in b) == sorted(i for b in plain for i in b)  # same sentences

    def efficiency(batches):
        return sum(lengths[i] for b in batches for i in b) / sum(max(lengths[i] for i in b) * len(b) for b in batches)

    assert efficiency(plain) < 0.7 < 0.95 < efficiency(grouped)
    assert grouped != sorted(grouped, key=lambda b: -max(lengths[i] for i in b))  # batch order is shuffled


def test_batch_must_divide():
    with pytest.raises(ValueError, match="multiple"):
        epoch_batches(10, batch_size=6, shards=4, seed=0, epoch=0)


def test_shard_deals_round_robin_then_splits_for_accumulation():
    assert shard([0, 1, 2, 3, 4, 5, 6, 7], rank=1, world_size=2, grad_accum=2) == [[1, 5], [3, 7]]


def test_eval_batches_sorted_and_dealt_round_robin():
    lengths = [3, 9, 1, 7, 5]
    assert eval_batches(lengths, 2) == [[1, 3], [4, 0], [2]]
    assert eval_batches(lengths, 2, world_size=2, rank=0) == [[1, 3], [2]]
    assert eval_batches(lengths, 2, world_size=2, rank=1) == [[4, 0]]


def test_collate_pads_dynamically():
    batch = collate([Window(0, 0, [2, 5, 3], [IGNORE, 1, IGNORE], [1]), Window(1, 0, [2, 3], [IGNORE] * 2, [])], 0)
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 1, IGNORE], [IGNORE, IGNORE, IGNORE]]


def test_split_by_length_keeps_items_and_cuts_padding():
    from drml_ray.ner.batching import split_by_length

    lengths = [(37 * i) % 60 + 3 for i in range(16)]
    pieces = split_by_length(list(range(16)), lengths, overhead=64)
    assert sorted(i for p in pieces for i in p) == list(range(16))
    padded = sum(max(lengths[i] for i in p) * len(p) for p in pieces)
    assert padded + 64 * len(pieces) <= max(lengths) * 16 + 64  # never worse than one padded batch
    assert len(pieces) > 1 and padded < max(lengths) * 16
    assert split_by_length([0, 1], [5, 5], overhead=64) == [[0, 1]]  # nothing to save: one piece


def test_pack_rows_keeps_items_fits_rows_and_needs_no_more_rows_than_first_fit():
    from drml_ray.ner.batching import _first_fit, pack_rows

    lengths = [(37 * i) % 60 + 3 for i in range(16)]
    rows = pack_rows(list(range(16)), lengths, max_length=128)
    assert sorted(i for row in rows for i in row) == list(range(16))
    sums = [sum(lengths[i] for i in row) for row in rows]
    assert max(sums) <= 128
    first_fit = _first_fit(sorted(range(16), key=lambda i: -lengths[i]), lengths, 128)
    assert len(rows) == len(first_fit)
    # even rows: the batch pads every row to the longest, so less padding than plain first fit
    assert len(rows) * max(sums) <= len(first_fit) * max(sum(lengths[i] for i in row) for row in first_fit)


def test_collate_packed_restarts_positions_and_blocks_attention_between_windows():
    from drml_ray.ner.batching import collate_packed

    windows = [Window(0, 0, [2, 5, 3], [IGNORE, 1, IGNORE], [1]), Window(1, 0, [2, 3], [IGNORE] * 2, [])]
    batch = collate_packed(windows, [[0, 1]], pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 5, 3, 2, 3]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE, 1, IGNORE, IGNORE, IGNORE]]
    block = [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]
    assert batch["attention_mask"].int().tolist() == [[block]]
    padded = collate_packed(windows, [[0], [1]], pad_id=0)  # the short row is padded; padding sees itself only
    assert padded["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert padded["attention_mask"][1, 0].int().tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
