"""Tag schemes: IOB2 (what everything inside drml-ray uses: every entity starts with ``B-``), IOB1 (``I-``
starts an entity unless it continues one of the same type: CoNLL-2003), BIOES-style prefixes (``S-``, ``E-``,
``U-``, ``L-``, ``M-``: never in IOB, so rewritten as IOB2 with nothing to ask), IO (bare types, Few-NERD's:
told apart from words by :func:`is_io`) and untyped tags (bare prefixes, ``B``, ``I``, ``O``: BioBERT's corpora of
one entity type), and the entity types of a label list.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from drml_ray.text import counted

log = logging.getLogger(__name__)

PREFIXES = ("B", "I")
SPAN_PREFIXES = {"S": "B", "U": "B", "E": "I", "L": "I", "M": "I"}
"""BIOES / BILOU / BMES prefixes and the IOB2 prefix each becomes: a single-word entity (``S-``, ``U-``) starts
one, an entity's end (``E-``, ``L-``) or middle (``M-``) continues it."""
UNKNOWN_PREFIX = ("unknown tag scheme prefix (expected O, B-TYPE or I-TYPE; BIOES, BILOU and BMES tags, S-, E-, U-, "
                  "L- and M-, are read as IOB2)")  # fmt: skip


def unknown_prefix(tag: str) -> str:
    """The message for a tag no scheme reads, saying how to write one with another separator (``B_PER``) or a
    small prefix letter (``b-per``, ``o``).

    >>> unknown_prefix("B_PER").endswith("; write it B-PER (a prefix and its type are joined by '-')")
    True
    >>> unknown_prefix("b-per").endswith("; write it B-per (a prefix is a capital letter)")
    True
    >>> unknown_prefix("b_per").endswith("write it B-per (a prefix is a capital letter; a prefix and its type are "
    ...                                  "joined by '-')"), unknown_prefix("o")[-41:], unknown_prefix("x-per")[-8:]
    (True, 'write it O (a prefix is a capital letter)', 'as IOB2)')
    >>> unknown_prefix("B-")[-54:]
    '; a prefix with no entity type after it (write B-TYPE)'
    >>> unknown_prefix("PER_B")[-46:], unknown_prefix("loc-i")[-46:]
    ('write it B-PER (a prefix goes before its type)', 'write it I-loc (a prefix goes before its type)')
    >>> unknown_prefix("0")[-47:]
    '; write it O (the letter O, not the digit zero)'
    """
    if _typeless(tag):
        return f"{UNKNOWN_PREFIX}; a prefix with no entity type after it (write {tag[0]}-TYPE)"
    if tag == "0":
        return f"{UNKNOWN_PREFIX}; write it O (the letter O, not the digit zero)"
    if _type_then_prefix(tag):
        return f"{UNKNOWN_PREFIX}; write it {tag[-1].upper()}-{tag[:-2]} (a prefix goes before its type)"
    small = tag[:1].islower()
    fixed = tag[:1].upper() + tag[1:]
    joined = _prefix_and_type(fixed) and fixed[1] != "-"
    if joined:
        fixed = f"{fixed[0]}-{fixed[2:]}"
    if fixed == tag or not (fixed == "O" or _prefix_and_type(fixed)):
        return UNKNOWN_PREFIX
    reasons = {"a prefix is a capital letter": small, "a prefix and its type are joined by '-'": joined}
    why = "; ".join(reason for reason, holds in reasons.items() if holds)
    return f"{UNKNOWN_PREFIX}; write it {fixed} ({why})"


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", None)``. Raises ValueError otherwise."""
    if tag == "O":
        return "O", None
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in PREFIXES or not kind:
        raise ValueError(f"tag {tag!r} is not O, B-TYPE or I-TYPE")
    return prefix, kind


def span_tag_as_iob2(tag: str) -> str:
    """A BIOES / BILOU / BMES tag as IOB2; any other tag unchanged.

    >>> [span_tag_as_iob2(t) for t in ["S-PER", "B-ORG", "M-ORG", "E-ORG", "U-LOC", "L-LOC", "O", "I-X"]]
    ['B-PER', 'B-ORG', 'I-ORG', 'I-ORG', 'B-LOC', 'I-LOC', 'O', 'I-X']
    """
    prefix, sep, kind = tag.partition("-")
    return f"{SPAN_PREFIXES[prefix]}-{kind}" if sep and kind and prefix in SPAN_PREFIXES else tag


ENDS = frozenset("SUEL")
"""BIOES / BILOU / BMES prefixes that end an entity: the tag after one cannot continue it."""


