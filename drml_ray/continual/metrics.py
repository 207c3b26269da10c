"""Continual-learning metrics from the matrix R, in plain Python (no torch, no Ray).

``R[i][j]`` is the test entity micro F1 on experience ``j`` after training on experiences ``0..i``
(GEM, Lopez-Paz & Ranzato 2017). ``baseline[j]`` is the F1 of the starting model on experience ``j``
before any training (GEM's ``b_j``). With ``T`` experiences::

    average F1  = mean_j R[T-1][j]
    BWT         = mean_{j < T-1} (R[T-1][j] - R[j][j])       (negative: forgetting)
    FWT         = mean_{j > 0}   (R[j-1][j] - baseline[j])   (positive: earlier experiences helped)
    forgetting_j = R[j][j] - R[T-1][j]  for j < T-1          (Avalanche's experience forgetting)

A hand-made R for three experiences:

>>> R = [[0.8, 0.1, 0.0], [0.6, 0.7, 0.2], [0.5, 0.6, 0.9]]
>>> round(average_f1(R), 4), round(bwt(R), 4), round(fwt(R, [0.0, 0.05, 0.1]), 4)
(0.6667, -0.2, 0.075)
>>> [round(f, 4) for f in forgetting(R)]
[0.3, 0.1]
"""

from __future__ import annotations

from collections.abc import Sequence

Matrix = Sequence[Sequence[float]]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def average_f1(R: Matrix) -> float:
    """Mean F1 over every experience after the last one."""
    return sum(R[-1]) / len(R[-1])


def bwt(R: Matrix) -> float | None:
    """Backward transfer: how training on later experiences changed the earlier ones (``None`` for one)."""
    last = len(R) - 1
    return _mean([R[last][j] - R[j][j] for j in range(last)])


def fwt(R: Matrix, baseline: Sequence[float]) -> float | None:
    """Forward transfer: F1 on an experience before training on it, against the starting model's."""
    return _mean([R[j - 1][j] - baseline[j] for j in range(1, len(R))])


def forgetting(R: Matrix) -> list[float]:
    """Per experience but the last: its F1 just after training on it minus its F1 at the end."""
    last = len(R) - 1
    return [R[j][j] - R[last][j] for j in range(last)]


def summary(R: Matrix, baseline: Sequence[float]) -> dict[str, float | list[float] | None]:
    """Everything ``continual.json`` records from one strategy's R."""
    per = forgetting(R)
    return {"acc": average_f1(R), "bwt": bwt(R), "fwt": fwt(R, baseline), "forgetting": per,
            "mean_forgetting": _mean(per)}  # fmt: skip
