"""The pieces of the continual-learning strategies, in plain torch (no Ray).

- **Label-space growth** (:func:`grown_labels`): a new experience's types are appended to the label list; a
  type seen before keeps its classifier row (bit-identical: :func:`drml_ray.ner.modeling.build_model` carries
  each saved row to its label), a new one gets a fresh row.
- **EWC** (Kirkpatrick et al. 2017), online variant (Schwarz et al. 2018): after each experience the
  diagonal Fisher of its loss (:func:`diagonal_fisher`) is added to the decayed running one
  (:func:`online_fisher`), and training pays ``lambda/2 * sum F (theta - theta*)^2`` (:func:`ewc_penalty`).
- **Distillation** (LwF; ExtendNER's loss): the previous model's logits over the old labels teach the new
  model's same rows (:func:`distillation_sum`), at the words the new data labels ``O``.
- **Replay**: K sentences kept per past experience, drawn by reservoir sampling or to cover every
  entity type (:func:`replay_sample`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from drml_ray.data.conll import Sentence
from drml_ray.data.tags import split_tag

Tensor = torch.Tensor
Params = dict[str, Tensor]


def grown_labels(old: Sequence[str], types: Iterable[str]) -> list[str]:
    """``old`` as it is, then ``B-``/``I-`` of each new type (sorted); types already there keep their place.

    >>> grown_labels(["O", "B-person", "I-person"], ["location", "person"])
    ['O', 'B-person', 'I-person', 'B-location', 'I-location']
    """
    labels = list(old) or ["O"]
    for kind in sorted(set(types)):
        labels += [label for label in (f"B-{kind}", f"I-{kind}") if label not in labels]
    return labels


def diagonal_fisher(params: dict[str, torch.nn.Parameter], losses: Iterable[Callable[[], torch.Tensor]]) -> Params:
    """The empirical diagonal Fisher: the mean over batches of each parameter's squared loss gradient
    (each callable computes one batch's mean loss), as Avalanche's EWC computes it."""
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    count = 0
    for loss_of in losses:
        grads = torch.autograd.grad(loss_of(), list(params.values()), allow_unused=True)
        for (name, _), g in zip(params.items(), grads, strict=True):
            if g is not None:
                fisher[name] += g.detach() ** 2
        count += 1
    return {name: f / max(1, count) for name, f in fisher.items()}


def _leading(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The leading block of ``tensor`` with ``shape`` (a grown classifier's old rows)."""
    return tensor[tuple(slice(0, n) for n in shape)]


def online_fisher(old: Params | None, new: Params, gamma: float) -> Params:
    """``gamma * old + new``; a grown parameter's new rows have no old Fisher (0).

    >>> online_fisher({"w": torch.tensor([1.0])}, {"w": torch.tensor([2.0, 3.0])}, 0.5)["w"].tolist()
    [2.5, 3.0]
    """
    if old is None:
        return {name: f.clone() for name, f in new.items()}
    out = {name: f.clone() for name, f in new.items()}
    for name, f in old.items():
        if name in out:
            _leading(out[name], f.shape).add_(gamma * f)
    return out


def ewc_penalty(params: dict[str, torch.nn.Parameter], fisher: Params, anchor: Params) -> torch.Tensor:
    """``sum F * (theta - theta*)^2`` over the anchored parameters (a grown one: over its old rows);
    the caller multiplies by ``lambda / 2``."""
    total = torch.zeros(())
    for name, star in anchor.items():
        p = _leading(params[name], star.shape)
        total = total + (_leading(fisher[name], star.shape) * (p - star) ** 2).sum()
    return total


def distillation_sum(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float) -> Tensor:
    """``T^2 * sum_old p (log p - log q)`` over the ``mask`` positions: ``p`` the teacher's softmax over its
    (old) labels, ``q`` the student's softmax over *all* its labels, read at the old ones (its first columns):
    the KL divergence when the student puts no mass on the new labels, more when it does (ExtendNER)."""
    q = F.log_softmax(student.float()[mask] / temperature, dim=-1)[..., : teacher.shape[-1]]
    p = F.log_softmax(teacher.float()[mask] / temperature, dim=-1)
    return (p.exp() * (p - q)).sum() * temperature**2


def sentence_types(sentence: Sentence) -> set[str]:
    return {kind for tag in sentence.tags if (kind := split_tag(tag)[1]) is not None}


def replay_sample(sentences: Sequence[Sentence], k: int, selection: str, seed: int) -> list[Sentence]:
    """``k`` sentences of an experience to replay later, the same for the same seed.

    ``reservoir``: reservoir sampling over the experience's stream (a uniform sample).
    ``coverage``: the entity types take turns (rarest first), each adding one of its sentences not yet
    chosen, so every type is replayed; the rest, if any, by reservoir.
    """
    rng = random.Random(seed)
    if selection == "coverage":
        by_type: dict[str, list[int]] = {}
        for i, s in enumerate(sentences):
            for kind in sentence_types(s):
                by_type.setdefault(kind, []).append(i)
        queues = [rng.sample(ids, len(ids)) for _, ids in sorted(by_type.items(), key=lambda kv: (len(kv[1]), kv[0]))]
        chosen: list[int] = []
        while len(chosen) < k and any(queues):
            for queue in queues:
                while queue and queue[-1] in chosen:
                    queue.pop()
                if queue and len(chosen) < k:
                    chosen.append(queue.pop())
        rest = [s for i, s in enumerate(sentences) if i not in set(chosen)]
        return [sentences[i] for i in chosen] + replay_sample(rest, k - len(chosen), "reservoir", seed)
    reservoir: list[Sentence] = []
    for i, s in enumerate(sentences):  # algorithm R
        if i < k:
            reservoir.append(s)
        elif (j := rng.randrange(i + 1)) < k:
            reservoir[j] = s
    return reservoir
