"""Word tags from word-level label probabilities: each word's most probable tag, or the most probable *valid*
IOB2 sequence (``model.decoding: constrained``), in plain numpy.

Scored strictly (:func:`~drml_ray.ner.metrics.strict_entities`, seqeval's strict mode), an ``I-X`` that follows
``O`` or another type continues nothing and its words are lost: a word-by-word argmax that tags a name
``O I-PER`` finds no person. Constrained decoding is Viterbi over the words' log-probabilities in which ``I-X``
may follow only ``B-X`` or ``I-X`` (and cannot start a sentence); no transition scores are learned, so it
adds nothing to train and changes only sequences that argmax would make invalid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np

from drml_ray.data.tags import is_tag, read_tag
from drml_ray.errors import UserError

DECODINGS = ("argmax", "constrained")
UNNAMED = re.compile(r"LABEL_\d+")
"""The names transformers gives the labels of a head trained without any."""


def head_tags(labels: Sequence[str], where: str = "the model") -> list[str]:
    """A token-classification head's labels as IOB2 tags, id by id: IOB2's as they are, BIOES / BILOU / BMES
    ones as IOB2 (``S-X``: ``B-X``, ``E-X``: ``I-X``), a bare type (IO tagging, Few-NERD's ``person-actor``) as
    ``I-X`` (:func:`open_runs` opens its runs). A head of ``LABEL_0``, ... names no entity type: refused.

    >>> head_tags(["O", "S-PER", "B-PER", "E-PER", "I-PER", "person-actor", "LOC"])
    ['O', 'B-PER', 'B-PER', 'I-PER', 'I-PER', 'I-person-actor', 'I-LOC']
    """
    if any(UNNAMED.fullmatch(label) for label in labels):
        shown = ", ".join(labels[:3]) + (", ..." if len(labels) > 3 else "")
        raise UserError(f"{where}: its head's labels are {shown} (config.json's id2label), the names transformers "
                        "gives a head trained without any: they say no entity type; write its tags (O, B-PER, ...) "
                        "into id2label in the head's order")  # fmt: skip
    return [read_tag(label) if is_tag(label) else f"I-{label}" for label in labels]


def check_head(folder: Path) -> None:
    """:func:`head_tags`' check of a saved model's head, from its ``config.json`` alone: for commands whose model
    loads in Ray actors or Serve replicas, which would say it only after Ray gave up on them."""
    try:
        id2label = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("id2label")
    except (OSError, ValueError, AttributeError):  # (no such file, or not JSON of an object: the load says so)
        return
    if isinstance(id2label, dict):
        head_tags([str(label) for label in id2label.values()], str(folder))


def open_runs(tags: Sequence[str], unopened: Collection[str]) -> list[str]:
    """``tags`` with each run of an ``unopened`` tag (an ``I-X`` the head has no ``B-X`` for: IO tagging) opened
    by ``B-X``, so that strict IOB2 reads it as one entity.

    >>> open_runs(["O", "I-PER", "I-PER", "I-LOC", "O", "I-LOC", "B-ORG", "I-ORG"], {"I-PER", "I-LOC"})
    ['O', 'B-PER', 'I-PER', 'B-LOC', 'O', 'B-LOC', 'B-ORG', 'I-ORG']
    """
    return [f"B-{tag[2:]}" if tag in unopened and (i == 0 or tags[i - 1] != tag) else tag for i, tag in enumerate(tags)]


def allowed_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(start, follows)``: which labels may open a sentence, and ``follows[i, j]``: whether label ``j`` may
    come after label ``i``. Only ``I-X`` is restricted, and only when the label set has a ``B-X`` to open it.

    >>> start, follows = allowed_transitions(["O", "B-PER", "I-PER", "B-LOC"])
    >>> start.tolist(), follows[:, 2].tolist()
    ([True, True, False, True], [False, True, True, False])
    """
    n = len(labels)
    start, follows = np.ones(n, dtype=bool), np.ones((n, n), dtype=bool)
    for j, label in enumerate(labels):
        kind = label[2:]
        if label.startswith("I-") and f"B-{kind}" in labels:
            start[j] = False
            follows[:, j] = [prev in (f"B-{kind}", f"I-{kind}") for prev in labels]
    return start, follows


def viterbi(probs: np.ndarray, start: np.ndarray, follows: np.ndarray) -> np.ndarray:
    """The label ids of the most probable sequence of ``probs`` (words x labels) that the transitions allow.

    >>> start, follows = allowed_transitions(["O", "B-PER", "I-PER"])
    >>> probs = np.array([[0.6, 0.1, 0.3], [0.1, 0.1, 0.8]])  # argmax: O I-PER, which scores no entity
    >>> viterbi(probs, start, follows).tolist()  # O,I: not allowed; B,I: 0.1*0.8 = .08 > O,O: 0.6*0.1 = .06
    [1, 2]
    """
    if len(probs) == 0:
        return np.zeros(0, dtype=np.int64)
    logp = np.log(np.clip(probs.astype(np.float64), 1e-30, None))
    blocked = np.where(follows, 0.0, -np.inf)
    best = np.where(start, logp[0], -np.inf)
    back = np.zeros(probs.shape, dtype=np.int64)
    for w in range(1, len(probs)):
        paths = best[:, None] + blocked  # paths[i, j]: the best sequence ending i, then j
        back[w] = paths.argmax(0)
        best = paths.max(0) + logp[w]
    ids = [int(best.argmax())]
    for w in range(len(probs) - 1, 0, -1):
        ids.append(int(back[w, ids[-1]]))
    return np.array(ids[::-1], dtype=np.int64)


def decoder(labels: Sequence[str], decoding: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A function from one sentence's ``probs`` (words x labels) to its label ids and their probabilities.

    >>> probs = np.array([[0.6, 0.1, 0.3], [0.1, 0.1, 0.8]])
    >>> [decoder(["O", "B-PER", "I-PER"], d)(probs)[0].tolist() for d in DECODINGS]
    [[0, 2], [1, 2]]
    """
    if decoding not in DECODINGS:
        raise ValueError(f"decoding {decoding!r}: expected one of {', '.join(DECODINGS)}")
    transitions = allowed_transitions(labels)

    def run(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if decoding == "constrained":
            ids = viterbi(probs, *transitions)
        else:
            ids = probs.argmax(-1) if len(probs) else np.zeros(0, dtype=np.int64)
        return ids, probs[np.arange(len(ids)), ids].astype(np.float32)

    return run
