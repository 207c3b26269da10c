"""What a corpus file is, told once from its name and first bytes: a table (Parquet, Arrow, JSON lines) or text
(CoNLL columns); text read as it is or through gzip, bzip2 or xz (``train.conll.gz``, as the CoNLL-2002 and WikiANN
releases ship them, whatever the file's name), as pandas and ``datasets`` read them."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO, Literal, TextIO

_MAGIC = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
"""First bytes of a compressed file and what opens it (bzip2's ``BZh`` is followed by a block size, 1 to 9)."""

_TAR_MAGIC = slice(257, 262)
"""Where a tar archive's first header says ``ustar``."""


class ArchiveError(ValueError):
    """An archive (zip, tar: several files) given where one text file is read."""


OPEN_ERRORS = (OSError, EOFError, lzma.LZMAError, ArchiveError)
"""What opening or reading a file through :func:`open_text` raises: it cannot be read, is an archive, or does not
decompress (gzip's and bzip2's errors are ``OSError``); :func:`unreadable` says which."""


def unreadable(err: BaseException) -> str:
    """What an :data:`OPEN_ERRORS` error says of the file."""
    if isinstance(err, ArchiveError):
        return str(err)
    if isinstance(err, OSError) and err.strerror:
        return f"cannot read it ({err.strerror})"
    return f"compressed, but it does not decompress ({err or 'truncated'})"


def open_text(path: str | os.PathLike[str]) -> TextIO:
    """``path`` opened as UTF-8 text, a byte-order mark dropped and CR LF read as LF, decompressed where its
    first bytes are gzip's, bzip2's or xz's; :class:`ArchiveError` for a zip or tar archive."""
    return _opener(path)(path, "rt", encoding="utf-8-sig")  # type: ignore[operator]


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """``path``'s bytes, decompressed as :func:`open_text` decompresses them."""
    return _opener(path)(path, "rb")  # type: ignore[operator]


def _opener(path: str | os.PathLike[str]) -> Callable[..., IO]:
    with open(path, "rb") as f:
        head = f.read(_TAR_MAGIC.stop)
    if head.startswith(b"PK\x03\x04"):
        raise ArchiveError("a zip archive: unpack it (unzip) and name the file inside")
    opener = next((o for magic, o in _MAGIC.items() if head.startswith(magic) and (
        magic != b"BZh" or b"1" <= head[3:4] <= b"9")), open)  # fmt: skip
    if opener is not open:
        with opener(path, "rb") as raw:  # type: ignore[operator]
            head = raw.read(_TAR_MAGIC.stop)
    if head[_TAR_MAGIC] == b"ustar":
        raise ArchiveError("a tar archive: unpack it (tar xf) and name the file inside")
    return opener  # type: ignore[return-value]


def plain_suffix(path: str | os.PathLike[str]) -> str:
    """The suffix of ``path``'s name without a compression suffix, lowercase: ``train.jsonl.gz`` -> ``.jsonl``."""
    name = Path(path).name.lower()
    for suffix in (".gz", ".bz2", ".xz"):
        name = name.removesuffix(suffix)
    return Path(name).suffix


TableFormat = Literal["Parquet", "Arrow", "JSON lines"]


PARQUET_NAMES = (".parquet", ".pq")
"""Suffixes of the names drml writes Parquet to (``drml data convert``, ``drml predict --output``)."""


def compressed_parquet(path: str | os.PathLike[str]) -> bool:
    """Whether a name to write asks for compressed Parquet (``x.parquet.gz``), which Parquet's own column compression
    makes no sense of."""
    return plain_suffix(path) in PARQUET_NAMES and Path(path).suffix.lower() not in PARQUET_NAMES


TABLE_SUFFIXES = (".parquet", ".arrow")
"""Suffixes of the Parquet and Arrow files drml reads (the files :func:`table_files` takes from a folder)."""


def table_format(path: str | os.PathLike[str]) -> TableFormat | None:
    """What table ``path`` holds, ``None`` for text (or a folder): Parquet (named ``.parquet``, or starting with
    ``PAR1``: a ``.pq`` file), Arrow (an IPC stream named ``.arrow``, what ``Dataset.save_to_disk`` writes, or a
    file starting with ``ARROW1``: Feather 2) or JSON lines, one object a sentence (``Dataset.to_json``,
    ``run_ner.py``'s ``--train_file``: named ``.jsonl``, ``.ndjson`` or ``.json``, compressed or not, or opening,
    past blanks, an object's key ``{"`` or an array of objects ``[{``; a CoNLL file's first word may be ``[``)."""
    suffix = Path(path).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return "Parquet" if suffix == ".parquet" else "Arrow"
    if plain_suffix(path) in (".jsonl", ".ndjson", ".json"):
        return "JSON lines"
    try:
        with open_binary(path) as f:
            head = f.read(64)
    except OPEN_ERRORS:
        return None  # (a folder, a damaged file: the text reader names it)
    if head.startswith(b"PAR1") or head.startswith(b"ARROW1"):
        return "Parquet" if head.startswith(b"PAR1") else "Arrow"
    return "JSON lines" if re.match(rb'\{\s*"|\[\s*\{', head.lstrip(b"\xef\xbb\xbf \t\r\n")) else None


def is_table(path: str | os.PathLike[str]) -> bool:
    return table_format(path) is not None


def table_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The Parquet and Arrow files of a folder (a Hub split's shards, a request log, a split of
    ``Dataset.save_to_disk``), in name order (none where ``folder`` is no folder)."""
    if not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in TABLE_SUFFIXES and p.is_file())


SHARD = re.compile(r"-([0-9]+)-of-([0-9]+)$")
"""The Hub's shard suffix of a split's file name, before its suffixes (``train-00000-of-00003.parquet``)."""


def unsharded(name: str) -> str | None:
    """A shard's file name without its shard suffix (``train.parquet``); ``None`` for a file that is no shard."""
    stem, dot, suffixes = name.partition(".")
    return SHARD.sub("", stem) + dot + suffixes if SHARD.search(stem) else None


def shards(path: str | os.PathLike[str]) -> list[Path]:
    """Every shard of the split whose shard ``path`` is (named as the Hub names them, ``train-00001-of-00003``),
    in order; ``[path]`` for any other file. ``FileNotFoundError`` names a shard that is not beside it."""
    path = Path(path)
    stem, dot, suffixes = path.name.partition(".")
    found = SHARD.search(stem)
    if found is None or int(found[2]) <= 1:
        return [path]
    width, base = len(found[1]), stem[: found.start()]
    siblings = [path.with_name(f"{base}-{i:0{width}d}-of-{found[2]}{dot}{suffixes}") for i in range(int(found[2]))]
    missing = [p.name for p in siblings if not p.exists()]
    if missing:
        raise FileNotFoundError(f"a shard of {len(siblings)}, and {missing[0]} is not beside it")
    return siblings
