"""Tasks and episodes.

A *task* is a labelled corpus with its own label set: CoNLL-2003, a CrossNER domain, a folder of the user's own
split files, or (for tests) ``generated:PER,LOC`` — the generated corpus with only those entity types kept. An
*episode* samples K support sentences and a disjoint query set from one task, optionally restricted to N of its
entity types (the others become ``O``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drml_ray.config import GENERATED_PREFIX, DataConfig, TaskData, generated_task_types, is_task_folder
from drml_ray.data.conll import Sentence, discover_labels
from drml_ray.data.tags import entity_types, split_tag
from drml_ray.errors import UserError
from drml_ray.meta.label_head import type_name  # noqa: F401  (re-exported: the names tasks are described by)


@dataclass(frozen=True)
class Task:
    """One NER task: its name, IOB2 label list and splits."""

    name: str
    labels: list[str]
    splits: dict[str, list[Sentence]]

    @property
    def types(self) -> list[str]:
        return entity_types(self.labels)


def keep_types(sentences: Sequence[Sentence], types: set[str]) -> list[Sentence]:
    """Sentences with every entity outside ``types`` re-tagged ``O``."""
    out = []
    for s in sentences:
        tags = tuple(t if split_tag(t)[1] in types or t == "O" else "O" for t in s.tags)
        out.append(Sentence(s.tokens, tags))
    return out


def load_task(spec: str, data: TaskData, *, max_train_sentences: int | None = None) -> Task:
    """Read task ``spec`` (a registered corpus name, ``generated:TYPES`` or a folder of split files) through the
    data layer."""
    from drml_ray.data.load import folder_splits, load_corpus

    if spec.startswith(GENERATED_PREFIX):
        try:
            types = generated_task_types(spec)
        except ValueError as err:
            raise UserError(str(err)) from None
        # Each generated task draws its own sentences (the seed depends on the types kept).
        g = data.generated.model_copy(update={"seed": data.generated.seed + sum(map(ord, "".join(sorted(types))))})
        corpus = load_corpus(DataConfig(corpus="generated", generated=g), progress=False)
        splits = {k: keep_types(v, types) for k, v in corpus.splits.items()}
    elif is_task_folder(spec):  # the user's own split files: the label set is the train file's
        try:
            files = folder_splits(spec)
        except ValueError as err:
            raise UserError(str(err)) from None
        splits = dict(load_corpus(DataConfig(**files, columns=data.columns), progress=False).splits)
    else:
        corpus = load_corpus(DataConfig(corpus=spec), progress=False)
        splits = dict(corpus.splits)
    if max_train_sentences is not None:
        splits["train"] = splits["train"][:max_train_sentences]
    return Task(spec, discover_labels(*splits.values()), splits)


def task_digests(tasks: Iterable[Task]) -> dict[str, str]:
    """A hash of each task's splits, whatever files they were read from (a continued run checks them)."""
    from drml_ray.data.load import digest

    return {f"task {t.name}'s {split}": digest(sentences) for t in tasks for split, sentences in t.splits.items()}


def labels_of(types: Sequence[str]) -> list[str]:
    """The IOB2 label list of entity types, in :func:`discover_labels` order."""
    return ["O"] + [f"{p}-{k}" for k in sorted(types) for p in ("B", "I")]


@dataclass(frozen=True)
class Episode:
    """Support and query sentences of one task (indices into its train split), with the episode's labels."""

    task: str
    labels: list[str]
    support_ids: list[int]
    query_ids: list[int]
    support: list[Sentence]
    query: list[Sentence]


def eligible(sentences: Sequence[Sentence], types: set[str]) -> list[int]:
    """The indices of the sentences holding an entity of one of ``types``."""
    return [i for i, s in enumerate(sentences) if any(split_tag(t)[1] in types for t in s.tags)]


def sample_episode(task: Task, shots: int, query: int, rng: random.Random, n_way: int | None = None) -> Episode:
    """K support + Q query sentences of ``task``'s train split, disjoint, drawn with ``rng``.

    With ``n_way``, N entity types are drawn first; only sentences holding one of them are
    eligible, and the other types are tagged ``O`` in the episode.
    """
    sentences = task.splits["train"]
    types = task.types
    if n_way is not None and n_way < len(types):
        types = sorted(rng.sample(types, n_way))
        chosen = set(types)
        pool = eligible(sentences, chosen)
    else:
        chosen = set(types)
        pool = list(range(len(sentences)))
    if len(pool) < shots + query:
        raise UserError(
            f"task {task.name}: an episode needs {shots} + {query} sentences but only {len(pool)} are eligible"
        )
    picked = rng.sample(pool, shots + query)
    support_ids, query_ids = picked[:shots], picked[shots:]
    pick = lambda ids: keep_types([sentences[i] for i in ids], chosen)
    return Episode(task.name, labels_of(types), support_ids, query_ids, pick(support_ids), pick(query_ids))


def check_episodes(task: Task, shots: int, query: int, n_way: int | None = None) -> None:
    """Refuse, before any training, a task whose train split cannot fill an episode of ``shots`` + ``query``
    sentences (with ``n_way``: when the draw is its N rarest types, the sentences holding one of them)."""
    sentences, what = task.splits["train"], "sentences"
    pool = len(sentences)
    if n_way is not None and n_way < len(task.types):
        rarest = set(sorted(task.types, key=lambda k: (len(eligible(sentences, {k})), k))[:n_way])
        pool = len(eligible(sentences, rarest))
        what = f"sentences holding one of its {n_way} rarest types ({', '.join(sorted(rarest))}: meta.n_way draws)"
    if pool < shots + query:
        raise UserError(
            f"task {task.name}: an episode needs meta.shots + meta.query = {shots} + {query} sentences, "
            f"and its train split has {pool} {what}; lower them or give the task more sentences"
        )


def sample_shots(sentences: Sequence[Sentence], shots: int | str, seed: int) -> list[Sentence]:
    """The K-shot training set of one adaptation: K sentences drawn with ``seed`` (``"all"``: every one).

    >>> from drml_ray.data.generated import generate_sentences
    >>> pool = generate_sentences(30, 0)
    >>> sample_shots(pool, 5, seed=1) == sample_shots(pool, 5, seed=1), len(sample_shots(pool, "all", 1))
    (True, 30)
    """
    if shots == "all" or int(shots) >= len(sentences):
        return list(sentences)
    return random.Random(seed).sample(list(sentences), int(shots))
