"""Parquet storage for corpora: one row per sentence, ``tokens`` and ``tags`` as lists of strings.

Parquet is what Ray Data reads (``ray.data.read_parquet``), so a converted corpus can be streamed
through a cluster; it is also faster to load than re-parsing column text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from drml_ray.data.conll import UNKNOWN_PREFIX, CorpusFormatError, Sentence, note_span_tags, read_tag

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
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def read_parquet(path: str | os.PathLike[str]) -> list[Sentence]:
    """Read a corpus Parquet file; errors name the file, the row (as ``line``) and the problem."""
    try:
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=["tokens", "tags", *(["doc"] if "doc" in names else [])])
    except (pa.ArrowInvalid, KeyError, OSError) as err:
        raise CorpusFormatError(path, None, f"not a drml corpus Parquet file ({err})") from None
    lists = [f for f in table.schema if f.name != "doc"]
    wrong = [f.name for f in lists if not pa.types.is_list(f.type) or not pa.types.is_string(f.type.value_type)]
    if "doc" in names and not pa.types.is_integer(table.schema.field("doc").type):
        wrong.append("doc")
    if wrong:
        raise CorpusFormatError(path, None, f"columns {', '.join(wrong)} must be lists of strings (doc: integers; "
                                "drml data convert writes them)")  # fmt: skip
    docs = table.column("doc").to_pylist() if "doc" in names else [None] * table.num_rows
    sentences: list[Sentence] = []
    span_tags = 0
    for row, (tokens, tags, doc) in enumerate(
        zip(table.column("tokens").to_pylist(), table.column("tags").to_pylist(), docs, strict=True), start=1
    ):
        if not tokens or len(tokens) != len(tags or []):
            raise CorpusFormatError(path, row, f"row has {len(tokens or [])} tokens but {len(tags or [])} tags")
        if None in tokens or None in tags:
            raise CorpusFormatError(path, row, "a null token or tag")
        iob2: list[str] = []
        for tag in tags:
            try:
                iob2.append(read_tag(tag))
            except ValueError:
                raise CorpusFormatError(path, row, UNKNOWN_PREFIX, tag) from None
        span_tags += sum(new != old for new, old in zip(iob2, tags, strict=True))
        sentences.append(Sentence(tuple(tokens), tuple(iob2), doc))
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences found (empty file?)")
    note_span_tags(path, span_tags)
    return sentences
