"""What ``drml predict`` tags, read from a file: plain text (a sentence a line), CoNLL columns, CoNLL's words
without their tags, a CSV file's text column, or a table (a corpus, a request log, texts or untagged words); each
as texts, whether they are words joined by spaces, and their documents."""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path
from typing import Literal, NamedTuple

from drml_ray.data.conll import fields, is_header, read_conll
from drml_ray.data.formats import OPEN_ERRORS, is_table, open_binary, open_text, plain_suffix, unreadable
from drml_ray.data.parquet import texts_to_tag
from drml_ray.data.reader import read_corpus_file
from drml_ray.data.tags import bare_scheme, is_tag
from drml_ray.errors import UserError
from drml_ray.text import not_utf8


class Inputs(NamedTuple):
    """Texts to tag, whether they are pre-tokenised (CoNLL tokens joined by spaces), and their documents."""

    texts: list[str]
    pretokenized: bool
    documents: list[int | None] | None = None


def read_inputs(path: str | Path, fmt: Literal["auto", "text", "conll"] = "auto") -> Inputs:
    """The texts of a file: a CoNLL file's sentences (documents from its ``-DOCSTART-`` lines), or a text file's
    lines, one sentence each (a blank line between two documents: an empty text, and the next document).

    ``auto`` reads a file as CoNLL when every non-blank line has at least two columns and ends in
    an ``O``/``B-X``/``I-X`` tag, as CoNLL's words without tags when every line holds one word and blank lines part
    sentences of several (:func:`_sentences_of_words`), else as plain text with one sentence per line; a ``.parquet``
    file is a corpus
    file's sentences, and a folder those of its ``.parquet`` files; a request log's (``drml serve --log-requests``)
    rows are their served texts, and a table of texts or of untagged words its rows
    (:func:`~drml_ray.data.parquet.texts_to_tag`).
    """
    if is_table(path) or Path(path).is_dir():  # a corpus file (drml's or a Hugging Face dataset's)
        if (found := texts_to_tag(path)) is not None:  # (texts, served ones split again as served, or untagged words)
            return Inputs(found[0], found[1], [None] * len(found[0]))
        sentences = read_corpus_file(path)
        return Inputs([" ".join(s.tokens) for s in sentences], True, [s.doc for s in sentences])
    if plain_suffix(path) == ".csv" and fmt == "auto":
        texts = csv_texts(path)
        return Inputs(texts, False, [None] * len(texts))
    lines = read_text_lines(path)
    rows = [fields(line) for line in lines if line.strip()]
    one_word_a_line = max(map(len, rows)) == 1  # (CoNLL's words without their tags, or texts of one word)
    if fmt == "auto":
        fmt = "conll" if _looks_like_conll(rows) or (one_word_a_line and _sentences_of_words(lines)) else "text"
    if fmt == "conll" and one_word_a_line:
        return _words(lines)
    if fmt == "conll":
        sentences = read_conll(path)
        return Inputs([" ".join(s.tokens) for s in sentences], True, [s.doc for s in sentences])
    texts = [line.rstrip("\r") for line in lines]
    return Inputs(texts, False, list(itertools.accumulate((not t.strip() for t in texts), initial=0))[1:])


def read_stdin_inputs(fmt: Literal["auto", "text", "conll"] = "auto") -> Inputs:
    """:func:`read_inputs` of standard input (``--input -``: text or CoNLL, not Parquet), its errors naming it
    ``<stdin>``."""
    with tempfile.TemporaryDirectory(prefix="drml-stdin-") as folder:
        path = Path(folder) / "stdin"
        path.write_bytes(sys.stdin.buffer.read())
        try:
            return read_inputs(path, fmt)
        except UserError as err:
            raise UserError(str(err).replace(str(path), "<stdin>")) from None


MAX_LINE = 100_000
"""Characters in one line to tag (a sentence, not a document: split long documents into lines)."""


