"""A fine-tuning run's part of ``drml report``: the scores of ``best/``, the training curves, the entity types and
the test sentences with the most errors, read from ``results.json`` and ``predictions_test.jsonl``.

Both files are checked against the fields the report reads (:func:`~drml_ray.runtime.rundir.check_json`): a file
edited by hand is a :class:`UserError` naming the field, not a ``KeyError`` deep in a plot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NotRequired

from typing_extensions import TypedDict

from drml_ray.errors import first_line
from drml_ray.runtime.rundir import check_json, damaged, read_json

PREDICTIONS = "predictions_test.jsonl"
"""Tokens, gold and predicted tags of each test sentence: what ``drml report`` draws its error analysis from."""


class Micro(TypedDict):
    f1: float
    precision: float
    recall: float


class TypeScore(TypedDict):
    f1: float


class EntityScores(TypedDict):
    micro: Micro
    per_type: dict[str, TypeScore]


class SplitScores(TypedDict):
    entity: EntityScores


class Evaluation(TypedDict):
    epoch: float
    dev_f1: float
    train_loss: float
    test_f1: NotRequired[float]


class Results(TypedDict, total=False):
    """What the report reads of ``results.json`` (a search's holds the best trial's scores and no ``history``)."""

    dev: SplitScores
    test: SplitScores
    history: list[Evaluation]


class Prediction(TypedDict):
    tokens: list[str]
    gold: list[str]
    pred: list[str]


def report_sections(run_dir: Path) -> list[Any]:
    """Scores of ``best/``, training curves and the dev/test reports of a finished run (or search)."""
    from drml_ray.report.build import Section, curves_png

    results_path = run_dir / "results.json"
    if not results_path.exists():
        return []
    results = read_json(results_path, schema=Results)
    columns = {"entity F1": "f1", "precision": "precision", "recall": "recall"}
    summary = [{"split": split, **{c: f"{results[split]['entity']['micro'][k]:.4f}" for c, k in columns.items()}}
               for split in ("dev", "test") if split in results]  # fmt: skip
    sections = [Section("Scores of the best model (entity level, seqeval strict IOB2)", table=summary)]
    if results.get("history"):
        figure = curves_png(results["history"], run_dir / "report_curves.png")
        sections.append(Section("Training curves", figure=figure))
    if "dev" in results and "test" in results:
        sections += error_sections(results, run_dir)
    for split in ("dev", "test"):
        path = run_dir / f"report_{split}.txt"
        if path.exists():
            sections.append(Section(f"{split} reports", text=path.read_text(encoding="utf-8")))
    return sections


def error_sections(results: dict[str, Any], run_dir: Path) -> list[Any]:
    """Per-type F1 bars; from ``predictions_test.jsonl`` (runs since it was written), the confusion of entity
    types and the test sentences with the most errors."""
    from drml_ray.report import ner_errors as errors
    from drml_ray.report.build import Section

    sections = [Section("Entity F1 per type", figure=errors.per_type_png(results, run_dir / "report_types.png"))]
    if not (run_dir / PREDICTIONS).exists():
        return sections
    rows = read_predictions(run_dir / PREDICTIONS)
    counts = errors.confusion([r["gold"] for r in rows], [r["pred"] for r in rows])
    sections.append(Section("Test entities: type confusion, missed and spurious",
                            figure=errors.confusion_png(counts, run_dir / "report_confusion.png")))  # fmt: skip
    worst = errors.worst_sentences(rows, k=10)
    title = f"The {len(worst)} test sentences with the most errors (wrong entities outlined)"
    sections.append(Section(title, html=errors.worst_html(worst), markdown=errors.worst_markdown(worst)))
    return sections


def read_predictions(path: Path) -> list[Prediction]:
    """``predictions_test.jsonl``'s rows, each checked: a JSON object with as many gold and predicted tags as
    tokens; a line that is not is a :class:`~drml_ray.errors.UserError` naming it."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = check_json(json.loads(line), Prediction, where)
        except ValueError as err:  # (not JSON)
            raise damaged(where, first_line(err)) from None
        if not len(row["tokens"]) == len(row["gold"]) == len(row["pred"]):
            counts = f"{len(row['tokens'])} tokens, {len(row['gold'])} gold and {len(row['pred'])} predicted tags"
            raise damaged(where, counts)
        rows.append(row)
    return rows
