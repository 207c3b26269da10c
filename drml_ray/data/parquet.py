"""Parquet storage for corpora: one row per sentence, ``tokens`` and ``tags`` as lists of strings.

Parquet is what Ray Data reads (``ray.data.read_parquet``), so a converted corpus can be streamed
through a cluster; it is also faster to load than re-parsing column text.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from drml_ray.data.conll import CorpusFormatError, Sentence
from drml_ray.data.formats import OPEN_ERRORS, open_binary, table_files, table_format, unreadable
from drml_ray.data.tags import (
    bare_as_iob2,
    bare_scheme,
    is_tag,
    note_bare,
    note_span_tags,
    read_tag,
    spans_as_iob2,
    strays,
    unknown_prefix,
)
from drml_ray.text import counted

log = logging.getLogger(__name__)

SCHEMA = pa.schema([("tokens", pa.list_(pa.string())), ("tags", pa.list_(pa.string())), ("doc", pa.int64())])
"""``doc``: the sentence's document (null where the corpus marks none); optional when read."""


def write_parquet(path: str | os.PathLike[str], sentences: Iterable[Sentence]) -> None:
    """Write sentences to a Parquet file atomically (a temporary file renamed into place)."""
    rows = list(sentences)
    columns = {"tokens": [list(s.tokens) for s in rows], "tags": [list(s.tags) for s in rows]}
    write_table(path, pa.table({**columns, "doc": [s.doc for s in rows]}, schema=SCHEMA))


def write_table(path: str | os.PathLike[str], table: pa.Table) -> None:
    """Write an Arrow table to Parquet atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # (as atomic_write_text does for every other file drml writes)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")  # (two writers: two names)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


TAG_COLUMNS = ("tags", "ner_tags")
"""Where a row's tags are: drml's own ``tags`` (strings), or the ``ner_tags`` of a Parquet file written by Hugging
Face ``datasets`` (``Dataset.to_parquet``, the Hub's Parquet files: class ids, their names in the file's
metadata)."""


def read_parquet(path: str | os.PathLike[str], columns: tuple[str, str] | None = None) -> list[Sentence]:
    """Read a corpus Parquet file (drml's, or a Hugging Face dataset's with ``tokens`` and ``ner_tags``; ``columns``
    names others: ``("words", "labels")``, Few-NERD's ``("tokens", "fine_ner_tags")``), or such an Arrow file (what
    ``Dataset.save_to_disk`` writes); errors name the file, the row (as ``line``) and the problem."""
    try:
        schema, read = _table_reader(path)
        words, tag_column, label_names = _columns(path, schema, columns)
        has_doc = "doc" in schema.names
        table = read([words, tag_column, *(["doc"] if has_doc else [])])
    except (pa.ArrowInvalid, OSError) as err:
        raise CorpusFormatError(path, None, f"not a drml corpus {_kind(path)} file ({err})") from None
    docs = table.column("doc").to_pylist() if has_doc else [None] * table.num_rows
    tags = _pylist(path, table, tag_column)
    if label_names is not None:
        tags = [_named(path, row, ids, label_names) for row, ids in enumerate(tags, start=1)]
    tags = _bare_as_iob2(path, tags)
    rows = [(row, tokens, row_tags, doc) for row, (tokens, row_tags, doc)
            in enumerate(zip(_pylist(path, table, words), tags, docs, strict=True), start=1)
            if tokens or row_tags]  # fmt: skip
    if len(rows) < table.num_rows:  # (a CoNLL file's blank lines, as a row: no sentence)
        log.warning("%s: %s skipped", path, counted(table.num_rows - len(rows), "empty row"))
    sentences = [_sentence(path, *row) for row in rows]
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences found (empty file?)")
    pairs = [(row[2], sentence.tags) for sentence, row in zip(sentences, rows, strict=True)]
    note_span_tags(path, sum(new[:1] != old[:1] for t, s in pairs for new, old in zip(s, t, strict=True)),
                   sum(strays(*pair) for pair in pairs))  # fmt: skip
    return sentences


def _table_reader(path: str | os.PathLike[str]) -> tuple[pa.Schema, Callable[[list[str]], pa.Table]]:
    """A Parquet, Arrow or JSON lines file's schema, and a reader of its columns by name."""
    kind = table_format(path)
    if kind == "JSON lines":
        table = _json_lines(path)
        return table.schema, table.select
    if kind != "Arrow":
        return pq.read_schema(path), lambda names: pq.read_table(path, columns=names)
    with open(path, "rb") as f:
        try:
            table = pa.ipc.open_stream(f).read_all()  # (Dataset.save_to_disk writes streams)
        except pa.ArrowInvalid:
            f.seek(0)
            table = pa.ipc.open_file(f).read_all()
    return table.schema, table.select


