"""The pictures of a fine-tuning run's report: per-type F1 bars, a confusion matrix of entity types with missed
and spurious entities, and the test sentences with the most errors, highlighted inline as displaCy does.

Entities are seqeval's strict IOB2 entities (the ones entity F1 counts). A gold entity is matched with the
predicted entity of exactly the same words: same type, a type confusion, or missed when none has those
words; a predicted entity that no gold entity has the words of is spurious.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from seqeval.scheme import IOB2, Entities

MISSED, SPURIOUS = "(missed)", "(spurious)"
PALETTE = {"PER": "#aa9cfc", "ORG": "#7aecec", "LOC": "#ff9561", "MISC": "#ffeb80"}
OTHER_COLOURS = ["#bfeeb7", "#feca74", "#c887fb", "#9cc9cc", "#e4e7d2", "#ffcce5", "#bfe1d9", "#f0d0ff"]

Span = tuple[int, int, str]
"""An entity: first word, one past the last word, type."""


def entity_spans(tags: Sequence[str]) -> list[Span]:
    """Strict IOB2 entities: ``["B-PER", "I-PER", "O", "B-LOC"]`` -> ``[(0, 2, "PER"), (3, 4, "LOC")]``."""
    found = Entities([list(tags)], IOB2).entities[0]
    return [(e.start, e.end, e.tag) for e in found]


def confusion(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Counter[tuple[str, str]]:
    """(gold type or SPURIOUS, predicted type or MISSED) -> how many entities, over every sentence."""
    counts: Counter[tuple[str, str]] = Counter()
    for gold_tags, pred_tags in zip(gold, pred, strict=True):
        truth = {(s, e): t for s, e, t in entity_spans(gold_tags)}
        guess = {(s, e): t for s, e, t in entity_spans(pred_tags)}
        counts.update((kind, guess.get(words, MISSED)) for words, kind in truth.items())
        counts.update((SPURIOUS, kind) for words, kind in guess.items() if words not in truth)
    return counts


def error_count(gold_tags: Sequence[str], pred_tags: Sequence[str]) -> int:
    """Gold entities not predicted exactly plus predicted entities not in the gold standard."""
    truth, guess = set(entity_spans(gold_tags)), set(entity_spans(pred_tags))
    return len(truth - guess) + len(guess - truth)


def colour(kind: str) -> str:
    return PALETTE.get(kind) or OTHER_COLOURS[sum(map(ord, kind)) % len(OTHER_COLOURS)]


def highlight_html(tokens: Sequence[str], spans: Sequence[Span], wrong: AbstractSet[Span] = frozenset()) -> str:
    """The sentence with each entity in a coloured ``<mark class="ent">`` and its type; ``wrong`` ones outlined."""
    starts = {s: (s, e, t) for s, e, t in spans}
    parts, i = [], 0
    while i < len(tokens):
        if i in starts:
            span = starts[i]
            words = html.escape(" ".join(tokens[span[0] : span[1]]))
            css = "ent wrong" if span in wrong else "ent"
            parts.append(f'<mark class="{css}" style="background:{colour(span[2])}">{words}'
                         f'<span class="lbl">{html.escape(span[2])}</span></mark>')  # fmt: skip
            i = span[1]
        else:
            parts.append(html.escape(tokens[i]))
            i += 1
    return " ".join(parts)


def highlight_markdown(tokens: Sequence[str], spans: Sequence[Span]) -> str:
    """``[Angela Merkel]{PER} visited [Paris]{LOC}``."""
    out = list(tokens)
    for start, end, kind in sorted(spans, reverse=True):
        out[start:end] = [f"[{' '.join(tokens[start:end])}]{{{kind}}}"]
    return " ".join(out)


def worst_sentences(rows: Sequence[dict[str, Any]], k: int = 10) -> list[dict[str, Any]]:
    """The ``k`` sentences with the most errors (ties: corpus order), each with its error count."""
    scored = [(error_count(r["gold"], r["pred"]), i) for i, r in enumerate(rows)]
    top = sorted((pair for pair in scored if pair[0] > 0), key=lambda pair: (-pair[0], pair[1]))[:k]
    return [{**rows[i], "errors": n} for n, i in top]


def worst_html(worst: Sequence[dict[str, Any]]) -> str:
    """Gold and predicted entities of each sentence, one above the other; predictions that are wrong outlined."""
    blocks = []
    for row in worst:
        gold, pred = entity_spans(row["gold"]), entity_spans(row["pred"])
        truth = highlight_html(row["tokens"], gold, set(gold) - set(pred))
        guess = highlight_html(row["tokens"], pred, set(pred) - set(gold))
        blocks.append(f'<div class="sent"><div class="errs">{row["errors"]} errors</div>'
                      f"<div><b>gold</b> {truth}</div><div><b>predicted</b> {guess}</div></div>")  # fmt: skip
    return "\n".join(blocks)


def worst_markdown(worst: Sequence[dict[str, Any]]) -> str:
    lines = []
    for row in worst:
        truth = highlight_markdown(row["tokens"], entity_spans(row["gold"]))
        guess = highlight_markdown(row["tokens"], entity_spans(row["pred"]))
        lines.append(f"- {row['errors']} errors\n  - gold: {truth}\n  - predicted: {guess}")
    return "\n".join(lines)


def per_type_png(scores: dict[str, Any], path: Path) -> Path:
    """Entity F1 per type, a bar for each split of ``scores`` (split: its scores) side by side."""
    from drml_ray.report.build import save_figure, subplots

    splits = list(scores)
    types = sorted({kind for split in splits for kind in scores[split]["entity"]["per_type"]})
    fig, ax = subplots(figsize=(max(5, 1.1 * len(types) + 2), 3.8), dpi=110)
    width = 0.8 / len(splits)
    for i, split in enumerate(splits):
        per_type, offset = scores[split]["entity"]["per_type"], (i - (len(splits) - 1) / 2) * width
        ax.bar([n + offset for n in range(len(types))], [per_type.get(t, {}).get("f1", 0) for t in types],
               width=width, label=split, color=SPLIT_COLOURS[split])  # fmt: skip
    ax.set_xticks(range(len(types)), types, rotation=30 if len(types) > 6 else 0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("entity F1")
    ax.set_title("entity F1 per type")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


SPLIT_COLOURS = {"train": "tab:green", "dev": "tab:blue", "test": "tab:orange"}


def confusion_png(counts: Counter[tuple[str, str]], path: Path, split: str = "test") -> Path:
    """Gold types (rows, then spurious) against predicted types (columns, then missed), counts written in."""
    import numpy as np

    from drml_ray.report.build import save_figure, subplots

    types = sorted({g for g, _ in counts} | {p for _, p in counts} - {MISSED, SPURIOUS})
    rows, cols = [*types, SPURIOUS], [*types, MISSED]
    grid = np.array([[counts.get((r, c), 0) for c in cols] for r in rows])
    fig, ax = subplots(figsize=(1.0 * len(cols) + 2.5, 0.8 * len(rows) + 1.8), dpi=110)
    shares = grid / np.maximum(grid.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for r in range(len(rows)):
        for c in range(len(cols)):
            ax.text(c, r, str(grid[r, c]), ha="center", va="center", color="white" if shares[r, c] > 0.6 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=30)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{split} entities: gold type against predicted type")
    return save_figure(fig, path)
