"""CoNLL column files: read, write, label-set discovery.

A CoNLL file holds one token per line with its tag in the last column (or in another layout that the whole file
shows, said when read: :func:`layout`), a blank line between sentences and optional ``-DOCSTART-`` lines between
documents (kept: each sentence knows its document, which ``data.context`` uses). Its tags are read as IOB2, what
everything inside drml-ray uses (seqeval and the classifier expect it), whatever scheme the file follows
(:mod:`drml_ray.data.tags`: IOB1, BIOES-style, IO, untyped).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from drml_ray.data.formats import OPEN_ERRORS, is_table, open_text, unreadable
from drml_ray.data.tags import (
    PREFIXES,
    BareScheme,
    bare_scheme,
    io_to_iob2,
    iob1_to_iob2,
    is_tag,
    note_bare,
    note_span_tags,
    read_tag,
    spans_as_iob2,
    split_tag,
    strays,
    unknown_prefix,
    untyped_tag,
)  # fmt: skip
from drml_ray.errors import UserError
from drml_ray.text import not_utf8

Scheme = Literal["iob1", "iob2"]
LAYOUT = " \t\r\n"
"""The characters that separate or pad columns; other whitespace (a no-break space, U+0085) can be a token."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sentence:
    """One labelled sentence: words and their word-level tags (same length)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    doc: int | None = field(default=None, compare=False)
    """Its document, counted from 0 by the file's ``-DOCSTART-`` lines; ``None`` in a file that marks none (then
    every sentence stands alone). Not part of equality: two sentences with the same words and tags are equal."""


class CorpusFormatError(UserError):
    """Malformed corpus input; names the file, the 1-based line and the offending text."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, message: str, text: str = ""):
        where = f"{path}:{line}" if line is not None else str(path)
        shown = f": {text!r}" if text else ""
        super().__init__(f"{where}: {message}{shown}")
        self.path, self.line, self.text = str(path), line, text


def as_iob2(sentence: Sentence) -> Sentence:
    """The sentence with its IOB1 tags rewritten as IOB2 (its document kept)."""
    return replace(sentence, tags=tuple(iob1_to_iob2(sentence.tags)))


def read_conll(
    path: str | os.PathLike[str], scheme: Scheme = "iob2", columns: tuple[int, int] | None = None
) -> list[Sentence]:
    """Read a CoNLL column file into IOB2 sentences.

    ``#`` comment lines before a sentence are skipped. Errors name the file, the line and the offending text: a
    line whose column count differs from the file's first line, fewer than two columns, a tag that is not
    ``O``/``B-X``/``I-X`` (or BIOES-style, rewritten as IOB2), an empty file. A file whose tags are bare types
    (IO) or bare prefixes (``B``, ``I``: untyped; :func:`~drml_ray.data.tags.bare_scheme`) is read so, and said
    so. The word is the first column and the tag the last, unless the file is laid out otherwise throughout
    (:func:`layout`, which reads the file again only then), or ``columns`` names the word's and the tag's (counted
    from 0). Where column 1 numbers the words, CoNLL-U's lines numbered ``3-4`` (a multi-word token) and ``5.1``
    (an empty node) are passed over: the words are those numbered 3 and 4. A file compressed with gzip, bzip2 or
    xz is read through (:func:`~drml_ray.data.formats.open_text`).
    """
    if columns is not None:
        indexed = _indexed(columns) and _numbers_words(path)
        try:
            return _read(path, scheme, *columns, indexed=indexed)
        except _NoTag:
            if (bare := _bare_scheme(path, columns[1])) is None:
                _refuse_bracketed(path, columns[1])
                raise
            return _read_bare(path, bare, columns, indexed)
        except IndexError:
            raise CorpusFormatError(path, None, f"no column {max(columns) + 1}: its lines have fewer") from None
    try:
        sentences = _read(path, scheme, 0, -1)
    except _NoTag:
        columns = layout(path)
        if (bare := _bare_scheme(path, columns[1])) is not None:
            return _read_bare(path, bare, columns, _indexed(columns))
        if columns == (0, -1):
            _refuse_bracketed(path)
            raise
        return _read(path, scheme, *columns, indexed=_indexed(columns))
    if not all(map(_counts_words, sentences)):
        return sentences
    columns = layout(path)  # (the words are numbers 1, 2, ...: an index column?)
    return sentences if columns == (0, -1) else _read(path, scheme, *columns, indexed=_indexed(columns))


