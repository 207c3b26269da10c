from __future__ import annotations

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from drml_ray.ner.metrics import entity_report, format_split, score_split, token_report

Y_TRUE = [["B-PER", "I-PER", "O"], ["B-LOC", "O"]]
Y_PRED = [["B-PER", "O", "O"], ["B-LOC", "B-LOC"]]


def test_token_report_hand_computed():
    r = token_report(Y_TRUE, Y_PRED)
    tags = r["per_tag"]
    assert list(tags) == ["B-LOC", "B-PER", "I-PER", "O"]
    assert tags["B-PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert tags["I-PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert tags["B-LOC"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert tags["O"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    # micro over all tags = token accuracy (3 of 5); its support is the number of words.
    assert r["micro"] == pytest.approx({"precision": 0.6, "recall": 0.6, "f1": 0.6, "support": 5})
    assert r["macro"] == pytest.approx({"precision": 0.5, "recall": 0.625, "f1": (1 + 2 / 3 + 0.5) / 4, "support": 5})
    assert r["weighted"] == pytest.approx(
        {"precision": 2.5 / 5, "recall": 3 / 5, "f1": (1 + 2 / 3 + 1) / 5, "support": 5}
    )


def test_entity_report_hand_computed_and_matches_seqeval():
    # Third sentence: a lone I-PER is not an entity in strict IOB2.
    y_true = Y_TRUE + [["O", "B-PER"]]
    y_pred = Y_PRED + [["O", "I-PER"]]
    r = entity_report(y_true, y_pred)
    assert r["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert r["per_type"]["LOC"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    # micro: 1 correct of 3 predicted (PER[0,0], LOC, LOC) and 3 true entities.
    assert r["micro"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3, "support": 3})
    strict = {"mode": "strict", "scheme": IOB2}
    assert r["micro"]["f1"] == pytest.approx(f1_score(y_true, y_pred, **strict))
    assert r["micro"]["precision"] == pytest.approx(precision_score(y_true, y_pred, **strict))
    assert r["micro"]["recall"] == pytest.approx(recall_score(y_true, y_pred, **strict))
    assert r["macro"]["f1"] == pytest.approx((0 + 2 / 3) / 2)


def test_text_report_prints_both_tables():
    text = format_split(score_split(Y_TRUE, Y_PRED), "test")
    assert "entity level" in text and "token level" in text
    assert "   micro avg    0.6000    0.6000    0.6000         5" in text


def test_plain_entity_micro_equals_seqeval_strict_on_random_tags():
    import random

    from drml_ray.ner.metrics import entity_micro

    rng, tags = random.Random(7), ["O", "B-A", "I-A", "B-B", "I-B"]
    for _ in range(200):
        y_true = [[rng.choice(tags) for _ in range(rng.randint(1, 9))] for _ in range(rng.randint(1, 5))]
        y_pred = [[rng.choice(tags) for _ in sentence] for sentence in y_true]
        assert entity_micro(y_true, y_pred) == pytest.approx(entity_report(y_true, y_pred)["micro"])
