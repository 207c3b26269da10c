"""Constrained IOB2 decoding against brute force, and through the window merge."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from drml_ray.ner.decoding import allowed_transitions, decoder
from drml_ray.ner.features import Window
from drml_ray.ner.inference import merge_outputs
from drml_ray.ner.metrics import strict_entities

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def valid(tags: list[str]) -> bool:
    """An ``I-X`` only after ``B-X`` or ``I-X``."""
    return all(
        not t.startswith("I-") or prev in (f"B-{t[2:]}", t) for prev, t in zip(["O", *tags[:-1]], tags, strict=True)
    )


def test_viterbi_finds_the_most_probable_valid_sequence():
    rng = np.random.default_rng(0)
    decode = decoder(LABELS, "constrained")
    for _ in range(50):
        probs = rng.dirichlet(np.full(len(LABELS), 0.3), size=4)
        ids, chosen = decode(probs)
        best = max((seq for seq in itertools.product(range(len(LABELS)), repeat=4)
                    if valid([LABELS[i] for i in seq])),
                   key=lambda seq: np.prod([probs[w, i] for w, i in enumerate(seq)]))  # fmt: skip
        assert ids.tolist() == list(best)
        assert chosen.tolist() == pytest.approx([probs[w, i] for w, i in enumerate(best)])


def test_an_inside_tag_without_its_begin_label_is_left_free():
    start, follows = allowed_transitions(["O", "I-MISC", "B-PER", "I-PER"])  # (an IOB1 label set)
    assert start.tolist() == [True, True, True, False] and follows[:, 1].all()


def test_merged_windows_are_decoded_per_sentence():
    # One sentence of 5 words in two windows (words 0-2 and 2-4); word 2 is taken from the first (a tie).
    o = [1.0, 0, 0, 0, 0]
    w2, w3 = [0.3, 0.2, 0.5, 0, 0], [0.3, 0, 0.7, 0, 0]  # argmax: I-PER I-PER, which strict scoring reads as nothing
    outputs = {0: np.array([o, o, w2]), 1: np.array([o, w3, o])}
    id2label = dict(enumerate(LABELS))
    [argmax], _ = merge_outputs(windows := [Window(0, 0, [], [], [1, 2, 3]), Window(0, 2, [], [], [1, 2, 3])],
                                outputs, [5], id2label, "argmax")  # fmt: skip
    assert argmax == ["O", "O", "I-PER", "I-PER", "O"] and not strict_entities(argmax)
    # Valid readings of words 2-3: O O (0.3 * 0.3 = .09) or B-PER I-PER (0.2 * 0.7 = .14).
    [fixed], [scores] = merge_outputs(windows, outputs, [5], id2label)  # (the default)
    assert fixed == ["O", "O", "B-PER", "I-PER", "O"] and scores == pytest.approx([1, 1, 0.2, 0.7, 1])


def test_progress_in_a_log_file_is_a_line_a_tenth_not_a_bar(capsys):
    from drml_ray.ner.inference import with_progress

    assert list(with_progress([[0]] * 25, "predicting")) == [[0]] * 25
    lines = capsys.readouterr().err.splitlines()  # (pytest's stderr is no terminal: a log file's case)
    assert [line.split(" batches")[0] for line in lines] == [f"[drml] predicting: {n} of 25" for n in
                                                             (3, 5, 8, 10, 13, 15, 18, 20, 23)]  # fmt: skip
    assert list(with_progress([[0]] * 19, "predicting")) and capsys.readouterr().err == ""  # (short: no lines)
