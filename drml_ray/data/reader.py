"""One corpus file read whatever its format: CoNLL columns (:mod:`drml_ray.data.conll`), or a table (Parquet, Arrow,
JSON lines: :mod:`drml_ray.data.parquet`), a folder of tables, or every shard of a Hub split."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from drml_ray.data.conll import CorpusFormatError, Scheme, Sentence, as_iob2, read_conll
from drml_ray.data.formats import TABLE_SUFFIXES, is_table, shards, table_files
from drml_ray.text import first_few

log = logging.getLogger(__name__)


Columns = tuple[int, int] | tuple[str, str]
"""The words' and the tags' columns: a CoNLL file's, counted from 0; a Parquet file's, by name."""


METADATA = (".json", ".md", ".lock")
"""Files beside a folder's Parquet or Arrow files that hold no sentences (``Dataset.save_to_disk``'s
``dataset_info.json`` and ``state.json``, a Hub dataset's ``README.md``): not named as passed over."""


def read_corpus_file(path: str | os.PathLike[str], scheme: Scheme = "iob2", columns: Columns | None = None,
                     ) -> list[Sentence]:  # fmt: skip
    """Read a CoNLL file (``columns``: as :func:`read_conll`), a Parquet file written by
    :func:`drml_ray.data.parquet.write_parquet` or a Hugging Face dataset (``columns``: as
    :func:`~drml_ray.data.parquet.read_parquet`), or a folder of such Parquet files read in name order (e.g. what
    ``drml serve --log-requests DIR`` wrote). A shard of a split, named as the Hub names them
    (``train-00000-of-00003.parquet``), is read with the split's other shards beside it."""
    parquet = Path(path).is_dir() or is_table(path)
    if columns is not None and parquet != isinstance(columns[0], str):
        raise CorpusFormatError(path, None, "a Parquet file's columns are named (tokens,fine_ner_tags), a CoNLL "
                                "file's counted from 1 (2,3)")  # fmt: skip
    if Path(path).is_dir():
        files = table_files(path)
        others = sorted(p.name for p in Path(path).iterdir() if p.is_file() and p.name[0] != "."
                        and p.suffix.lower() not in (*TABLE_SUFFIXES, *METADATA))  # fmt: skip
        named = first_few(others)
        if not files:
            held = f" (it holds {named}: name a corpus file itself)" if others else ""
            raise CorpusFormatError(path, None, f"a folder without .parquet or .arrow files{held}")
        if others:
            log.warning("%s: a folder is read as its .parquet and .arrow files; %s passed over (name a corpus file "
                        "itself)", path, named)  # fmt: skip
    else:
        try:
            files = shards(path)
        except FileNotFoundError as err:
            raise CorpusFormatError(path, None, str(err)) from None
        if len(files) > 1:
            log.info("%s: read with the other %d shards of its split", path, len(files) - 1)
    return [sentence for file in files for sentence in _read_file(file, parquet, scheme, columns)]


def _read_file(path: Path, parquet: bool, scheme: Scheme, columns: Columns | None) -> list[Sentence]:
    if parquet:
        from drml_ray.data.parquet import read_parquet

        sentences = read_parquet(path, columns)  # type: ignore[arg-type]
        return [as_iob2(s) for s in sentences] if scheme == "iob1" else sentences
    return read_conll(path, scheme=scheme, columns=columns)  # type: ignore[arg-type]
