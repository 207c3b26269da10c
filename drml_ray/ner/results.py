"""A fine-tuning run's part of ``drml report``: the scores of ``best/``, the training curves, the entity types and
the test sentences with the most errors, read from ``results.json`` and ``predictions_test.jsonl``; and the report of
an evaluation's folder (``drml evaluate``: ``eval_<split>.json``, ``predictions_<split>.jsonl``).

Both files are checked against the fields the report reads (:func:`~drml_ray.runtime.runfiles.check_json`): a file
edited by hand is a :class:`UserError` naming the field, not a ``KeyError`` deep in a plot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NotRequired

from typing_extensions import TypedDict

from drml_ray.data.conll import Sentence
from drml_ray.errors import first_line
from drml_ray.runtime.runfiles import atomic_write_text, check_json, damaged, read_json
from drml_ray.text import json_line

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
    summary = [{"split": split, **micro_columns(results[split])} for split in ("dev", "test") if split in results]
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


def micro_columns(scores: SplitScores) -> dict[str, str]:
    """A split's entity F1, precision and recall as a report's table shows them."""
    micro = scores["entity"]["micro"]
    return {"entity F1": f"{micro['f1']:.4f}", "precision": f"{micro['precision']:.4f}",
            "recall": f"{micro['recall']:.4f}"}  # fmt: skip


class Evaluated(TypedDict):
    """What the report reads of ``eval_<split>.json`` (``drml evaluate``) beside the split's scores."""

    model: str
    data: str
    decoding: str


def evaluation_report(folder: Path) -> tuple[str, list[Any]]:
    """The title and sections of ``drml report`` on the folder of ``drml evaluate``: scores of each split it
    scored, F1 per type, and (evaluations since they were written) the type confusion and the worst sentences."""
    from drml_ray.report import ner_errors as errors
    from drml_ray.report.build import Section

    scored, rows = {}, []
    for split in ("train", "dev", "test"):
        path = folder / f"eval_{split}.json"
        if path.exists():
            record = read_json(path, schema=Evaluated)
            scored[split] = check_json(record.get(split), SplitScores, path, split)
            rows.append({"split": split, "model": record["model"], "data": record["data"],
                         **micro_columns(scored[split]), "decoding": record["decoding"]})  # fmt: skip
    sections = [
        Section("Scores (entity level, seqeval strict IOB2)", table=rows),
        Section("Entity F1 per type", figure=errors.per_type_png(scored, folder / "report_types.png")),
    ]
    for split in scored:
        sections += mistake_sections(folder, split)
    for split in scored:
        if (folder / f"report_{split}.txt").exists():
            sections.append(Section(f"{split} reports", text=(folder / f"report_{split}.txt").read_text("utf-8")))
    return f"drml evaluate: {folder.name}", sections


def error_sections(results: dict[str, Any], run_dir: Path) -> list[Any]:
    """Per-type F1 bars; from ``predictions_test.jsonl`` (runs since it was written), the confusion of entity
    types and the test sentences with the most errors."""
    from drml_ray.report import ner_errors as errors
    from drml_ray.report.build import Section

    scores = {split: results[split] for split in ("dev", "test")}
    sections = [Section("Entity F1 per type", figure=errors.per_type_png(scores, run_dir / "report_types.png"))]
    return sections + mistake_sections(run_dir, "test")


def mistake_sections(run_dir: Path, split: str) -> list[Any]:
    """The confusion of entity types and the 10 sentences with the most errors, from ``predictions_<split>.jsonl``
    in ``run_dir`` (none where it is not there)."""
    from drml_ray.report import ner_errors as errors
    from drml_ray.report.build import Section

    path = run_dir / f"predictions_{split}.jsonl"
    if not path.exists():
        return []
    rows = read_predictions(path)
    counts = errors.confusion([r["gold"] for r in rows], [r["pred"] for r in rows])
    figure = errors.confusion_png(counts, run_dir / f"report_confusion{'' if split == 'test' else '_' + split}.png",
                                  split)  # fmt: skip
    worst = errors.worst_sentences(rows, k=10)
    title = f"The {len(worst)} {split} sentences with the most errors (wrong entities outlined)"
    return [Section(f"{split.capitalize()} entities: type confusion, missed and spurious", figure=figure),
            Section(title, html=errors.worst_html(worst), markdown=errors.worst_markdown(worst))]  # fmt: skip


def write_predictions(path: Path, sentences: Sequence[Sentence], pred: Sequence[Sequence[str]]) -> None:
    """Each sentence's tokens, gold and predicted tags, a JSON line each (what :func:`read_predictions` reads)."""
    rows = [{"tokens": s.tokens, "gold": s.tags, "pred": p} for s, p in zip(sentences, pred, strict=True)]
    atomic_write_text(path, "".join(json_line(r) + "\n" for r in rows))


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
