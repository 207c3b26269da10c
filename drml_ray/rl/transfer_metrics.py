"""Transfer metrics of Taylor & Stone (2009, JMLR 10) over learning curves.

A curve is the mean episode return after each training iteration (index 0: before any training).
``transfer`` is the curve of a learner that starts from a source task's weights, ``scratch`` the
curve of one that starts from random weights, on the same target task:

- jumpstart: ``transfer[0] - scratch[0]``, the initial gain;
- asymptotic: the mean of the last ``tail`` points of each curve, and their difference;
- time to threshold: the first iteration whose return reaches ``threshold`` (``None`` if never), for
  each curve, and the iterations saved ``scratch - transfer``;
- total-reward ratio: ``(A_transfer - A_scratch) / A_scratch``, A the area under the curve above
  ``floor`` (returns can be negative, e.g. Pendulum; ``floor`` defaults to the lowest point of
  either curve, so both areas are non-negative).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def time_to_threshold(curve: Sequence[float], threshold: float) -> int | None:
    """First index whose value reaches ``threshold``.

    >>> time_to_threshold([0, 5, 9, 12], 9), time_to_threshold([0, 1], 9)
    (2, None)
    """
    return next((i for i, value in enumerate(curve) if value >= threshold), None)


def area(curve: Sequence[float], floor: float) -> float:
    """Area between the curve and ``floor``, by the trapezoid rule over unit steps."""
    shifted = [v - floor for v in curve]
    return sum((a + b) / 2 for a, b in zip(shifted, shifted[1:], strict=False))


def transfer_metrics(
    transfer: Sequence[float], scratch: Sequence[float], *, threshold: float, tail: int = 3,
    floor: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The four metrics for one pair of curves of the same length."""
    if len(transfer) != len(scratch) or len(transfer) < 2:
        raise ValueError(f"curves must have the same length >= 2 (got {len(transfer)} and {len(scratch)})")
    floor = min(min(transfer), min(scratch)) if floor is None else floor
    tail = min(tail, len(transfer))
    asym_t, asym_s = sum(transfer[-tail:]) / tail, sum(scratch[-tail:]) / tail
    ttt_t, ttt_s = time_to_threshold(transfer, threshold), time_to_threshold(scratch, threshold)
    area_t, area_s = area(transfer, floor), area(scratch, floor)
    return {
        "jumpstart": transfer[0] - scratch[0],
        "asymptotic": {"transfer": asym_t, "scratch": asym_s, "gain": asym_t - asym_s},
        "time_to_threshold": {
            "threshold": threshold, "transfer": ttt_t, "scratch": ttt_s,
            "saved": None if ttt_t is None or ttt_s is None else ttt_s - ttt_t,
        },
        "total_reward_ratio": (area_t - area_s) / area_s if area_s else float("inf") if area_t else 0.0,
    }  # fmt: skip
