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

Word shapes (``model.casing: shape``, :mod:`~drml_ray.ner.casing`): every sub-token, context included, carries its
word's shape as its token type.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice, takewhile
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from drml_ray.errors import UserError
from drml_ray.ner.casing import word_shape

if TYPE_CHECKING:
    from drml_ray.data.conll import Sentence

IGNORE = -100
P = TypeVar("P")
Piece = tuple[int, int]
"""A sub-token of a word: its id and its token type (the word's shape, or 0)."""


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
    type_ids: list[int] | None = None
    """Per sub-token token type (its word's shape) under ``model.casing: shape``; ``None``: the model's default."""

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


def check_vocabulary(tokenizer, rows: int, where: str) -> None:
    """Refuse a tokenizer whose ids run past the model's ``rows`` embeddings (another model's tokenizer in the
    folder): the first such word is an IndexError inside the model's forward pass."""
    if len(tokenizer) > rows:
        raise UserError(f"{where}: its tokenizer has {len(tokenizer):,} tokens but the model embeds {rows:,}: are the "
                        "tokenizer files another model's?")  # fmt: skip


FIT_SAMPLE = 5000
"""Train words (the first so many) whose sub-tokens tell whether the backbone's vocabulary covers the corpus."""


def first_words(sentences: Iterable[Sentence]) -> list[str]:
    """The first :data:`FIT_SAMPLE` words of ``sentences``, for :func:`vocabulary_fit`."""
    return list(islice((token for sentence in sentences for token in sentence.tokens), FIT_SAMPLE))


def vocabulary_fit(tokenizer, words: Sequence[str]) -> tuple[float, float]:
    """How ``tokenizer`` reads ``words``: in how many sub-tokens a word, on average, and the share of the words it
    reads as nothing but its unknown token (a script its vocabulary lacks)."""
    pieces = [p or [tokenizer.unk_token_id] for p in tokenizer(list(words), add_special_tokens=False)["input_ids"]]
    unknown = sum(all(token == tokenizer.unk_token_id for token in p) for p in pieces)
    return sum(map(len, pieces)) / max(len(pieces), 1), unknown / max(len(pieces), 1)


POSITIONS_AFTER_PAD = frozenset({
    "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text", "mpnet", "ibert",
    "roberta-prelayernorm", "xmod", "luke", "markuplm", "esm",
})  # fmt: skip
"""Model types whose position ids count from ``pad_token_id + 1`` (RoBERTa's ``padding_idx``): XLM-R's 514 rows
hold 512 positions."""