def _json_lines(path: str | os.PathLike[str]) -> pa.Table:
    """A JSON lines file as a table; its errors name the line (pyarrow counts rows from 0)."""
    try:
        with open_binary(path) as f:  # (gzip, bzip2 or xz read through, as CoNLL files are)
            table = pa_json.read_json(f)
    except OPEN_ERRORS as err:
        raise CorpusFormatError(path, None, unreadable(err)) from None
    except pa.ArrowInvalid as err:
        text = str(err).removeprefix("JSON parse error: ")
        if text == "Empty JSON file":
            raise CorpusFormatError(path, None, "no sentences found (empty file?)") from None
        if "changed from object to array in row 0" in text:
            raise CorpusFormatError(path, None, "one JSON array: drml reads JSON lines, one object a sentence "
                                    "(Dataset.to_json writes them)") from None  # fmt: skip
        row = re.search(r" in row ([0-9]+)$", text)
        line = int(row.group(1)) + 1 if row else None
        detail = text[: row.start()] if row else text
        raise CorpusFormatError(path, line, f"not JSON lines of a corpus ({detail}){_fields_of(path, line or 1)}"
                                ) from None  # fmt: skip
    if not table.num_columns:
        raise CorpusFormatError(path, None, "no sentences found (blank lines only?)")
    return table


def _fields_of(path: str | os.PathLike[str], line: int) -> str:
    """What a JSON lines file's ``line`` holds where it is an object with no list of words (as doccano's export
    of character spans), to add to a message; else ``""``."""
    with open_binary(path) as f:
        text = next((raw for i, raw in enumerate(f, 1) if i == line), b"")
    try:
        fields = json.loads(text)
    except ValueError:
        return ""
    words = lambda value: isinstance(value, list) and all(isinstance(w, str) for w in value)  # noqa: E731
    if not isinstance(fields, dict) or any(map(words, fields.values())):  # (a list of words: a sentence after all)
        return ""
    return (f"; line {line} is an object of {', '.join(map(str, fields)) or 'no fields'}, not a sentence: drml "
            "reads a tokens list and a tags (or ner_tags) list, one object a line, not character spans")  # fmt: skip


def _kind(path: str | os.PathLike[str]) -> str:
    return table_format(path) or "Parquet"  # (a file read_parquet was handed by name: Parquet)


REQUEST_LOG_COLUMNS = ("text", "entities", "model", "version")
"""Columns a ``drml serve --log-requests`` file holds beside ``tokens`` and ``tags`` (:data:`LOG_SCHEMA`)."""

LOG_SCHEMA = pa.schema([*SCHEMA, *((name, pa.string()) for name in REQUEST_LOG_COLUMNS), ("time", pa.float64())])
"""A file of predictions (``drml serve --log-requests``, ``drml predict --output FILE.parquet``): a corpus file
(``tokens`` and ``tags``: the words the model saw and the IOB2 tags it predicted) with each text, its ``entities``
(JSON), the ``model`` and its ``version`` beside them, and the ``time`` it was tagged."""


def log_row(words: list[str], tags: list[str], record: dict, model: str, version: str, doc: int | None = None,
            ) -> dict:  # fmt: skip
    """One tagged text as a row of :data:`LOG_SCHEMA` (``record``: ``{"text", "entities"}``, as a client gets it;
    ``doc``: its document, where the input marks them)."""
    entities = json.dumps(record["entities"])
    return {"tokens": words, "tags": tags, "doc": doc, "text": record["text"], "entities": entities, "model": model,
            "version": version, "time": time.time()}  # fmt: skip


def write_log(path: str | os.PathLike[str], rows: list[dict]) -> None:
    """Rows of :func:`log_row` written as a Parquet file, atomically."""
    write_table(path, pa.Table.from_pylist(rows, schema=LOG_SCHEMA))


