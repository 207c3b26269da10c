"""The continual-learning pieces against hand-computed values (plain torch, no Ray)."""

from __future__ import annotations

import math

import pytest
import torch

from drml_ray.continual.protocols import canonical, partition, type_steps
from drml_ray.continual.strategies import (
    diagonal_fisher,
    distillation_sum,
    ewc_penalty,
    grown_labels,
    online_fisher,
    replay_sample,
    sentence_types,
)
from drml_ray.data.conll import Sentence


def test_fisher_is_the_mean_squared_gradient_over_batches():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    # d/dw (2w - 1)^2 = 4(2w - 1) = 4 at w=1; d/dw (3w)^2 = 18w = 18.
    losses = [lambda: ((2 * w - 1) ** 2).sum(), lambda: ((3 * w) ** 2).sum()]
    assert diagonal_fisher({"w": w}, losses)["w"].tolist() == [(16 + 324) / 2]


def test_ewc_penalty_by_hand_and_over_the_old_rows_of_a_grown_parameter():
    fisher, anchor = {"w": torch.tensor([2.0, 0.5])}, {"w": torch.tensor([0.0, 1.0])}
    assert ewc_penalty({"w": torch.tensor([1.0, 3.0])}, fisher, anchor).item() == 2 * 1 + 0.5 * 4
    grown = {"w": torch.tensor([1.0, 3.0, 100.0])}  # a new row: no anchor, no penalty
    assert ewc_penalty(grown, fisher, anchor).item() == 4.0
    head = {"c": torch.tensor([[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]])}
    assert ewc_penalty(head, {"c": torch.ones(2, 2)}, {"c": torch.zeros(2, 2)}).item() == 1 + 1 + 4 + 4


def test_online_fisher_decays_the_old_and_keeps_the_new_rows():
    old = {"c": torch.tensor([[4.0], [8.0]])}
    new = {"c": torch.tensor([[1.0], [1.0], [5.0]])}
    assert online_fisher(old, new, 0.5)["c"].flatten().tolist() == [3.0, 5.0, 5.0]
    assert online_fisher(None, new, 0.5)["c"].flatten().tolist() == [1.0, 1.0, 5.0]


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_distillation_by_hand_with_the_students_softmax_over_all_its_labels(temperature):
    teacher = torch.tensor([[[0.0, math.log(3.0)], [5.0, -5.0]]])  # two positions, two old labels
    student = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 2.0, 3.0]]])  # a third, new label
    mask = torch.tensor([[True, False]])  # the second position does not count
    t = [math.exp(0.0), math.exp(math.log(3.0) / temperature)]
    p = [x / sum(t) for x in t]
    z = 2 + math.exp(1.0 / temperature)  # the student's softmax: 1/z, 1/z, e^(1/T)/z
    expected = temperature**2 * sum(pi * math.log(pi / (1 / z)) for pi in p)
    assert distillation_sum(student, teacher, mask, temperature).item() == pytest.approx(expected, rel=1e-6)
    # With no mass on the new label the term is the KL divergence: 0 when the old columns agree.
    agree = torch.tensor([[[0.0, math.log(3.0), -1e4]]])
    assert distillation_sum(agree, teacher[:, :1], torch.tensor([[True]]), temperature).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_growth_appends_new_types_and_maps_shared_types():
    old = ["O", "B-person", "I-person"]
    labels = grown_labels(old, ["location", "person"])
    assert labels == ["O", "B-person", "I-person", "B-location", "I-location"]
    # CoNLL's PER is CrossNER's person, so a domain sequence shares the row.
    conll = canonical([Sentence(("Ada", "Lovelace", "in", "Paris"), ("B-PER", "I-PER", "O", "B-LOC"))])
    assert conll[0].tags == ("B-person", "I-person", "O", "B-location")


def _sentences(types_per_sentence):
    return [Sentence(tuple(f"w{i}" for i in range(len(ts)) or ("x",)), tuple(f"B-{t}" for t in ts) or ("O",))
            for ts in types_per_sentence]  # fmt: skip


def test_replay_keeps_k_per_experience_deterministically_and_covers_rare_types():
    pool = _sentences([["person"]] * 40 + [["location"]] * 40 + [["award"]] * 2 + [[]] * 10)
    for selection in ("reservoir", "coverage"):
        first = replay_sample(pool, 6, selection, seed=3)
        assert len(first) == 6 and first == replay_sample(pool, 6, selection, seed=3)
        assert len(set(map(id, first))) == 6  # no sentence twice
    covered = replay_sample(pool, 3, "coverage", seed=3)
    assert set().union(*map(sentence_types, covered)) == {"person", "location", "award"}
    assert len(replay_sample(pool[:4], 10, "reservoir", seed=0)) == 4  # fewer sentences than K: all of them
    buffer = [
        s for k, experience in enumerate([pool[:30], pool[30:]]) for s in replay_sample(experience, 5, "coverage", k)
    ]
    assert len(buffer) == 10


def test_class_steps_and_disjoint_slices():
    assert type_steps(["LOC", "MISC", "ORG", "PER"], 1, 1) == [["LOC"], ["MISC"], ["ORG"], ["PER"]]
    assert type_steps(["LOC", "MISC", "ORG", "PER"], 2, 2) == [["LOC", "MISC"], ["ORG", "PER"]]
    sentences = _sentences([["LOC"], ["PER"], ["LOC", "PER"], [], ["ORG"]] * 4)
    steps = [["LOC"], ["ORG"], ["PER"]]
    slices = partition(sentences, steps, seed=0)
    # Room for 20 * 1 // 3 = 6 sentences a step: 18 placed, 2 left out, none twice.
    assert [len(s) for s in slices] == [6, 6, 6] and len({i for s in slices for i in s}) == 18
    # An ORG sentence goes to ORG's step while it has room (entity-free sentences drawn there take room too).
    assert {4, 9, 14} <= set(slices[1]) and all(i in slices[1] or i not in set().union(*slices) for i in (19,))
    # LOC and PER tie (8 each): a LOC+PER sentence goes to LOC (by name) while LOC has room.
    assert {0, 2, 5, 7, 10, 12} == set(slices[0])
    assert partition(sentences, steps, seed=0) == slices