def window_positions(config: Any) -> int | None:
    """How many sub-tokens (CLS and SEP among them) one window of a model of ``config`` holds: its position rows,
    less those a RoBERTa-family model skips; ``None`` where its config sets no bound."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and getattr(config, "model_type", None) in POSITIONS_AFTER_PAD:
        positions -= (config.pad_token_id or 0) + 1
    return positions


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
    casing: bool = False,
) -> list[Window]:
    """Tokenise word lists (one fast-tokenizer batch call) into labelled windows.

    ``tags`` may be ``None`` for unlabelled text. Windows appear in sentence order, and within a
    sentence in word order. ``documents``, when given, is each sentence's document (consecutive
    sentences of one document; ``None``: a sentence on its own): its window is filled with context.
    ``casing``: each sub-token's token type is its word's shape.
    """
    words = _Words(tokenizer, sentences, tags, label2id, max_length, label_all_tokens, casing)
    windows: list[Window] = []
    for i, pieces in enumerate(words.pieces):
        plan = plan_windows([len(p) for p in pieces], words.budget, overlap)
        room = words.budget - sum(map(len, pieces)) if documents is not None and len(plan) == 1 else 0
        left, right = _context(words.pieces, documents, i, room) if room > 0 else ([], [])
        for start, end in plan:
            tokens, labels, starts = words.span(i, start, end, offset=1 + len(left))
            labels = [IGNORE] * len(left) + labels + [IGNORE] * len(right)
            windows.append(words.window(i, start, [*left, *tokens, *right], labels, starts))
    return windows


def encode_documents(
    tokenizer,
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]],
    label2id: dict[str, int],
    documents: Sequence[int | None],
    *,
    max_length: int,
    overlap: int,
    label_all_tokens: bool = False,
    casing: bool = False,
) -> list[Window]:
    """Training windows cut from whole documents (``data.context_train: document``): consecutive sentences of
    one document share a window while they fit, every word labelled, so each sentence trains with its
    neighbours as context at the cost of training without them. A sentence that does not fit a window alone
    is split as :func:`encode` splits it; a sentence without a document (``None``) has a window of its own.
    A window's ``sentence`` is its first sentence, its ``word_starts`` cover every sentence in it. ``casing`` as
    :func:`encode` has it.
    """
    words = _Words(tokenizer, sentences, tags, label2id, max_length, label_all_tokens, casing)
    windows: list[Window] = []
    for group in _document_groups(words.pieces, documents, words.budget):
        if len(group) > 1:
            windows.append(_joined(words, group))
            continue
        [i] = group  # alone: one window, or split like encode's when it does not fit one
        for start, end in plan_windows([len(p) for p in words.pieces[i]], words.budget, overlap):
            windows.append(words.window(i, start, *words.span(i, start, end, offset=1)))
    return windows


def _document_groups(
    pieces: Sequence[Sequence[list[P]]], documents: Sequence[int | None], budget: int
) -> Iterator[list[int]]:
    """Sentence indices in order, grouped by the window they share: same document, at most ``budget``
    sub-tokens together; a sentence without a document, or over budget, is a group of its own.

    >>> list(_document_groups([[[1, 2]], [[3]], [[4, 5, 6, 7]], [[8]], [[9]]], [0, 0, 0, 0, 1], budget=3))
    [[0, 1], [2], [3], [4]]
    """
    group: list[int] = []
    used = 0
    for i, sentence in enumerate(pieces):
        size = sum(map(len, sentence))
        if group and (documents[i] is None or documents[i] != documents[group[0]] or used + size > budget):
            yield group
            group, used = [], 0
        group.append(i)
        used += size
    if group:
        yield group


def _joined(words: _Words, group: Sequence[int]) -> Window:
    """One window holding the sentences ``group``, whole and in order."""
    tokens: list[Piece] = []
    labels: list[int] = []
    starts: list[int] = []
    for i in group:
        pieces, labs, st = words.span(i, 0, len(words.pieces[i]), offset=1 + len(tokens))
        tokens.extend(pieces)
        labels.extend(labs)
        starts.extend(st)
    return words.window(group[0], 0, tokens, labels, starts)


class _Words:
    """A corpus' words as sub-token pieces (one fast-tokenizer batch call), and the windows built from them."""

    def __init__(
        self, tokenizer, sentences, tags, label2id: dict[str, int], max_length: int, label_all: bool, casing: bool
    ):
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        if self.cls_id is None or self.sep_id is None:
            raise UserError(f"{type(tokenizer).__name__} has no CLS/SEP tokens; drml-ray supports BERT-style encoders")
        self.budget = max_length - 2
        if self.budget < 1:
            raise UserError(f"model.max_length={max_length} leaves no room for words")
        # (verbose=False: a sentence longer than the model's window is cut into windows below, not run whole, so
        # transformers' "will result in indexing errors" warning would be wrong)
        encoded = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False,
                            verbose=False)  # fmt: skip
        self.pieces: list[list[list[Piece]]] = []
        for i, words in enumerate(sentences):
            pieces = _word_pieces(encoded.word_ids(i), encoded["input_ids"][i], len(words), tokenizer.unk_token_id)
            types = [word_shape(word) if casing else 0 for word in words]
            # (a pathological word keeps its first sub-tokens)
            self.pieces.append([[(t, k) for t in p[: self.budget]] for p, k in zip(pieces, types, strict=True)])
        self.tags, self.label2id, self.label_all, self.casing = tags, label2id, label_all, casing

    def span(self, i: int, start: int, end: int, offset: int) -> tuple[list[Piece], list[int], list[int]]:
        """Sub-tokens, their labels and each word's first position (counted from ``offset``) of words
        ``start .. end`` of sentence ``i``."""
        word_labels = [self.label2id[t] for t in self.tags[i]] if self.tags is not None else None
        tokens: list[Piece] = []
        labels: list[int] = []
        starts: list[int] = []
        for w in range(start, end):
            starts.append(offset + len(tokens))
            tokens.extend(self.pieces[i][w])
            first = word_labels[w] if word_labels is not None else IGNORE
            rest = IGNORE
            if self.label_all and word_labels is not None:
                rest = self.label2id.get(_inside(self.tags[i][w]), first)
            labels.extend([first] + [rest] * (len(self.pieces[i][w]) - 1))
        return tokens, labels, starts

    def window(self, i: int, start: int, tokens: list[Piece], labels: list[int], starts: list[int]) -> Window:
        """``tokens`` between CLS and SEP (the specials unlabelled, of type 0)."""
        ids = [self.cls_id, *(t for t, _ in tokens), self.sep_id]
        types = [0, *(k for _, k in tokens), 0] if self.casing else None
        return Window(i, start, ids, [IGNORE, *labels, IGNORE], starts, types)


def _context(
    pieces: Sequence[Sequence[list[P]]], documents: Sequence[int | None], i: int, room: int
) -> tuple[list[P], list[P]]:
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
    sides: list[list[list[P]]] = [[], []]
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
    windows: Sequence[Window], window_values: Sequence[np.ndarray], n_words: Sequence[int]
) -> list[np.ndarray]:
    """Merge per-window word values (a row per word: label ids, or label probabilities) into per-sentence arrays.

    A word covered by several windows takes the value of the window where it is furthest from the window's
    edge; ties go to the earlier window.
    """
    trailing = window_values[0].shape[1:] if len(window_values) else ()
    dtype = window_values[0].dtype if len(window_values) else np.float32
    merged = [np.zeros((n, *trailing), dtype=dtype) for n in n_words]
    margin = [np.full(n, -1, dtype=np.int64) for n in n_words]
    for window, values in zip(windows, window_values, strict=True):
        s, k = window.sentence, window.n_words
        for j in range(k):
            w = window.first_word + j
            m = min(j, k - 1 - j)
            if m > margin[s][w]:
                margin[s][w], merged[s][w] = m, values[j]
    return merged