def texts_to_tag(path: str | os.PathLike[str]) -> tuple[list[str], bool] | None:
    """What ``drml predict`` tags in a table (a file or a folder, as :func:`drml_ray.data.reader.read_corpus_file`
    reads it) that is no corpus to tag by its words, and whether the texts are words joined by spaces: the texts a
    request log was served (its rows with words), a ``text`` column beside no ``tokens`` (JSON lines of ``{"text":
    ...}``, a dataset of raw text: each row), or ``tokens`` beside no tags (a split without labels). ``None``
    for a corpus (words and tags); a table of none of them is a :class:`CorpusFormatError` naming its columns."""
    files = table_files(path) if Path(path).is_dir() else [Path(path)]
    found = [_texts_of(file) for file in files]
    if not files or None in found or len({pretokenized for _, pretokenized in found}) > 1:  # type: ignore[misc]
        return None
    return [text for texts, _ in found for text in texts], found[0][1]  # type: ignore[index]


def _texts_of(path: Path) -> tuple[list[str], bool] | None:
    """:func:`texts_to_tag` of one file."""
    try:
        schema, read = _table_reader(path)
    except (pa.ArrowInvalid, OSError):
        return None  # (read_corpus_file names what is wrong)
    names = set(schema.names)
    served = set(REQUEST_LOG_COLUMNS) <= names and "tokens" in names
    if "text" in names and _is_text(schema.field("text").type) and (served or "tokens" not in names):
        column, pretokenized = "text", False
    elif "tokens" in names and not names & set(TAG_COLUMNS) and _is_list_of(schema.field("tokens").type, _is_text):
        column, pretokenized = "tokens", True
    elif "tokens" in names:
        return None  # (a corpus: read_corpus_file reads it, or names what is wrong)
    else:
        found = ", ".join(f"{field.name} ({field.type})" for field in schema)
        raise CorpusFormatError(path, None, "drml predict tags a text column (raw text) or a tokens column (lists of "
                                f"strings: words, tagged or not); it has {found}")  # fmt: skip
    table = read([column, *(["tokens"] if served else [])])
    rows = _pylist(path, table, column)
    if row := next((i for i, v in enumerate(rows, start=1) if v is None or (pretokenized and None in v)), None):
        raise CorpusFormatError(path, row, f"{column}: a null, not {'a word' if pretokenized else 'a text'}")
    if pretokenized:  # (rows without words skipped, as a corpus' are)
        return [" ".join(words) for words in rows if words], True
    words = _pylist(path, table, "tokens") if served else rows
    return [text for w, text in zip(words, rows, strict=True) if w or not served], False  # (a log: served rows)


def _bare_as_iob2(path: str | os.PathLike[str], tags: list) -> list:
    """Rows of bare types (IO: Few-NERD's ClassLabel names, O, art, building, ...) or bare prefixes (B, I, O:
    untyped) as IOB2, said; others as they are."""
    every = [tag for row in tags for tag in row or [] if isinstance(tag, str)]
    if all(map(is_tag, set(every))) or (scheme := bare_scheme(every)) is None:  # (IOB and BIOES tags: not bare)
        return tags
    note_bare(path, scheme)
    return [bare_as_iob2(row, scheme) if row and None not in row else row for row in tags]


