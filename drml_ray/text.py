"""Words for what drml prints."""

from __future__ import annotations


def counted(n: float, noun: str) -> str:
    """``n`` with ``noun``, plural unless ``n`` is 1.

    >>> counted(1, "demonstration"), counted(16, "demonstration"), counted(0.5, "CPU"), counted(2.0, "GPU")
    ('1 demonstration', '16 demonstrations', '0.5 CPUs', '2 GPUs')
    >>> counted(1234567, "prediction")
    '1,234,567 predictions'
    """
    shown = f"{int(n):,}" if float(n).is_integer() else f"{n:g}"
    return f"{shown} {noun}{'' if n == 1 else 's'}"