def spans_as_iob2(tags: Sequence[str]) -> list[str]:
    """A sentence's tags (IOB2, or BIOES / BILOU / BMES) as IOB2, read as conlleval and seqeval read them: a tag
    after one that ends an entity (``S-``, ``U-``, ``E-``, ``L-``) starts another, and so does an ``E-``, ``L-`` or
    ``M-`` that does not follow an open entity of its type (``B-``, ``I-``, ``M-``). IOB tags after IOB tags stay
    as they are (an IOB1 file is :func:`iob1_to_iob2`'s).

    >>> spans_as_iob2(["S-LOC", "E-LOC", "B-PER", "E-PER", "O", "E-ORG", "B-LOC", "M-PER", "I-ORG"])
    ['B-LOC', 'B-LOC', 'B-PER', 'I-PER', 'O', 'B-ORG', 'B-LOC', 'B-PER', 'I-ORG']
    >>> spans_as_iob2(["B-LOC", "M-LOC", "L-LOC", "I-LOC", "O", "I-PER"])
    ['B-LOC', 'I-LOC', 'I-LOC', 'B-LOC', 'O', 'I-PER']
    """
    if not any(tag[:1] in SPAN_PREFIXES for tag in tags):
        return list(tags)
    out: list[str] = []
    for before, tag in pairwise(["O", *tags]):
        iob2 = span_tag_as_iob2(tag)
        ended = before[:1] in ENDS
        stray = tag[:1] in SPAN_PREFIXES and not (before[:1] in "BIM" and before[1:] == tag[1:])
        out.append(f"B{iob2[1:]}" if iob2.startswith("I-") and (ended or stray) else iob2)
    return out


def read_tag(tag: str) -> str:
    """A tag as a corpus file writes it, as IOB2 (:func:`span_tag_as_iob2`); ``ValueError`` when it is no tag."""
    iob2 = span_tag_as_iob2(tag)
    split_tag(iob2)
    return iob2


@dataclass
class ReadNotes:
    """What reading files said beyond their sentences (``drml data inspect`` shows it)."""

    schemes: list[str] = field(default_factory=list)
    """The schemes other than IOB the tags were written in, as the notes below say them."""
    problems: list[str] = field(default_factory=list)
    """What reading them warned of, e.g. BIOES tags continuing no entity."""


_NOTES: ContextVar[ReadNotes | None] = ContextVar("notes", default=None)


@contextmanager
def reading_noted() -> Iterator[ReadNotes]:
    """What the files read inside the ``with`` block were noted for (``drml data inspect`` names the scheme a
    file holds, not only the IOB2 it is read as, and lists what reading it warned of).

    >>> with reading_noted() as notes:
    ...     note_span_tags("x", 3)
    >>> notes.schemes
    ['BIOES-style (S-, E-, U-, L-, M-)']
    """
    notes = ReadNotes()
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def _rewritten(scheme: str) -> None:
    if (notes := _NOTES.get()) is not None and scheme not in notes.schemes:
        notes.schemes.append(scheme)


def note_span_tags(path: str | os.PathLike[str], count: int, stray: int = 0) -> None:
    """Say that ``count`` BIOES-style tags of ``path`` were read as IOB2 (nothing when there were none), and
    warn of the ``stray`` ones among them that continue no entity (:func:`spans_as_iob2`)."""
    if count:
        _rewritten("BIOES-style (S-, E-, U-, L-, M-)")
        log.info("%s: %s (S-, E-, U-, L-, M-) read as IOB2: S-/U- start an entity, E-/L-/M- continue it", path,
                 counted(count, "BIOES/BILOU/BMES tag"))  # fmt: skip
    if stray:
        problem = (f"{counted(stray, 'E-, L- or M- tag')} continuing no entity (after O, another type, or an S-, U-, "
                   "E- or L- that ended one): each read as starting an entity, as seqeval does")  # fmt: skip
        log.warning("%s: %s", path, problem)
        if (notes := _NOTES.get()) is not None:
            notes.problems.append(problem)