def _pylist(path: str | os.PathLike[str], table: pa.Table, name: str) -> list:
    """A column's rows as Python lists; bytes that are not UTF-8 in a string (Arrow writers need not check) are an
    error naming the row."""
    try:
        return table.column(name).to_pylist()
    except UnicodeDecodeError as err:
        row = next(i for i, value in enumerate(table.column(name), start=1) if _broken(value))
        raise CorpusFormatError(path, row, f"{name}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _broken(value: pa.Scalar) -> bool:
    try:
        value.as_py()
        return False
    except UnicodeDecodeError:
        return True


def _columns(path: str | os.PathLike[str], schema: pa.Schema, named: tuple[str, str] | None,
             ) -> tuple[str, str, list[str] | None]:  # fmt: skip
    """The columns holding the words and the tags, and the names of the tags' class ids where it holds ids (else
    ``None``)."""
    words, tag_column = named or ("tokens", next((name for name in TAG_COLUMNS if name in schema.names), None))
    if named and (missing := [name for name in named if name not in schema.names]):
        raise CorpusFormatError(path, None, f"no column {missing[0]}: it has {', '.join(schema.names)}")
    if words not in schema.names or tag_column is None:
        lists = [name for name in schema.names if _is_list_of(schema.field(name).type, _is_text_or_none)]
        pick = ("WORDS", "TAGS") if len(lists) != 2 else lists
        raise CorpusFormatError(path, None, f"not a drml corpus {_kind(path)} file: it needs a tokens column "
                                f"and a {' or '.join(TAG_COLUMNS)} column, and has {', '.join(schema.names)} "
                                f"(data.columns: [{', '.join(pick)}], or --columns {','.join(pick)}, names others)"
                                )  # fmt: skip
    is_strings = [_is_list_of(schema.field(name).type, _is_text_or_none) for name in (words, tag_column)]
    ids = _is_list_of(schema.field(tag_column).type, pa.types.is_integer)
    doc_ok = "doc" not in schema.names or pa.types.is_integer(schema.field("doc").type)
    if not is_strings[0] or not (is_strings[1] or ids) or not doc_ok:
        found = ", ".join(f"{name}: {schema.field(name).type}" for name in (words, tag_column, "doc")
                          if name in schema.names)  # fmt: skip
        raise CorpusFormatError(path, None, f"columns {words}, {tag_column} must be lists of strings (doc: integers; "
                                f"drml data convert writes them), not {found}")  # fmt: skip
    names = class_label_names(schema.metadata, tag_column) if ids else None
    if ids and names is None:
        raise CorpusFormatError(path, None, f"column {tag_column} holds class ids and the file does not name them "
                                "(no Hugging Face ClassLabel in its metadata): write the tags as strings, or "
                                "the dataset with Dataset.to_parquet, which keeps their names")  # fmt: skip
    return words, tag_column, names


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)  # (Polars writes large strings)


def _is_text_or_none(kind: pa.DataType) -> bool:
    """Strings, or nothing at all (JSON lines whose every list is empty: their rows are skipped as empty)."""
    return _is_text(kind) or pa.types.is_null(kind)


def _is_list_of(kind: pa.DataType, is_item: Callable[[pa.DataType], bool]) -> bool:
    return (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and is_item(kind.value_type)


def class_label_names(metadata: dict[bytes, bytes] | None, column: str) -> list[str] | None:
    """The names Hugging Face ``datasets`` gives a list column of ``ClassLabel`` ids in a Parquet file's metadata
    (``List`` of ``ClassLabel`` in datasets 4+, ``Sequence`` before, or a one-item list); ``None`` without them.

    >>> features = {"ner_tags": {"feature": {"names": ["O", "B-PER"], "_type": "ClassLabel"}, "_type": "List"}}
    >>> class_label_names({b"huggingface": json.dumps({"info": {"features": features}}).encode()}, "ner_tags")
    ['O', 'B-PER']
    >>> class_label_names({}, "ner_tags") is None
    True
    """
    try:
        feature = json.loads((metadata or {})[b"huggingface"])["info"]["features"][column]
    except (KeyError, TypeError, ValueError):
        return None
    label = feature[0] if isinstance(feature, list) and feature else feature
    label = label.get("feature", label) if isinstance(label, dict) else None
    names = label.get("names") if isinstance(label, dict) else None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def _named(path: str | os.PathLike[str], row: int, ids: list[int | None] | None, names: list[str]) -> list:
    """A row's class ids as their names (an id outside them is an error naming the row)."""
    bad = next((i for i in ids or [] if i is not None and not 0 <= i < len(names)), None)
    if bad is not None:
        raise CorpusFormatError(path, row, f"class id {bad} outside the file's {len(names)} label names")
    return [None if i is None else names[i] for i in ids or []]


def _sentence(path: str | os.PathLike[str], row: int, tokens: list | None, tags: list | None,
              doc: int | None) -> Sentence:  # fmt: skip
    """One row as an IOB2 sentence (BIOES-style tags rewritten), or an error naming the row."""
    if not tokens or len(tokens) != len(tags or []):
        raise CorpusFormatError(path, row, f"row has {len(tokens or [])} tokens but {len(tags or [])} tags")
    if None in tokens or None in tags:  # type: ignore[operator]
        raise CorpusFormatError(path, row, "a null token or tag")
    for tag in tags:  # type: ignore[union-attr]
        try:
            read_tag(tag)
        except ValueError:
            raise CorpusFormatError(path, row, unknown_prefix(tag), tag) from None
    return Sentence(tuple(tokens), tuple(spans_as_iob2(tags)), doc)  # type: ignore[arg-type]
