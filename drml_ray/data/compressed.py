"""Text files read as they are or through gzip, bzip2 or xz, told by their first bytes (``train.conll.gz`` as the
CoNLL-2002 and WikiANN releases ship them, whatever the file's name), as pandas and ``datasets`` read them."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO, TextIO

_MAGIC = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
"""First bytes of a compressed file and what opens it (bzip2's ``BZh`` is followed by a block size, 1 to 9)."""

DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError)
"""What reading a damaged or truncated compressed file raises (gzip's and bzip2's errors are ``OSError``)."""


class ArchiveError(ValueError):
    """An archive (zip, tar: several files) given where one text file is read."""


def open_text(path: str | os.PathLike[str]) -> TextIO:
    """``path`` opened as UTF-8 text, a byte-order mark dropped and CR LF read as LF, decompressed where its
    first bytes are gzip's, bzip2's or xz's; :class:`ArchiveError` for a zip or tar archive."""
    return _opener(path)(path, "rt", encoding="utf-8-sig")  # type: ignore[operator]


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """``path``'s bytes, decompressed as :func:`open_text` decompresses them."""
    return _opener(path)(path, "rb")  # type: ignore[operator]


def _opener(path: str | os.PathLike[str]) -> Callable[..., IO]:
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"PK\x03\x04"):
        raise ArchiveError("a zip archive: unpack it (unzip) and name the file inside")
    opener = next((o for magic, o in _MAGIC.items() if head.startswith(magic) and (
        magic != b"BZh" or b"1" <= head[3:4] <= b"9")), open)  # fmt: skip
    with opener(path, "rb") as raw:  # type: ignore[operator]
        if raw.read(_TAR_MAGIC.stop)[_TAR_MAGIC] == b"ustar":
            raise ArchiveError("a tar archive: unpack it (tar xf) and name the file inside")
    return opener  # type: ignore[return-value]


COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")


def plain_suffix(path: str | os.PathLike[str]) -> str:
    """The suffix of ``path``'s name without a compression suffix, lowercase: ``train.jsonl.gz`` -> ``.jsonl``."""
    name = Path(path).name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return Path(name).suffix


_TAR_MAGIC = slice(257, 262)
"""Where a tar archive's first header says ``ustar``."""


def unreadable(err: BaseException) -> str:
    """What a :data:`DECOMPRESS_ERRORS` error says of the file."""
    if isinstance(err, OSError) and err.strerror:
        return f"cannot read it ({err.strerror})"
    return f"compressed, but it does not decompress ({err or 'truncated'})"