def _refuse_bracketed(path: str | os.PathLike[str], tag_column: int | None = None) -> None:
    """Name a file whose entities are bracketed spans (CoNLL-2012's OntoNotes files: ``(PERSON*``, ``*``, ``*)``,
    ``(GPE)``) for what it is: no column of it holds a tag (or not ``tag_column``, the one named), and the error
    would name a coreference ``-`` or a ``*``."""
    rows = [columns for _, columns in _records(path) if columns]
    width = len(rows[0]) if rows else 0
    named = range(width) if tag_column is None or not width else [tag_column % width]
    for i in reversed(named):  # (the entities come after the parse)
        if any(row[i].startswith("(") for row in rows) and all(_BRACKETED.fullmatch(row[i]) for row in rows):
            raise CorpusFormatError(path, None, f"column {i + 1} holds bracketed spans ((PERSON* ... *), as "
                                    "CoNLL-2012 and OntoNotes write entities), not IOB tags: drml reads a word "
                                    "and its tag per line (the Hub's conll2012_ontonotesv5 Parquet reads as it "
                                    "is)")  # fmt: skip


_BRACKETED = re.compile(r"\([A-Za-z_$.,:'`-]+\)|(\([A-Za-z_$.,:'`-]+)*\*\)*")
"""A CoNLL-2012 span column's value: ``(GPE)``, ``(PERSON*``, ``*``, ``*)``, ``(TOP(S(NP*``."""


def _read_bare(path: str | os.PathLike[str], scheme: BareScheme, columns: tuple[int, int], indexed: bool,
               ) -> list[Sentence]:  # fmt: skip
    """The file read as its tag column's bare types or prefixes say (:func:`~drml_ray.data.tags.bare_scheme`),
    and said so."""
    note_bare(path, scheme)
    return _read(path, scheme, *columns, indexed=indexed)


def _bare_scheme(path: str | os.PathLike[str], tag: int) -> BareScheme | None:
    return bare_scheme(columns[tag] for _, columns in _records(path) if columns and not _is_word_range(columns[0]))


class _NoTag(CorpusFormatError):
    """A line whose tag column holds no tag."""


def _is_word_range(text: str) -> bool:
    """A CoNLL-U index that is no word of its own: ``3-4`` (a multi-word token, *du*, whose words 3 and 4, *de*
    and *le*, follow it) or ``5.1`` (an empty node)."""
    return _WORD_RANGE.fullmatch(text) is not None


_WORD_RANGE = re.compile(r"[0-9]+[-.][0-9]+")


def _indexed(columns: tuple[int, int]) -> bool:
    """Whether the columns can say column 1 numbers the words (the words in column 2, the tags not in 1)."""
    return columns[0] == 1 and columns[1] != 0


def _counts_words(sentence: Sentence) -> bool:
    """Whether the sentence's words are 1, 2, 3, ... (CoNLL-U's ranges between them aside): an index column."""
    words = [token for token in sentence.tokens if not _is_word_range(token)]
    return bool(words) and words == [str(i) for i in range(1, len(words) + 1)]


def _read(path: str | os.PathLike[str], scheme: Scheme | BareScheme, word: int, tag: int, indexed: bool = False,
          ) -> list[Sentence]:  # fmt: skip
    """:func:`read_conll` with the words in column ``word`` and the tags in column ``tag``; ``indexed``: column 1
    numbers the words, and its CoNLL-U ranges (:func:`_is_word_range`) are passed over."""
    convert = {"iob1": lambda tags: iob1_to_iob2(spans_as_iob2(tags)), "io": io_to_iob2}.get(scheme, spans_as_iob2)
    typed = untyped_tag if scheme == "untyped" else str  # (untyped: B read as B-ENTITY)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    documents = 0  # -DOCSTART- lines seen so far
    span_tags = stray = 0  # BIOES-style tags rewritten as IOB2; those continuing no entity
    ranges = 0  # CoNLL-U multi-word tokens and empty nodes passed over
    headers: list[str] = []  # (said once the file is read)
    for line_no, columns in _records(path, headers):
        if columns and indexed and _is_word_range(columns[0]):
            ranges += 1
            continue
        if not columns:
            if tokens:
                sentences.append(Sentence(tuple(tokens), tuple(convert(tags)), max(documents - 1, 0)))
                stray += span_tags and strays(tags, sentences[-1].tags)
                tokens, tags = [], []
            documents += columns is None
            continue
        tags.append(columns[tag] if scheme == "io" else typed(columns[tag]))
        try:
            span_tags += scheme != "io" and read_tag(tags[-1])[:1] != tags[-1][:1]  # (S-PER read as B-PER)
        except ValueError:
            raise _NoTag(path, line_no, unknown_prefix(columns[tag]), columns[tag]) from None
        tokens.append(columns[word])
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences found (empty file?)")
    note_span_tags(path, span_tags, stray)
    for header in headers:
        log.warning("%s", header)
    if ranges:
        log.warning("%s: %d line%s numbered like 3-4 or 5.1 (CoNLL-U's multi-word tokens and empty nodes) passed "
                    "over: the words are the lines numbered 1, 2, 3, ...", path, ranges, "s"[: ranges - 1])  # fmt: skip
    return _without_language(path, sentences if documents else [replace(s, doc=None) for s in sentences])


