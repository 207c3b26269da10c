"""Words for what drml prints."""

from __future__ import annotations


def counted(n: float, noun: str) -> str:
    """``n`` with ``noun``, plural unless ``n`` is 1.

    >>> counted(1, "demonstration"), counted(16, "demonstration"), counted(0.5, "CPU"), counted(1, "Ray actor")
    ('1 demonstration', '16 demonstrations', '0.5 CPUs', '1 Ray actor')
    """
    return f"{n:g} {noun}{'' if n == 1 else 's'}"