def read_text_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark is dropped; gzip, bzip2 or xz read through); anything else
    is a UserError naming it.

    Lines end at line feeds (CR LF and CR read as one) only: ``str.splitlines()`` would also end one at U+2028,
    U+0085 or a form feed, which text copied from the web carries inside sentences, and put the output's lines
    out of step with the input's."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    try:
        with open_text(path) as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: {not_utf8(err, f' at byte {err.start}')}") from None
    except OPEN_ERRORS as err:
        raise UserError(f"{path}: {unreadable(err)}") from None
    if "\x00" in text:
        raise UserError(f"{path}: binary content (a NUL byte), not text")
    lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    if not any(line.strip() for line in lines):
        raise UserError(f"{path}: nothing to tag (the file is empty or blank)")
    long = next((i for i, line in enumerate(lines, 1) if len(line) > MAX_LINE), None)
    if long is not None:
        raise UserError(f"{path}:{long}: a line of {len(lines[long - 1]):,} characters; drml predict tags sentences "
                        f"(at most {MAX_LINE:,} characters a line)")  # fmt: skip
    return lines


def _looks_like_conll(rows: list[list[str]]) -> bool:
    """Whether the fields of a file's lines are CoNLL's: every line a word and an IOB or BIOES tag last, or lines of
    one width whose last fields are bare types or prefixes (:func:`~drml_ray.data.tags.bare_scheme`);
    ``-DOCSTART-`` and a first line naming the columns aside."""
    rows = rows[1:] if rows and is_header(rows[0]) else rows
    rows = [columns for columns in rows if columns[0] != "-DOCSTART-"]
    if not rows or min(map(len, rows)) < 2:
        return False
    return all(is_tag(columns[-1]) for columns in rows) or (
        len(set(map(len, rows))) == 1 and bare_scheme(columns[-1] for columns in rows) is not None
    )


def csv_texts(path: str | Path) -> list[str]:
    """The ``text`` column of a CSV file with a header (a spreadsheet's or ``DataFrame.to_csv``'s export of texts
    to tag; cells parted by what parts the header's first two, a comma, a semicolon or a tab: a spreadsheet in a
    locale whose decimal mark is a comma writes semicolons), one text a row; anything else is a UserError naming
    the file."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        with open_binary(path) as f:
            header = f.readline()
            delimiter = min(((header.find(d.encode()), d) for d in ",;\t" if d.encode() in header), default=(0, ","))
            f.seek(0)
            table = pa_csv.read_csv(
                f,
                pa_csv.ReadOptions(use_threads=False),  # (Arrow's threads abort at exit)
                pa_csv.ParseOptions(delimiter=delimiter[1]),
                pa_csv.ConvertOptions(column_types={"text": pa.string()}),
            )
    except OPEN_ERRORS as err:
        raise UserError(f"{path}: {unreadable(err)}") from None
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not CSV that drml predict reads ({' '.join(str(err).split())})") from None
    if "text" not in table.column_names:
        raise UserError(f"{path}: drml predict tags a CSV file's text column; its header names "
                        f"{', '.join(table.column_names)} (--format conll reads CoNLL columns, --format text "
                        "lines)")  # fmt: skip
    return table.column("text").to_pylist()  # (an empty cell is an empty text: strings hold no nulls by default)


def _sentences_of_words(lines: list[str]) -> bool:
    """Whether lines of one word each are CoNLL's words without their tags: a blank line after each sentence, and a
    sentence of two or more words or a ``-DOCSTART-`` line (single words parted by blank lines, or none, are texts
    of one word each).

    >>> _sentences_of_words(["Anna", "met", "Bob", "", "Hi", ""]), _sentences_of_words(["Berlin", "", "Paris"])
    (True, False)
    """
    words = [line.strip() for line in lines]
    sentence = longest = 0
    for word in words:
        sentence = sentence + 1 if word not in ("", "-DOCSTART-") else 0
        longest = max(longest, sentence)
    return (longest > 1 or "-DOCSTART-" in words) and "" in words


def _words(lines: list[str]) -> Inputs:
    """The sentences of CoNLL's words without tags (:func:`_sentences_of_words`), documents from ``-DOCSTART-``."""
    texts: list[str] = []
    docs: list[int | None] = []
    words: list[str] = []
    doc: int | None = None
    for line in [*lines, ""]:
        word = line.strip(" \t\r")
        if word and word != "-DOCSTART-":
            words.append(word)
            continue
        if words:
            texts.append(" ".join(words))
            docs.append(doc)
            words = []
        if word == "-DOCSTART-":
            doc = 0 if doc is None else doc + 1
    return Inputs(texts, True, docs)
