"""The files a run directory holds, written and read back: atomically written text and JSON, a finished folder moved
into place, and result files read with their fields checked (a file edited by hand or cut short is a
:class:`~drml_ray.errors.UserError` naming it and the first wrong field, not a bug)."""

from __future__ import annotations

import bz2
import functools
import gzip
import json
import lzma
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drml_ray.errors import UserError, first_line

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": functools.partial(gzip.compress, mtime=0), ".bz2": bz2.compress, ".xz": lzma.compress,
}  # fmt: skip
"""How a file named ``.gz``, ``.bz2`` or ``.xz`` is written (as pandas infers it): compressed, so that ``zcat`` and
every other reader of the name read it (drml reads files by their first bytes, compressed or not)."""


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` through a temporary file in the same folder and a rename, compressed
    where the name says so (:data:`COMPRESSORS`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    compress = COMPRESSORS.get(path.suffix.lower(), bytes)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(compress(text.encode("utf-8")))
        with_umask(tmp)  # (mkstemp creates 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def with_umask(*paths: str | os.PathLike[str]) -> None:
    """Give files (a folder: the files in it) the permissions the umask gives a new file: written through a
    temporary file (``mkstemp``, safetensors' ``save_file`` and so ``save_pretrained``), they are the owner's
    alone (0600), and a model another user serves or reads (a shared folder, Ray Serve as another user) fails."""
    mask = os.umask(0)
    os.umask(mask)
    for path in map(Path, paths):
        for file in path.iterdir() if path.is_dir() else [path]:
            if file.is_file():
                os.chmod(file, 0o666 & ~mask)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


RERUN = "restore it, or run again with --overwrite"
"""What to do about a damaged file that only a run writes (:func:`damaged`)."""
MEASURE_AGAIN = "restore it, or delete it to measure its cells again"
"""What to do about a damaged file of cells that a command fills and keeps (``meta_eval.json``, ``irl_cells.json``)."""


_NO_DEFAULT: Any = object()


def read_json(path: str | os.PathLike[str], shape: type[dict] | type[list] = dict, schema: Any = None,
              fix: str = RERUN, default: Any = _NO_DEFAULT) -> Any:  # fmt: skip
    """A JSON object (or, with ``shape=list``, array) drml wrote into a run directory; one that no longer parses,
    or holds something else (edited by hand, cut short by something other than drml), is a :class:`UserError`
    naming it, not a bug in drml-ray. With ``schema`` (a type pydantic validates, such as a ``TypedDict`` of
    ``typing_extensions``, the one pydantic takes on Python 3.11) the fields a reader uses are checked too
    (:func:`check_json`). ``fix`` says what to do about a damaged file; ``default`` is returned when there is no
    file (a file that a command fills as it goes)."""
    path = Path(path)
    if default is not _NO_DEFAULT and not path.exists():
        return default
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # (JSONDecodeError and UnicodeDecodeError are ValueErrors)
        data, why = None, first_line(err)
    else:
        found = type(data).__name__ if data is not None else "null"
        why = f"a JSON {found}, not {'an object' if shape is dict else 'a list'}"
    if not isinstance(data, shape):
        raise damaged(path, why, fix)
    return data if schema is None else check_json(data, schema, path, fix=fix)


def damaged(where: str | os.PathLike[str], why: str, fix: str = RERUN) -> UserError:
    """The error for a run file that is not what drml wrote there: edited by hand, or cut short by something else."""
    return UserError(f"{where}: damaged, not the JSON drml wrote ({why}); {fix}")


def check_json(data: Any, schema: Any, path: str | os.PathLike[str], where: str = "", fix: str = RERUN) -> Any:
    """``data`` (read from ``path``, at ``where`` inside it) if it has ``schema``'s fields and types (strictly: no
    string for a number), else a :class:`UserError` naming the file and the first wrong field. Keys ``schema`` does
    not name are kept, and ``data`` is returned as read.

    >>> from typing_extensions import TypedDict
    >>> class Score(TypedDict):
    ...     f1: float
    >>> check_json({"dev": {"f1": 1, "n": 3}}, dict[str, Score], "results.json")
    {'dev': {'f1': 1, 'n': 3}}
    >>> check_json({"dev": {"f1": "0.9"}}, dict[str, Score], "results.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    drml_ray.errors.UserError: results.json: damaged, not the JSON drml wrote (at dev.f1: Input should be a ...); ...
    """
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(schema).validate_python(data, strict=True)
    except ValidationError as err:
        first = err.errors()[0]
        at = ".".join(filter(None, [where, *(str(p) for p in first["loc"])])) or "its top level"
        raise damaged(path, f"at {at}: {first['msg']}", fix) from None
    return data


def replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a fully written ``tmp_dir`` into ``final_dir``, replacing an older one only at the end."""
    old = final_dir.with_name(f".{final_dir.name}.old")
    if final_dir.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old.exists():
        shutil.rmtree(old)
