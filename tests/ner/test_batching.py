from __future__ import annotations

from collections import Counter

import pytest

from drml_ray.ner.batching import collate, epoch_plan, eval_batches
from drml_ray.ner.features import IGNORE, Window


def flat(plan):
    return [i for step in plan for micro in step for i in micro]


@pytest.mark.parametrize(("world", "accum"), [(1, 1), (2, 1), (2, 2), (4, 1)])
def test_every_item_once_per_epoch(world, accum):
    plans = [epoch_plan(40, batch_size=8, world_size=world, rank=r, grad_accum=accum, seed=1, epoch=3)
             for r in range(world)]  # fmt: skip
    assert Counter(i for p in plans for i in flat(p)) == Counter(range(40))
    assert len({len(p) for p in plans}) == 1  # every worker takes the same number of steps
    assert all(len(step) == accum and all(step) for p in plans for step in p)


def test_padding_wraps_so_no_micro_batch_is_empty():
    plans = [epoch_plan(11, batch_size=4, world_size=2, rank=r, grad_accum=1, seed=0, epoch=0) for r in (0, 1)]
    items = [i for p in plans for i in flat(p)]
    assert len(items) == 12 and set(items) == set(range(11))


def test_global_batches_do_not_depend_on_the_worker_count():
    one = epoch_plan(32, batch_size=8, world_size=1, rank=0, grad_accum=1, seed=5, epoch=0)
    two = [epoch_plan(32, batch_size=8, world_size=2, rank=r, grad_accum=1, seed=5, epoch=0) for r in (0, 1)]
    for k, step in enumerate(one):
        assert set(step[0]) == set(two[0][k][0]) | set(two[1][k][0])


def test_epochs_are_shuffled_differently_but_reproducibly():
    kwargs = {"batch_size": 4, "world_size": 1, "rank": 0, "grad_accum": 1, "seed": 7}
    assert epoch_plan(20, epoch=0, **kwargs) == epoch_plan(20, epoch=0, **kwargs)
    assert epoch_plan(20, epoch=0, **kwargs) != epoch_plan(20, epoch=1, **kwargs)


def test_batch_must_divide():
    with pytest.raises(ValueError, match="multiple"):
        epoch_plan(10, batch_size=6, world_size=4, rank=0, grad_accum=1, seed=0, epoch=0)


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
