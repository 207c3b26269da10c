"""Run directories and atomic writes.

A run directory is ``runs/<experiment name>`` unless ``--output-dir`` says otherwise; names carry
no timestamps, so the same config always lands in the same place. A run is *finished* once its
``results.json`` exists: it is never overwritten without ``--overwrite``. An unfinished run
directory is resumed from its latest checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

FINISHED_MARKER = "results.json"


class RunExistsError(FileExistsError):
    """The output directory holds a finished run and ``--overwrite`` was not given."""


class RunInterrupted(RuntimeError):
    """The run stopped before its end (Ctrl+C): what ran is kept, and ``--resume`` continues it."""


def default_run_dir(name: str) -> Path:
    """``runs/<name>`` under the current folder."""
    return Path("runs") / name


def prepare_run_dir(run_dir: str | os.PathLike[str], *, overwrite: bool, marker: str = FINISHED_MARKER) -> Path:
    """Create ``run_dir`` (absolute) for a new or resumed run.

    A finished run (``marker`` present) raises :class:`RunExistsError` unless ``overwrite``, in which
    case the directory is emptied first. Anything else already there is kept, so an interrupted
    run can resume from its checkpoints.
    """
    path = Path(run_dir).expanduser().resolve()
    if (path / marker).exists():
        if not overwrite:
            raise RunExistsError(
                f"{path} holds a finished run ({marker} exists); pass --overwrite to replace it "
                "or --output-dir to write elsewhere"
            )
        shutil.rmtree(path)
    elif overwrite and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


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
