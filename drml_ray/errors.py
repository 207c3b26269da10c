"""The two kinds of failure ``drml`` tells apart.

A :class:`UserError` is a mistake in what the user handed in (a config key, a corpus line, a path, a
run directory): raised where that input is validated, it prints as one line naming the file, line
and field, and ``drml`` exits with status 2. Anything else is a bug in drml-ray: it keeps its
traceback, and ``drml`` exits with status 1 and asks for a report.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; the message says where and what to do."""


def first_line(err: BaseException) -> str:
    """An exception's first line, for a one-line user error that wraps a library's message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class RunExistsError(UserError):
    """The output directory holds a finished run (or one of another config) and ``--overwrite`` was not given."""


class RunInterrupted(RuntimeError):
    """The run stopped before its end (Ctrl+C): what ran is kept, and running it again continues it."""