_LANGUAGE = re.compile(r"[a-z]{2,3}(?:[-_][a-z]+)*:(?=.)")
"""A language code before a word, ``en:Tulsa`` (XTREME's PAN-X / WikiANN files)."""


def _without_language(path: str | os.PathLike[str], sentences: list[Sentence]) -> list[Sentence]:
    """The words without the language code before each, where every word of the file carries the same one (XTREME's
    PAN-X files write ``en:Tulsa``), said so; else as they are.

    >>> _without_language("x", [Sentence(("en:Tulsa", "en:is"), ("B-LOC", "O"))])[0].tokens
    ('Tulsa', 'is')
    >>> _without_language("x", [Sentence(("en:Tulsa", "is"), ("B-LOC", "O"))])[0].tokens
    ('en:Tulsa', 'is')
    """
    found = _LANGUAGE.match(sentences[0].tokens[0])
    code = found[0] if found else ""
    if not code or not all(t.startswith(code) and len(t) > len(code) for s in sentences for t in s.tokens):
        return sentences
    log.warning("%s: every word starts with %r, the language's code (as XTREME's PAN-X files write them): read "
                "without it", path, code)  # fmt: skip
    return [replace(s, tokens=tuple(t[len(code) :] for t in s.tokens)) for s in sentences]


def _records(path: str | os.PathLike[str], headers: list[str] | None = None,
             ) -> Iterator[tuple[int, list[str] | None]]:  # fmt: skip
    """(line number, columns) of each data line, ``[]`` for a blank line and ``None`` for a ``-DOCSTART-`` line
    (where a sentence ends), and a last ``(0, [])``; comment lines and a first line naming the columns
    (:func:`is_header`, noted in ``headers``) are passed over."""
    n_columns: int | None = None
    in_sentence = False
    for line_no, line in [*_lines(path), (0, "")]:
        if not line.strip() or (line.lstrip(LAYOUT).startswith("-DOCSTART-") and fields(line)[0] == "-DOCSTART-"):
            in_sentence = False
            yield line_no, [] if not line.strip() else None
        elif not _is_comment(line, in_sentence=in_sentence):
            if n_columns is None and line.startswith("{") and line.rstrip().endswith("}"):
                raise CorpusFormatError(path, line_no, "JSON, not CoNLL columns: drml reads JSON lines that open "
                                        "with the file, one object a sentence (name it .jsonl), CoNLL or Parquet "
                                        "(Dataset.to_parquet keeps a Hugging Face dataset's label names)")  # fmt: skip
            if n_columns is None and _BRAT.match(line):
                raise CorpusFormatError(path, line_no, "brat standoff annotations (.ann), not CoNLL columns: drml "
                                        "reads a word and its tag per line (convert it, e.g. with brat's "
                                        "standoff2conll), or Parquet", line)  # fmt: skip
            if n_columns is None and _is_csv(line):
                raise CorpusFormatError(path, line_no, "comma-separated values (CSV), not CoNLL columns: drml reads "
                                        "a word and its tag per line, separated by a tab or spaces, a blank line "
                                        "between sentences, or Parquet", line)  # fmt: skip
            columns = _columns(path, line_no, line, n_columns)
            if n_columns is None and is_header(columns):
                if headers is not None:
                    headers.append(f"{path}:{line_no}: a line naming the columns ({', '.join(columns)}): passed over")
                continue
            n_columns, in_sentence = len(columns), True
            yield line_no, columns


HEADER_WORDS = frozenset({
    "token", "tokens", "word", "words", "text", "form", "lemma", "tag", "tags", "label", "labels", "ner", "ner_tag",
    "ner_tags", "entity", "entities", "iob", "bio", "pos", "pos_tag", "chunk", "id", "index", "sentence", "doc",
})  # fmt: skip
"""The column names a spreadsheet or a pandas export writes on a file's first line (``Word<TAB>Tag``)."""


_BRAT = re.compile(r"T[0-9]+\t\S+ [0-9]+ [0-9]+[ ;0-9]*\t")
"""A brat standoff text-bound annotation line: ``T1<TAB>Person 0 4<TAB>Anna``."""


