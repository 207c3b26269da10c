"""``drml data inspect FILE``: what a corpus file holds, the tag scheme it follows, and what looks wrong.

Reads IOB tags as written (no IOB1 conversion; BIOES-style tags are read as IOB2, as training reads them, and
said so), so an IOB1 file handed in as IOB2 shows up: in IOB2 every
entity starts with ``B-``; an ``I-X`` that does not continue an ``X`` entity is how IOB1 starts one, and
read as IOB2 it would be dropped from the gold standard by seqeval's strict scoring.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from drml_ray.data.conll import Sentence
from drml_ray.data.formats import table_files, table_format
from drml_ray.data.reader import Columns, read_corpus_file
from drml_ray.data.tags import reading_noted, split_tag
from drml_ray.text import counted

LONG_SENTENCE = 512
"""Words in a sentence past which it surely spans several windows (worth a look)."""


@dataclass
class Inspection:
    path: str
    sentences: int = 0
    tokens: int = 0
    documents: int = 0
    """Documents marked by ``-DOCSTART-`` lines (0: none marked; ``data.context`` then adds nothing)."""
    entities: Counter = field(default_factory=Counter)
    """Entities per type, counted as IOB2 would read them (a ``B-`` or an ``I-`` that starts one)."""
    iob1_starts: int = 0
    """Entities that start with ``I-`` (IOB1 style)."""
    fresh_b_starts: int = 0
    """Entities that start with ``B-`` right after an ``O`` or another type (IOB2 style: IOB1 never does)."""
    problems: list[str] = field(default_factory=list)
    written_as: list[str] = field(default_factory=list)
    """The schemes other than IOB the file's tags were written in, read as IOB2 (IO, untyped, BIOES-style)."""

    @property
    def scheme(self) -> str:
        if self.written_as:
            return f"{' and '.join(self.written_as)}, read as IOB2"
        if not self.iob1_starts:
            return "IOB2 (every entity starts with B-)"
        if not self.fresh_b_starts:
            return "IOB1 (entities start with I-, B- only right after one of the same type)"
        return (f"mixed: {self.iob1_starts:,} entities start with I- (IOB1) and {self.fresh_b_starts:,} with B- "
                "after O (IOB2); training reads it as IOB1, where both start an entity (data.scheme: iob2 would drop "
                "the I- ones from the gold standard)")  # fmt: skip


def inspect_sentences(path: str | os.PathLike[str], sentences: list[Sentence]) -> Inspection:
    report = Inspection(str(path), sentences=len(sentences), tokens=sum(len(s.tokens) for s in sentences),
                        documents=len({s.doc for s in sentences} - {None}))  # fmt: skip
    longest = max(sentences, key=lambda s: len(s.tokens))
    for sentence in sentences:
        previous: str | None = None
        for tag in sentence.tags:
            prefix, kind = split_tag(tag)
            if kind is not None and (prefix == "B" or kind != previous):
                report.entities[kind] += 1
                report.fresh_b_starts += prefix == "B" and kind != previous
                report.iob1_starts += prefix == "I"
            previous = kind
    if len(longest.tokens) > LONG_SENTENCE:
        report.problems.append(f"a sentence of {len(longest.tokens):,} words (starting {longest.tokens[:3]})")
    if not report.entities:
        report.problems.append("no entities at all: every tag is O")
    blank = [(i, j) for i, s in enumerate(sentences, 1) for j, token in enumerate(s.tokens, 1) if not token.strip()]
    if blank:
        report.problems.append(f"{counted(len(blank), 'blank word')}, empty or only spaces (the first: sentence "
                               f"{blank[0][0]:,}, word {blank[0][1]}; a blank word column?): the model reads each "
                               "as its unknown token")  # fmt: skip
    report.problems += lookalike_types(report.entities)
    return report


def lookalike_types(types: Iterable[str]) -> list[str]:
    """Entity types a reader cannot tell apart: one holding an invisible character, two differing only in case
    or in such characters (each is a label of its own to the model).

    >>> for problem in lookalike_types(["PER", "Per", "LOC", "LOC\\u200b"]):
    ...     print(problem)
    types 'LOC', 'LOC\\u200b' differ only in case or invisible characters
    types 'PER', 'Per' differ only in case or invisible characters
    type 'LOC\\u200b' holds an invisible character
    """
    groups: dict[str, list[str]] = {}
    for kind in sorted(types):
        groups.setdefault("".join(c for c in kind if c.isprintable()).casefold(), []).append(kind)
    alike = [f"types {', '.join(map(repr, group))} differ only in case or invisible characters"
             for group in groups.values() if len(group) > 1]  # fmt: skip
    return alike + [f"type {kind!r} holds an invisible character" for kind in sorted(types) if not kind.isprintable()]


def inspect_file(path: str | os.PathLike[str], columns: Columns | None = None) -> Inspection:
    """Read ``path`` (CoNLL columns or Parquet, ``columns`` as :func:`read_corpus_file` takes them; malformed
    lines raise with file and line) and inspect it."""
    with reading_noted() as notes:
        sentences = read_corpus_file(path, scheme="iob2", columns=columns)
    report = inspect_sentences(path, sentences)
    return replace(report, written_as=notes.schemes, problems=[*notes.problems, *report.problems])


def format_inspection(report: Inspection) -> str:
    kind = table_format(report.path) or ("CoNLL columns" if Path(report.path).is_file() else "generated")
    if Path(report.path).is_dir():
        kind = "Arrow files" if any(table_format(f) == "Arrow" for f in table_files(report.path)) else "Parquet files"
    documents = f", documents {report.documents:,}" if report.documents else ", no documents marked"
    lines = [f"{report.path} ({kind})", f"  sentences {report.sentences:,}, tokens {report.tokens:,}{documents}",
             f"  tag scheme: {report.scheme}", "  entities per type:"]  # fmt: skip
    shown = {kind: kind if kind.isprintable() else repr(kind) for kind in report.entities}
    lines += [f"    {shown[kind]:24} {n:,}" for kind, n in sorted(report.entities.items())]
    problems = [f"    - {p}" for p in report.problems] or ["    none found"]
    return "\n".join([*lines, "  problems:", *problems])
