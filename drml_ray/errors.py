"""The two kinds of failure ``drml`` tells apart.

A :class:`UserError` is a mistake in what the user handed in (a config key, a corpus line, a path, a
run directory): raised where that input is validated, it prints as one line naming the file, line
and field, and ``drml`` exits with status 2. Anything else is a bug in drml-ray: it keeps its
traceback, and ``drml`` exits with status 1 and asks for a report.
"""

from __future__ import annotations

import re


class UserError(Exception):
    """A mistake in the user's input; the message says where and what to do."""


def user_error_in(err: BaseException | None) -> UserError | None:
    """The :class:`UserError` that ``err`` wraps, or ``None``: Ray's error of a task that raised one holds it as
    ``cause``, Python's chain (``raise ... from``) as ``__cause__``, and the error of an actor that died raising one
    in its ``__init__`` (a Ray Data actor that loads a model) only as its traceback's last line.

    >>> user_error_in(RuntimeError("The actor died ...\\n  File x\\ndrml_ray.errors.UserError: m: no labels"))
    UserError('m: no labels')
    >>> user_error_in(RuntimeError("KeyError: 'dev_f1'")) is None
    True
    """
    chain: list[BaseException] = []
    while err is not None and all(err is not seen for seen in chain):
        chain.append(err)
        err = getattr(err, "cause", None) or err.__cause__  # (not __context__: a bug raised while handling one)
    for link in chain:  # (the exception itself first: its whole message)
        if isinstance(link, UserError) and type(link).__module__.startswith("drml_ray"):
            return UserError(str(link))
    for link in chain:
        told = re.findall(r"^drml_ray\.errors\.[A-Za-z]*Error: (.+)$", str(link), re.MULTILINE)
        if told:
            return UserError(told[-1])
    return None


def first_line(err: BaseException) -> str:
    """An exception's first line, for a one-line user error that wraps a library's message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class RunExistsError(UserError):
    """The output directory holds a finished run (or one of another config) and ``--overwrite`` was not given."""


class RunInterrupted(RuntimeError):
    """The run stopped before its end (Ctrl+C): what ran is kept, and running it again continues it."""
