"""The report's error analysis on hand-made sentences: spans, the type confusion, the worst sentences."""

from __future__ import annotations

from drml_ray.report.ner_errors import (
    MISSED,
    SPURIOUS,
    confusion,
    entity_spans,
    error_count,
    highlight_html,
    highlight_markdown,
    worst_sentences,
)

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"], ["O", "O"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "O", "B-PER"], ["B-LOC", "O"]]


def test_spans_are_seqevals_strict_entities():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == [(0, 2, "PER"), (3, 4, "LOC")]
    assert entity_spans(["I-PER", "O"]) == []  # strict IOB2: an I- without its B- is no entity


def test_confusion_counts_types_missed_and_spurious_by_hand():
    # sentence 1: PER right, LOC predicted as ORG; sentence 2: ORG missed, PER right; sentence 3: a spurious LOC
    assert confusion(GOLD, PRED) == {("PER", "PER"): 2, ("LOC", "ORG"): 1, ("ORG", MISSED): 1, (SPURIOUS, "LOC"): 1}


def test_a_boundary_error_is_one_missed_and_one_spurious():
    gold, pred = [["B-PER", "I-PER"]], [["B-PER", "O"]]
    assert confusion(gold, pred) == {("PER", MISSED): 1, (SPURIOUS, "PER"): 1}
    assert error_count(gold[0], pred[0]) == 2


def test_worst_sentences_come_most_errors_first_and_skip_perfect_ones():
    rows = [{"tokens": ["a"] * len(g), "gold": g, "pred": p} for g, p in zip(GOLD, PRED, strict=True)]
    rows.append({"tokens": ["x"], "gold": ["B-PER"], "pred": ["B-PER"]})
    assert [(w["errors"], w["gold"]) for w in worst_sentences(rows, k=5)] == [(2, GOLD[0]), (1, GOLD[1]), (1, GOLD[2])]


def test_highlights_wrap_each_entity_with_its_type_and_escape_the_text():
    tokens = ["Angela", "Merkel", "<visited>", "Paris"]
    page = highlight_html(tokens, [(0, 2, "PER"), (3, 4, "LOC")], wrong={(3, 4, "LOC")})
    assert page.count('<mark class="ent') == 2 and "&lt;visited&gt;" in page
    assert '<mark class="ent wrong" style="background:#ff9561">Paris<span class="lbl">LOC</span></mark>' in page
    assert highlight_markdown(tokens, [(0, 2, "PER")]) == "[Angela Merkel]{PER} <visited> Paris"


def test_figures_are_written(tmp_path):
    from drml_ray.report.ner_errors import confusion_png, per_type_png

    scores = {"entity": {"per_type": {"PER": {"f1": 0.5}, "LOC": {"f1": 1.0}}}}
    assert per_type_png({"dev": scores, "test": scores}, tmp_path / "t.png").stat().st_size > 1000
    png = confusion_png(confusion(GOLD, PRED), tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
