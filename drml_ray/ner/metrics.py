"""NER scores: seqeval entity-level (strict IOB2) and the classic token-level report.

Both reports share one shape (fractions in [0, 1])::

    {"micro": {"precision", "recall", "f1", "support"}, "macro": {...}, "weighted": {...},
     "per_type" | "per_tag": {NAME: {...}}}

The entity report is what the NER community quotes (CoNLL micro F1). The token report is the
per-tag table over every word-level tag, ``O`` included, as ``classification_report`` prints it:
its ``micro`` support is the number of words in the split (46,435 on CoNLL-2003 test), and its
micro precision = recall = F1 = token accuracy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

Score = dict[str, float]
Report = dict[str, object]


def _prf(tp: int, n_pred: int, n_true: int) -> Score:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_true}


def _averages(per_class: dict[str, Score], micro: Score) -> Report:
    total = sum(s["support"] for s in per_class.values())
    keys = ("precision", "recall", "f1")
    macro = {k: sum(s[k] for s in per_class.values()) / len(per_class) if per_class else 0.0 for k in keys}
    weighted = {k: sum(s[k] * s["support"] for s in per_class.values()) / total if total else 0.0 for k in keys}
    return {"micro": micro, "macro": macro | {"support": total}, "weighted": weighted | {"support": total}}


def strict_entities(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """``(start, end, type)`` of each entity under strict IOB2, as seqeval's strict mode reads them: a ``B-X``
    opens one, ``I-X`` continues only an ``X``; an ``I-`` that continues nothing is no entity.

    >>> sorted(strict_entities(["B-PER", "I-PER", "I-LOC", "I-LOC", "B-LOC", "O", "B-ORG", "B-ORG", "I-ORG"]))
    [(0, 2, 'PER'), (4, 5, 'LOC'), (6, 7, 'ORG'), (7, 9, 'ORG')]
    """
    entities: set[tuple[int, int, str]] = set()
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        if kind and tag == f"I-{kind}":
            continue
        if kind:
            entities.add((start, i, kind))
        start, kind = (i, tag[2:]) if tag.startswith("B-") else (-1, "")
    return entities


def entity_micro(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> Score:
    """The micro row of :func:`entity_report` in plain Python: what training scores dev with at every
    evaluation, without importing seqeval (and scikit-learn, scipy) into every worker."""
    true = {(s, *e) for s, tags in enumerate(y_true) for e in strict_entities(tags)}
    pred = {(s, *e) for s, tags in enumerate(y_pred) for e in strict_entities(tags)}
    return _prf(len(true & pred), len(pred), len(true))


def entity_report(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> Report:
    """seqeval's strict IOB2 entity report (an ``I-X`` without its ``B-X`` is not an entity)."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    raw = classification_report(
        [list(s) for s in y_true], [list(s) for s in y_pred], mode="strict", scheme=IOB2, output_dict=True,
        zero_division=0,
    )  # fmt: skip
    rename = {"micro avg": "micro", "macro avg": "macro", "weighted avg": "weighted"}
    report: Report = {"per_type": {}}
    for name, row in raw.items():
        score = {k: float(row[k]) for k in ("precision", "recall", "f1-score")}
        score = {"precision": score["precision"], "recall": score["recall"], "f1": score["f1-score"]}
        score["support"] = int(row["support"])
        if name in rename:
            report[rename[name]] = score
        else:
            report["per_type"][name] = score  # type: ignore[index]
    return report


def token_report(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> Report:
    """Per-tag precision/recall/F1/support over all words (``O`` included) and their averages."""
    true_counts: Counter[str] = Counter()
    pred_counts: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for t_sent, p_sent in zip(y_true, y_pred, strict=True):
        for t, p in zip(t_sent, p_sent, strict=True):
            true_counts[t] += 1
            pred_counts[p] += 1
            hits[t] += t == p
    tags = sorted(set(true_counts) | set(pred_counts), key=lambda tag: (tag == "O", tag[2:], tag))
    per_tag = {tag: _prf(hits[tag], pred_counts[tag], true_counts[tag]) for tag in tags}
    n = sum(true_counts.values())
    micro = _prf(sum(hits.values()), n, n)
    return {**_averages(per_tag, micro), "per_tag": per_tag}


def format_report(report: Report, title: str, kind: str) -> str:
    """A fixed-width table like ``classification_report``: one row per type/tag, then the averages."""
    rows = report["per_type" if kind == "entity" else "per_tag"]
    names = list(rows) + ["micro avg", "macro avg", "weighted avg"]  # type: ignore[arg-type]
    width = max(12, *(len(n) for n in names))
    lines = [title, f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}", ""]

    def row(name: str, s: Score) -> str:
        return f"{name:>{width}} {s['precision']:9.4f} {s['recall']:9.4f} {s['f1']:9.4f} {int(s['support']):9d}"

    lines += [row(n, s) for n, s in rows.items()]  # type: ignore[union-attr]
    lines.append("")
    lines += [row(f"{avg} avg", report[avg]) for avg in ("micro", "macro", "weighted")]  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


def score_split(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> dict[str, Report]:
    """Both reports for one split: ``{"entity": ..., "token": ...}``."""
    return {"entity": entity_report(y_true, y_pred), "token": token_report(y_true, y_pred)}


def format_split(scores: dict[str, Report], split: str) -> str:
    """The text report of one split: the entity table, then the token table."""
    return (
        format_report(scores["entity"], f"== {split}: entity level (seqeval, strict IOB2) ==", "entity")
        + "\n"
        + format_report(scores["token"], f"== {split}: token level (all word-level tags, O included) ==", "token")
    )
