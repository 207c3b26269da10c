"""Words -> model inputs: sub-word label alignment and windows for long sentences.

Alignment follows Hugging Face's ``run_ner_no_trainer.py``: the fast tokenizer's ``word_ids()``
say which word each sub-token came from; the first sub-token of a word carries the word's label
and the others are ignored (``-100``), or, with ``label_all_tokens``, carry the word's label with
``B-`` turned into ``I-``.

A sentence longer than the model's window is never truncated: it is split into windows of whole
words that overlap by ``overlap`` words, and the per-word predictions are merged back by taking,
for each word, the window in which it sits furthest from an edge (most context on both sides).

Document context (``data.context``, the "maximal document context" of Devlin et al.): a sentence
that fits its window shares it with the words around it in its document, whole words nearest first,
the room split evenly between the two sides; those words carry no labels and get no predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import takewhile

import numpy as np

from drml_ray.errors import UserError

IGNORE = -100


@dataclass(frozen=True)
class Window:
    """One model input: words ``first_word .. first_word + n_words`` of sentence ``sentence``."""

    sentence: int
    first_word: int
    input_ids: list[int]
    labels: list[int]
    """Per sub-token label id, ``-100`` where no loss is taken; all ``-100`` when unlabelled."""
    word_starts: list[int]
    """Position of each word's first sub-token in ``input_ids`` (one entry per word)."""

    @property
    def n_words(self) -> int:
        return len(self.word_starts)


def plan_windows(lengths: Sequence[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Split words with sub-token counts ``lengths`` into ``[start, end)`` word ranges.

    Each range holds at most ``budget`` sub-tokens (a single longer word gets a range of its own);
    consecutive ranges share up to ``overlap`` words, and every range starts after the previous.

    >>> plan_windows([1, 1, 1, 1, 1], budget=3, overlap=1)
    [(0, 3), (2, 5)]
    """
    n = len(lengths)
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + lengths[end] <= budget:
            used += lengths[end]
            end += 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= n:
            return windows
        start = max(end - overlap, start + 1)


def _word_pieces(
    word_ids: Sequence[int | None], input_ids: Sequence[int], n_words: int, unk_id: int
) -> list[list[int]]:
    pieces: list[list[int]] = [[] for _ in range(n_words)]
    for word, token in zip(word_ids, input_ids, strict=True):
        if word is not None:
            pieces[word].append(token)
    # A word the tokenizer maps to nothing (e.g. a lone zero-width character) still needs a position.
    return [p or [unk_id] for p in pieces]


def encode(
    tokenizer,
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]] | None,
    label2id: dict[str, int],
    *,
    max_length: int,
    overlap: int,
    label_all_tokens: bool = False,
    documents: Sequence[int | None] | None = None,
) -> list[Window]:
    """Tokenise word lists (one fast-tokenizer batch call) into labelled windows.

    ``tags`` may be ``None`` for unlabelled text. Windows appear in sentence order, and within a
    sentence in word order. ``documents``, when given, is each sentence's document (consecutive
    sentences of one document; ``None``: a sentence on its own): its window is filled with context.
    """
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise UserError(f"{type(tokenizer).__name__} has no CLS/SEP tokens; drml-ray supports BERT-style encoders")
    budget = max_length - 2
    if budget < 1:
        raise UserError(f"model.max_length={max_length} leaves no room for words")
    encoded = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False)
    all_pieces: list[list[list[int]]] = []
    for i, words in enumerate(sentences):
        pieces = _word_pieces(encoded.word_ids(i), encoded["input_ids"][i], len(words), tokenizer.unk_token_id)
        all_pieces.append([p[:budget] for p in pieces])  # a pathological word keeps its first sub-tokens
    windows: list[Window] = []
    for i, pieces in enumerate(all_pieces):
        word_labels = [label2id[t] for t in tags[i]] if tags is not None else None
        plan = plan_windows([len(p) for p in pieces], budget, overlap)
        room = budget - sum(map(len, pieces)) if documents is not None and len(plan) == 1 else 0
        left, right = _context(all_pieces, documents, i, room) if room > 0 else ([], [])
        for start, end in plan:
            input_ids, labels, starts = [cls_id, *left], [IGNORE] * (1 + len(left)), []
            for w in range(start, end):
                starts.append(len(input_ids))
                input_ids.extend(pieces[w])
                first = word_labels[w] if word_labels is not None else IGNORE
                rest = IGNORE
                if label_all_tokens and word_labels is not None:
                    rest = label2id.get(_inside(tags[i][w]), first)  # type: ignore[index]
                labels.extend([first] + [rest] * (len(pieces[w]) - 1))
            input_ids.extend([*right, sep_id])
            labels.extend([IGNORE] * (len(right) + 1))
            windows.append(Window(i, start, input_ids, labels, starts))
    return windows


def _context(
    pieces: Sequence[Sequence[list[int]]], documents: Sequence[int | None], i: int, room: int
) -> tuple[list[int], list[int]]:
    """Sub-tokens of the words before and after sentence ``i`` in its document, at most ``room`` in all: whole
    words, nearest first, one side then the other; a side whose next word does not fit stops, leaving its room
    to the other.

    >>> _context([[[1], [2, 3]], [[4]], [[5], [6]], [[7]]], [0, 0, 0, 1], 1, room=3)
    ([2, 3], [5])
    """
    doc = documents[i]
    if doc is None:
        return [], []

    def same(j: int) -> bool:
        return documents[j] == doc

    before = (w for j in takewhile(same, range(i - 1, -1, -1)) for w in reversed(pieces[j]))
    after = (w for j in takewhile(same, range(i + 1, len(pieces))) for w in pieces[j])
    sides: list[list[list[int]]] = [[], []]
    streams, open_ = [before, after], [True, True]
    while any(open_):
        for k in (0, 1):
            word = next(streams[k], None) if open_[k] else None
            if word is None or len(word) > room:
                open_[k] = False
                continue
            sides[k].append(word)
            room -= len(word)
    return [t for w in reversed(sides[0]) for t in w], [t for w in sides[1] for t in w]


def _inside(tag: str) -> str:
    """``B-X`` -> ``I-X`` (the label of a word's later sub-tokens under ``label_all_tokens``)."""
    return "I-" + tag[2:] if tag.startswith("B-") else tag


def merge_windows(
    windows: Sequence[Window],
    window_preds: Sequence[np.ndarray],
    window_scores: Sequence[np.ndarray],
    n_words: Sequence[int],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Merge per-window word predictions (label ids, scores) into per-sentence arrays.

    A word covered by several windows takes the prediction of the window where it is furthest
    from the window's edge; ties go to the earlier window.
    """
    preds = [np.zeros(n, dtype=np.int64) for n in n_words]
    scores = [np.zeros(n, dtype=np.float32) for n in n_words]
    margin = [np.full(n, -1, dtype=np.int64) for n in n_words]
    for window, wp, ws in zip(windows, window_preds, window_scores, strict=True):
        s, k = window.sentence, window.n_words
        for j in range(k):
            w = window.first_word + j
            m = min(j, k - 1 - j)
            if m > margin[s][w]:
                margin[s][w], preds[s][w], scores[s][w] = m, wp[j], ws[j]
    return preds, scores