def _is_csv(line: str) -> bool:
    """A line that is no CoNLL line (no tag after a space or a tab) but comma-separated values ending in a tag or
    a column name.

    >>> _is_csv("Anna,B-PER"), _is_csv("Sentence #,Word,POS,Tag"), _is_csv(", O"), _is_csv("1,000 O")
    (True, True, False, False)
    """
    cells, conll = [cell.strip() for cell in line.split(",")], fields(line)
    if "\t" in line or len(cells) < 2 or (len(conll) > 1 and is_tag(conll[-1])):
        return False
    return is_tag(cells[-1]) or cells[-1].lower() in HEADER_WORDS


def is_header(columns: list[str]) -> bool:
    """A line of column names (:data:`HEADER_WORDS`, in any case): ``token tag``, ``ID FORM NER``.

    >>> is_header(["Word", "Tag"]), is_header(["word", "O"]), is_header(["Tag", "Word"])
    (True, False, True)
    """
    return all(column.lower() in HEADER_WORDS for column in columns)


def layout(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Which column holds the word and which the tag: the first and the last (CoNLL's layout, ``(0, -1)``), unless
    the whole file says otherwise, which is logged. Where the last column holds a tag on under half of the lines,
    the tags are the last column that holds one on every line (a tag then its word, as the MIT corpora; a word
    index, word, tag and ``-`` columns, as Universal NER); a last column of tags with a few wrong ones stays the
    tags, and the first wrong line is the error. A first column that numbers each sentence's words from 1
    (GermEval, CoNLL-U) is no word.
    """
    values: list[set[str]] = []
    last: Counter[str] = Counter()
    for _, columns in _records(path):
        if columns and not _is_word_range(columns[0]):
            values = values or [set() for _ in columns]
            for seen, text in zip(values, columns, strict=True):
                seen.add(text)
            last[columns[-1]] += 1
    width = len(values)
    tag = width - 1
    if sum(n for text, n in last.items() if is_tag(text)) * 2 < sum(last.values()):
        tag = next((i for i in range(width - 2, -1, -1) if all(map(is_tag, values[i]))), tag)
    numbered = width > 2 and tag != 0 and _numbers_words(path)
    word = 1 if tag == 0 or numbered else 0
    said = [f"tags read from column {tag + 1} of {width} (the last holds a tag on under half of the lines)"]
    said = said if tag != width - 1 else []
    said += [f"words from column 2 ({'column 1 numbers them' if numbered else 'after the tags'})"] if word else []
    if said:
        more = [str(i + 1) for i in range(word + 1, width) if i != tag and all(map(is_tag, values[i]))]
        pair = f"{word + 1}, {more[0]}" if more else ""
        said += [f"column {', '.join(more)} holds tags too; only column {tag + 1} is read (data.columns: [{pair}], "
                 f"or --columns {pair.replace(' ', '')}, reads those instead)"] if more else []  # fmt: skip
        log.warning("%s: %s", path, "; ".join(said))
    return (word, tag) if said else (0, -1)


def _numbers_words(path: str | os.PathLike[str]) -> bool:
    """Whether column 1 counts each sentence's words from 1 (CoNLL-U's ranges, :func:`_is_word_range`, aside)."""
    position = 0
    for _, columns in _records(path):
        if not columns or not _is_word_range(columns[0]):
            position = position + 1 if columns else 0
            if columns and columns[0] != str(position):
                return False
    return True


def _columns(path: str | os.PathLike[str], line_no: int, line: str, expected: int | None) -> list[str]:
    """A data line's columns: at least two, and as many as the file's first data line (``expected``) has.

    CrossNER separates columns by tabs, CoNLL-2003 by spaces; a token never holds either. Spaces around a
    tab-separated column and trailing tabs (spreadsheet exports) are layout, not data.
    """
    line = line.rstrip(LAYOUT)
    columns = [column.strip(" ") for column in line.split("\t")] if "\t" in line else fields(line)
    if len(columns) < 2:
        raise CorpusFormatError(path, line_no, "expected a token and a tag column", line)
    if expected is not None and len(columns) != expected:
        raise CorpusFormatError(path, line_no, f"expected {expected} columns like line 1 of the data, got "
                                f"{len(columns)}", line)  # fmt: skip
    return columns


def fields(line: str) -> list[str]:
    r"""A line's columns split on ASCII spaces and tabs (a line end dropped) only: any other character can be
    (part of) a token, a no-break space or U+0085 among them, which ``str.split()`` would take for a separator.

    >>> fields("10\xa0000  O\t\r\n")
    ['10\xa0000', 'O']
    >>> fields("\x85 O")
    ['\x85', 'O']
    """
    if "\t" in line:
        line = line.replace("\t", " ")
    parts = line.strip(" \r\n").split(" ")  # (not a regular expression: this runs on every line of a corpus)
    return parts if "" not in parts else [part for part in parts if part]


def _is_comment(line: str, *, in_sentence: bool) -> bool:
    """A line before a sentence that starts with ``#`` and ends with no tag: a comment (CoNLL-U's ``# text =
    ...``, MultiCoNER's ``# id ... domain=en``), skipped. A ``#`` token with its tag is a word.

    >>> [_is_comment(line, in_sentence=False) for line in ["# sent_id = 3", "#\tO", "#nlp B-TOPIC", "#"]]
    [True, False, False, True]
    """
    return not in_sentence and line.startswith("#") and not is_tag(fields(line)[-1])


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """(1-based number, text) of each line of a UTF-8 file, gzip-, bzip2- or xz-compressed or not
    (:func:`~drml_ray.data.formats.open_text`); a byte-order mark is dropped and CRLF read as LF."""
    line_no = 0
    try:
        with open_text(path) as f:
            for line_no, raw in enumerate(f, start=1):
                if "\x00" in raw:
                    raise CorpusFormatError(path, line_no, "binary content (a NUL byte), not CoNLL text")
                yield line_no, raw.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise CorpusFormatError(path, line_no + 1, not_utf8(err)) from None
    except OPEN_ERRORS as err:
        raise CorpusFormatError(path, None, unreadable(err)) from None


def write_conll(path: str | os.PathLike[str], sentences: Iterable[Sentence]) -> None:
    """Write ``token<TAB>tag`` lines with a blank line after each sentence, atomically; a ``-DOCSTART-`` line
    opens each document of sentences that know theirs, so that :func:`read_conll` reads the documents back."""
    from drml_ray.runtime.runfiles import atomic_write_text

    lines: list[str] = []
    doc: int | None = None
    for number, sentence in enumerate(sentences, 1):
        _check_writable(path, number, sentence.tokens)
        if sentence.doc is not None and sentence.doc != doc:
            lines.extend(["-DOCSTART-\tO", ""])
        doc = sentence.doc
        lines.extend(f"{tok}\t{tag}" for tok, tag in zip(sentence.tokens, sentence.tags, strict=True))
        lines.append("")
    atomic_write_text(path, "\n".join(lines) + "\n")


def _check_writable(path: str | os.PathLike[str], number: int, tokens: Sequence[str]) -> None:
    """Refuse a token that CoNLL columns cannot hold (one with a space, a tab or a line end in it, or an empty
    one, as a Parquet file may have): written, it would read back as other words or other columns."""
    for word, token in enumerate(tokens, 1):
        if not token or " " in token or "\t" in token or "\n" in token or "\r" in token:
            raise CorpusFormatError(path, None, f"cannot write sentence {number:,}, word {word} as CoNLL columns, "
                                    "which hold no empty token and none with a space, tab or line end in it; keep "
                                    "this corpus in Parquet (.parquet), which holds any token", token)  # fmt: skip


def discover_labels(*corpora: Iterable[Sentence]) -> list[str]:
    """The IOB2 label list of one or more corpora: ``O``, then ``B-X``/``I-X`` per type, types sorted.

    Both prefixes of every type are included even if one never occurs, so the classifier can
    output any valid tag.
    """
    kinds: set[str] = set()
    for corpus in corpora:
        for sentence in corpus:
            for tag in sentence.tags:
                kind = split_tag(tag)[1]
                if kind is not None:
                    kinds.add(kind)
    return ["O"] + [f"{p}-{k}" for k in sorted(kinds) for p in PREFIXES]


def first_line_with(path: str | os.PathLike[str], labels: Iterable[str]) -> int | None:
    """The 1-based line (a Parquet file: row) of the first word tagged with one of ``labels`` (or its IOB1 or IO
    equivalent), for error messages."""
    kinds = {split_tag(label)[1] for label in labels}
    if Path(path).is_dir():
        return None  # a folder of Parquet files: no one line to name
    if is_table(path):
        from drml_ray.data.parquet import read_parquet

        rows = read_parquet(path)
        return next((i for i, s in enumerate(rows, 1) if any(split_tag(t)[1] in kinds for t in s.tags)), None)
    for line_no, line in _lines(path):
        columns = fields(line)
        if len(columns) > 1 and columns[-1] != "O" and kinds & {columns[-1], columns[-1].partition("-")[2]}:
            return line_no
    return None
