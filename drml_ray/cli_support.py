"""What every ``drml`` command shares: a user's mistake or the file system's refusal as one line (exit 2), a bug
with its traceback (exit 1), Ctrl+C of a run that can resume (exit 130), a reader that stopped reading (``drml
predict ... | head``: exit 141, as a process that SIGPIPE ends); and the check of a file the command writes."""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from drml_ray.errors import RunInterrupted, UserError
from drml_ray.signals import exit_on_next_signal


def log_to_stderr(level: int) -> None:
    """drml's own log lines on stderr as ``[drml] ...``. The Hugging Face Hub's (a download retrying) keep theirs,
    printed once: its logger has a handler of its own, and the root's printed each line again under ``[drml]``."""
    logging.basicConfig(level=level, format="[drml] %(message)s", stream=sys.stderr)
    logging.getLogger("huggingface_hub").propagate = False


BUG_REPORT = "this is a bug in drml-ray, not in your input: please report it with the traceback above"
REFUSED = {errno.EACCES: "no permission", errno.EPERM: "not permitted", errno.ENOSPC: "the disk is full",
           errno.EDQUOT: "the disk quota is used up", errno.EROFS: "a read-only file system"}  # fmt: skip
"""What the file system may refuse a command that is not drml's bug: the user frees space or fixes permissions."""


def user_errors(command: Callable[..., None]) -> Callable[..., None]:
    """A user's mistake prints as one line, exit 2, and so does the file system's refusal (:data:`REFUSED`: no
    permission, a full disk) naming the file; Ctrl+C of a run that can resume, exit 130; a bug keeps its traceback,
    exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except UserError as err:
            typer.secho(f"drml: error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except RunInterrupted as err:
            typer.secho(f"drml: interrupted: {err}", fg=typer.colors.YELLOW, err=True)
            exit_on_next_signal(130)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            typer.secho("drml: interrupted (Ctrl+C or SIGTERM): what finished is kept; the same command "
                        "continues from the last checkpoint (drml tune: add --resume)", fg=typer.colors.YELLOW,
                        err=True)  # fmt: skip
            exit_on_next_signal(130)
            raise typer.Exit(130) from None
        except BrokenPipeError:  # whoever read the output has gone (`| head`): nothing more to say to anyone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's last flush would fail too)
            raise typer.Exit(141) from None
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except Exception as err:
            if isinstance(err, OSError) and err.errno in REFUSED:  # the file system's limits, not a bug
                where = f"{err.filename}: " if err.filename else ""
                typer.secho(f"drml: error: {where}{REFUSED[err.errno]} ({err.strerror}); free space or fix the "
                            "permissions, then run the same command again", fg=typer.colors.RED, err=True)  # fmt: skip
                raise typer.Exit(2) from None
            traceback.print_exc()
            typer.secho(f"drml: internal error: {BUG_REPORT}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper


def file_to_write(path: Path, example: str, inputs: Sequence[Path] = ()) -> None:
    """Refuse a folder where a command writes one file, or a path below a file, before the work (nothing is made
    yet): each would fail as a bug (an ``IsADirectoryError``, a ``NotADirectoryError``) at the end. What the
    command reads (``inputs``: files and folders) is refused too: ``--overwrite`` would replace an input file, and a
    file written into an input folder (a model's, a folder of Parquet files) would be read with it next time."""
    for source in inputs:
        if source.is_file() and path.is_file() and path.samefile(source):
            raise UserError(f"{path}: the input file itself; name another file to write (--overwrite would replace "
                            "it)")  # fmt: skip
        if source.is_dir() and path.resolve().is_relative_to(source.resolve()):
            raise UserError(f"{path}: inside {source}, which this command reads; write it elsewhere")
    if path.is_dir():
        raise UserError(f"{path}: a folder; name the file to write, e.g. {path / example}")
    above = next(p for p in path.absolute().parents if p.exists())
    if not above.is_dir():
        raise UserError(f"{path}: cannot make its folder {path.parent} ({above} is a file)")


SET_HELP = "Override a config key: --set train.epochs=3, or keys of a section: --set 'train={epochs: 3, lr: 1.0e-4}'."
SetOption = Annotated[list[str] | None, typer.Option("--set", help=f"{SET_HELP} Repeatable.")]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        help="WORD,TAG: the columns holding the word and the tag: a CoNLL file's counted from 1 (GermEval's outer "
        "entities: 2,3; default: the first and the last, or the layout the file shows), a Parquet file's by name "
        "(Few-NERD's fine types: tokens,fine_ner_tags; default: tokens and tags or ner_tags)."
    ),
]


def parse_columns(text: str | None) -> tuple[int, int] | tuple[str, str] | None:
    """``--columns 2,3`` as the columns counted from 0, ``(1, 2)``; ``--columns words,labels`` as names: the rules
    and the conversion of ``data.columns`` (:data:`~drml_ray.config.ColumnPair`)."""
    from drml_ray.config import column_pair, reader_columns

    if text is None:
        return None
    pair: list[int | str] = [int(part) if part.isdigit() else part for part in map(str.strip, text.split(","))]
    try:
        return reader_columns(column_pair(pair))
    except ValueError:
        raise UserError(f"--columns {text}: give the word's and the tag's column, counted from 1 (e.g. 2,3), or "
                        "named in a Parquet file (e.g. tokens,fine_ner_tags)") from None  # fmt: skip
