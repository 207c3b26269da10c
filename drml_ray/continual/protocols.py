"""The experiences of the two protocols, built from the data layer (plain Python, no Ray).

An :class:`Experience` is what one step of continual learning trains on and is scored on: its entity
types, its training sentences labelled with those types only, and the test sentences scored for them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from drml_ray.continual.config import ContinualExperiment
from drml_ray.continual.strategies import sentence_types
from drml_ray.data.conll import Sentence
from drml_ray.data.tags import split_tag
from drml_ray.errors import UserError
from drml_ray.meta.tasks import keep_types, load_task

CANONICAL_TYPES = {"PER": "person", "ORG": "organisation", "LOC": "location", "MISC": "misc"}
"""CoNLL-2003's types under the names CrossNER gives the same types, so a domain sequence shares their rows."""


@dataclass(frozen=True)
class Experience:
    name: str
    types: list[str]
    """The entity types it teaches and is scored on."""
    train: list[Sentence]
    """Training sentences, only ``types`` labelled."""
    dev: list[Sentence]
    """Dev sentences (the first ``continual.dev_sentences``), only ``types`` labelled."""
    test: list[Sentence]
    """Test sentences, only ``types`` labelled."""
    full_train: list[Sentence]
    """The same training sentences with every type of the corpus (``joint`` relabels them with all types seen)."""
    test_key: str
    """Experiences with the same key share their dev and test sentences (one prediction pass scores them all)."""


def canonical(sentences: Sequence[Sentence]) -> list[Sentence]:
    """Tags renamed to :data:`CANONICAL_TYPES`.

    >>> canonical([Sentence(("Paris",), ("B-LOC",))])[0].tags
    ('B-location',)
    """

    def rename(tag: str) -> str:
        prefix, kind = split_tag(tag)
        return tag if kind is None else f"{prefix}-{CANONICAL_TYPES.get(kind, kind)}"

    return [Sentence(s.tokens, tuple(rename(t) for t in s.tags)) for s in sentences]


def _first(sentences: list[Sentence], n: int | None) -> list[Sentence]:
    return sentences if n is None else sentences[:n]


def domain_experiences(cfg: ContinualExperiment) -> list[Experience]:
    """One experience per task of ``continual.experiences``, in order, its types canonical."""
    c, out = cfg.continual, []
    for spec in c.experiences:
        task = load_task(spec, cfg.data, max_train_sentences=cfg.data.max_train_sentences)
        train = canonical(task.splits["train"])
        dev = canonical(_first(task.splits["dev"], c.dev_sentences))
        test = canonical(_first(task.splits["test"], c.test_sentences))
        types = sorted({kind for s in train for kind in sentence_types(s)})
        out.append(Experience(spec, types, train, dev, test, train, spec))
    return out


def type_steps(types: Sequence[str], first: int, per_step: int) -> list[list[str]]:
    """The types of each step: ``first`` of them, then ``per_step`` at a time.

    >>> type_steps(["LOC", "MISC", "ORG", "PER"], 2, 1)
    [['LOC', 'MISC'], ['ORG'], ['PER']]
    """
    rest = list(types[first:])
    return [list(types[:first])] + [rest[i : i + per_step] for i in range(0, len(rest), per_step)]


def partition(sentences: Sequence[Sentence], steps: Sequence[Sequence[str]], seed: int) -> list[list[int]]:
    """Disjoint slices of the training set, one per step, as CFNER's code cuts them: step ``k`` takes at most
    ``N * len(steps[k]) / (types in all)`` sentences; a sentence goes to the step of its rarest type (by train
    frequency) that has room, else (no entity, or those steps full) to a step with room drawn with ``seed``;
    once every step is full the rest are left out."""
    counts = Counter(kind for s in sentences for kind in sentence_types(s))
    step_of = {kind: k for k, step in enumerate(steps) for kind in step}
    n_types = sum(len(step) for step in steps)
    room = [len(sentences) * len(step) // n_types for step in steps]
    rng, slices = random.Random(seed), [[] for _ in steps]  # type: list[list[int]]
    for i, s in enumerate(sentences):
        kinds = sorted((k for k in sentence_types(s) if k in step_of), key=lambda k: (counts[k], k))
        k = next((step_of[kind] for kind in kinds if room[step_of[kind]]), -1)
        if k < 0:
            open_steps = [j for j, r in enumerate(room) if r]
            if not open_steps:
                break
            k = rng.choice(open_steps)
        slices[k].append(i)
        room[k] -= 1
    return slices


def class_experiences(cfg: ContinualExperiment) -> list[Experience]:
    """The steps of the class-incremental protocol on ``continual.corpus``."""
    c = cfg.continual
    task = load_task(c.corpus, cfg.data, max_train_sentences=cfg.data.max_train_sentences)
    order = c.type_order or task.types
    unknown = sorted(set(order) - set(task.types))
    if unknown or (c.type_order is not None and set(order) != set(task.types)):
        raise UserError(f"continual.type_order must list every type of {c.corpus} once: {', '.join(task.types)} "
                        f"(got {', '.join(order)})")  # fmt: skip
    if c.first_types >= len(order):
        raise UserError(f"continual.first_types ({c.first_types}) leaves no type of {c.corpus} for a later step")
    steps = type_steps(order, c.first_types, c.types_per_step)
    train = task.splits["train"]
    dev, test = _first(task.splits["dev"], c.dev_sentences), _first(task.splits["test"], c.test_sentences)
    out = []
    for k, ids in enumerate(partition(train, steps, cfg.seed)):
        full, kinds = [train[i] for i in ids], set(steps[k])
        out.append(Experience(f"step {k + 1}: {'+'.join(steps[k])}", steps[k], keep_types(full, kinds),
                              keep_types(dev, kinds), keep_types(test, kinds), full, c.corpus))  # fmt: skip
    return out


EXPERIENCE_KEYS = {"protocol", "experiences", "corpus", "type_order", "first_types", "types_per_step", "dev_sentences",
                   "test_sentences"}  # fmt: skip
"""The ``continual`` keys :func:`experiences` reads (with ``data`` and ``seed``)."""


def experience_inputs(cfg: ContinualExperiment) -> dict[str, Any]:
    """What :func:`experiences` reads of ``cfg``: a trial searching any of it reads its own experiences."""
    return {"data": cfg.data, "seed": cfg.seed, "continual": cfg.continual.model_dump(include=EXPERIENCE_KEYS)}


def experiences(cfg: ContinualExperiment) -> list[Experience]:
    found = domain_experiences(cfg) if cfg.continual.protocol == "domain" else class_experiences(cfg)
    for e in found:
        if not e.train:
            raise UserError(f"continual experience {e.name}: no training sentences")
    return found