def strays(written: Sequence[str], read: Sequence[str]) -> int:
    """How many ``E-``, ``L-`` or ``M-`` tags as written were read as starting an entity (:func:`spans_as_iob2`).

    >>> strays(["S-LOC", "E-LOC", "O", "M-PER"], ["B-LOC", "B-LOC", "O", "B-PER"])
    2
    """
    return sum(tag[:1] in "ELM" and as_read[:1] == "B" for tag, as_read in zip(written, read, strict=True))


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 tags as IOB2: an ``I-X`` that does not continue an ``X`` entity becomes ``B-X``.

    >>> iob1_to_iob2(["I-ORG", "O", "I-PER", "I-PER", "B-PER", "I-LOC"])
    ['B-ORG', 'O', 'B-PER', 'I-PER', 'B-PER', 'B-LOC']
    """
    out: list[str] = []
    prev_kind: str | None = None
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and kind != prev_kind:
            tag = f"B-{kind}"
        out.append(tag)
        prev_kind = kind
    return out


BareScheme = Literal["io", "untyped"]
UNTYPED = "ENTITY"
"""The entity type untyped tags (``B``, ``I``: no type) are read as."""


def bare_scheme(tags: Iterable[str]) -> BareScheme | None:
    """What a column of tags without IOB or BIOES tags holds: ``untyped`` bare prefixes (``B``, ``I``, or BIOES's
    ``S``, ``E``, ..., with ``O``), ``io`` bare types (:func:`is_io`), or neither (``None``).

    >>> bare_scheme(["B", "I", "O", "B"]), bare_scheme(["O", "person", "O"]), bare_scheme(["NN", "VB", "NN"])
    ('untyped', 'io', None)
    """
    counts = Counter(tags)
    kinds = set(counts) - {"O"}
    if kinds and "O" in counts and kinds <= {*PREFIXES, *SPAN_PREFIXES}:
        return "untyped"
    return "io" if is_io(counts.elements()) else None


def bare_as_iob2(tags: Sequence[str], scheme: BareScheme) -> list[str]:
    """A sentence's tags in a :func:`bare_scheme` as IOB2 (untyped ones of the one type :data:`UNTYPED`).

    >>> bare_as_iob2(["B", "I", "O", "S"], "untyped"), bare_as_iob2(["art", "art", "O"], "io")
    (['B-ENTITY', 'I-ENTITY', 'O', 'B-ENTITY'], ['B-art', 'I-art', 'O'])
    """
    return io_to_iob2(tags) if scheme == "io" else spans_as_iob2([untyped_tag(tag) for tag in tags])


def untyped_tag(tag: str) -> str:
    """``B`` -> ``B-ENTITY``; ``O`` stays."""
    return tag if tag == "O" else f"{tag}-{UNTYPED}"


def note_bare(path: str | os.PathLike[str], scheme: BareScheme) -> None:
    """Say how a file's tags in a :func:`bare_scheme` were read."""
    _rewritten("IO (bare types)" if scheme == "io" else f"untyped (B, I, O: one type, {UNTYPED})")
    if scheme == "untyped":
        log.warning("%s: the tags carry no entity type (B, I, O): read as one type, %s", path, UNTYPED)
        return
    log.warning("%s: the tags are bare types (IO tagging, as Few-NERD's): read as IOB2, each run of one type one "
                "entity (IO cannot tell two entities of one type side by side apart)", path)  # fmt: skip


def io_to_iob2(tags: Sequence[str]) -> list[str]:
    """IO tags (each word of an entity tagged with its bare type) as IOB2: a run of one type is one entity.

    >>> io_to_iob2(["person-actor", "person-actor", "O", "location-GPE", "art"])
    ['B-person-actor', 'I-person-actor', 'O', 'B-location-GPE', 'B-art']
    """
    return [tag if tag == "O" else f"{'I' if tag == before else 'B'}-{tag}" for before, tag in pairwise(["O", *tags])]


MAX_IO_TYPES = 200
"""The most distinct bare types :func:`is_io` takes for entity types (Few-NERD has 66 fine-grained ones)."""


def is_io(tags: Iterable[str]) -> bool:
    """Whether tags are IO's: ``O`` on at least a third of the words, and up to :data:`MAX_IO_TYPES` other values
    with a letter or digit each, none of them an IOB or BIOES tag or like one (``B_PER``): a column of words, POS
    tags or ``_`` is not.

    >>> is_io(["O", "O", "person", "O", "location-GPE"]), is_io(["O", "B-PER", "person"]), is_io(["O", "O", "_"])
    (True, False, False)
    """
    counts = Counter(tags)
    types = [tag for tag in counts if tag != "O"]
    return (0 < len(types) <= MAX_IO_TYPES and counts["O"] * 3 >= counts.total()
            and all(any(c.isalnum() for c in tag) and not _looks_prefixed(tag) for tag in types))  # fmt: skip


def _looks_prefixed(tag: str) -> bool:
    """An IOB or BIOES tag, one with another separator (``B_PER``, ``I.LOC``) or a prefix with no type after it
    (``B-``): no bare type."""
    return is_tag(tag) or _prefix_and_type(tag) or _typeless(tag)


def _typeless(tag: str) -> bool:
    """A prefix and a separator with no type after them: ``B-``, ``I_``."""
    return len(tag) == 2 and tag[0] in {*PREFIXES, *SPAN_PREFIXES} and not tag[1].isalnum()


def _type_then_prefix(tag: str) -> bool:
    """A type, a separator and an IOB or BIOES prefix, the other way round: ``PER-B``, ``LOC_I``."""
    return len(tag) > 2 and tag[-1].upper() in {*PREFIXES, *SPAN_PREFIXES} and tag[-2] in "-_." and tag[0].isalnum()


def _prefix_and_type(tag: str) -> bool:
    """An IOB or BIOES prefix, a separator (any character but a letter or digit) and a type: ``B-X``, ``B_PER``."""
    return len(tag) > 2 and tag[0] in {*PREFIXES, *SPAN_PREFIXES} and not tag[1].isalnum()


def is_tag(text: str) -> bool:
    try:
        read_tag(text)
    except ValueError:
        return False
    return True


def entity_types(labels: Iterable[str]) -> list[str]:
    """Entity types of a label list, sorted: ``["O", "B-PER", "I-PER"]`` -> ``["PER"]``."""
    return sorted({kind for label in labels if (kind := split_tag(label)[1]) is not None})
