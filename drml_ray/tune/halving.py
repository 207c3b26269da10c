"""Synchronous successive halving: the bookkeeping, in plain Python (the Ray adapter is in ``space.py``).

Every trial trains to the first rung and waits there (Tune pauses it) until every trial has a score at
that rung; then the best ``1/reduction_factor`` of them continue to the next rung and the rest stop —
the rule of Jamieson & Talwalkar (2016) that ASHA (Li et al. 2020) makes asynchronous. ASHA never
waits: a trial reaching a rung continues when it is in the top ``1/reduction_factor`` of the scores
recorded there *so far*, so the first arrivals always continue. With dozens of trials per rung that
costs little; with a dozen (a grid of learning rate × strategy on two cores) the early arrivals'
free passes are a large part of the budget (BENCHMARKS.md, issue #4). Synchronous halving spends
exactly ``sum(n_k × (r_k - r_(k-1)))`` trial-epochs, at the price of idle workers while a rung
fills and a worker-group restart for every promoted trial.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from typing_extensions import TypedDict

from drml_ray.errors import UserError

Decision = Literal["continue", "pause", "stop"]


def halving_rungs(grace_period: float, reduction_factor: float, max_t: float) -> list[float]:
    """The epochs at which trials are compared: ``grace × rf^k`` below ``max_t``.

    >>> halving_rungs(2, 4, 12)
    [2, 8]
    >>> halving_rungs(1, 3, 9)
    [1, 3]
    >>> halving_rungs(12, 4, 12)
    []
    """
    if grace_period <= 0 or reduction_factor <= 1:
        raise UserError(f"successive halving needs grace_period > 0 and reduction_factor > 1 "
                         f"(got {grace_period}, {reduction_factor})")  # fmt: skip
    rungs = []
    rung = grace_period
    while rung < max_t:
        rungs.append(rung)
        rung *= reduction_factor
    return rungs


class HalvingState(TypedDict):
    """``sha_state.json``, as :meth:`SuccessiveHalving.to_dict` writes it (checked when ``--resume`` reads it)."""

    num_trials: int
    rungs: list[float]
    reduction_factor: float
    mode: Literal["max", "min"]
    scores: list[dict[str, float]]
    ended: list[list[str]]
    promoted: list[list[str] | None]


@dataclass
class SuccessiveHalving:
    """Rung bookkeeping for ``num_trials`` trials; every decision is a pure function of the scores."""

    num_trials: int
    rungs: list[float]
    reduction_factor: float
    mode: Literal["max", "min"] = "max"
    scores: list[dict[str, float]] = field(init=False)
    """Per rung: the trials that reached it and their metric there (in arrival order)."""
    ended: list[set[str]] = field(init=False)
    """Per rung: trials that were due there but ended before it (early stopping, an error)."""
    promoted: list[list[str] | None] = field(init=False)
    """Per rung: the trials that continue past it, best first; ``None`` while the rung fills."""

    def __post_init__(self) -> None:
        self.scores = [{} for _ in self.rungs]
        self.ended = [set() for _ in self.rungs]
        self.promoted = [None for _ in self.rungs]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (``drml tune --resume`` reads it back with :meth:`from_dict`)."""
        return asdict(self) | {"ended": [sorted(e) for e in self.ended]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuccessiveHalving:
        """
        >>> h = SuccessiveHalving(4, [1, 2], 2)
        >>> h.scores[0]["a"], h.promoted[0] = 0.5, ["a"]
        >>> h.ended[1].add("b")
        >>> SuccessiveHalving.from_dict(h.to_dict()) == h
        True
        """
        halving = cls(data["num_trials"], data["rungs"], data["reduction_factor"], data["mode"])
        halving.scores, halving.promoted = data["scores"], data["promoted"]
        halving.ended = [set(e) for e in data["ended"]]
        return halving

    def due(self, k: int) -> int | None:
        """How many trials rung ``k`` waits for (``None`` while the rung below is undecided)."""
        if k == 0:
            return self.num_trials
        below = self.promoted[k - 1]
        return None if below is None else len(below)

    def keep(self, k: int) -> int:
        """How many of rung ``k``'s trials continue: ``due / reduction_factor``, at least one.

        >>> SuccessiveHalving(12, [2, 8], 4).keep(0)
        3
        >>> SuccessiveHalving(3, [2, 8], 4).keep(0)
        1
        """
        due = self.due(k)
        assert due is not None
        return max(1, math.floor(due / self.reduction_factor))

    def _candidate(self, trial_id: str, k: int) -> bool:
        return k == 0 or trial_id in (self.promoted[k - 1] or ())

    def on_result(self, trial_id: str, t: float, score: float) -> Decision:
        """The decision for a trial that reports ``score`` after ``t`` epochs."""
        for k, rung in enumerate(self.rungs):
            if t < rung:
                break
            if trial_id not in self.scores[k]:
                if not self._candidate(trial_id, k):  # cannot happen with a correct caller
                    return "stop"
                self.scores[k][trial_id] = score if score == score else -math.inf * self._sign  # NaN: worst
                self._decide_from(k)
            decided = self.promoted[k]
            if decided is None:
                return "pause"
            if trial_id not in decided:
                return "stop"
        return "continue"

    def on_end(self, trial_id: str) -> None:
        """A trial ended (completed, stopped, errored): rungs it was due at no longer wait for it."""
        for k in range(len(self.rungs)):
            if self.promoted[k] is None and self._candidate(trial_id, k) and trial_id not in self.scores[k]:
                self.ended[k].add(trial_id)
                self._decide_from(k)
                return

    @property
    def _sign(self) -> int:
        return 1 if self.mode == "max" else -1

    def _decide_from(self, k: int) -> None:
        """Decide rung ``k`` once every trial due there has a score or has ended, then the rungs above
        (a rung whose trials all ended decides at once, with no one promoted)."""
        while k < len(self.rungs) and self.promoted[k] is None:
            due = self.due(k)
            if due is None or len(self.scores[k]) + len(self.ended[k]) < due:
                return
            scores = self.scores[k]
            ranked = sorted(scores, key=lambda tid: -self._sign * scores[tid])  # stable: ties keep arrival order
            self.promoted[k] = ranked[: self.keep(k)]
            k += 1

    def close_first_rung(self) -> None:
        """The search produced fewer trials than ``num_trials``: decide the first rung with those there."""
        self.num_trials = len(self.scores[0]) + len(self.ended[0])
        self._decide_from(0)

    def waiting(self) -> set[str]:
        """Trials paused at a rung that has not decided yet."""
        return {tid for k, decided in enumerate(self.promoted) if decided is None for tid in self.scores[k]}

    def _verdict(self, trial_id: str) -> bool | None:
        """At the highest rung the trial reached: promoted (True), dropped (False), or no verdict yet."""
        reached = [k for k in range(len(self.rungs)) if trial_id in self.scores[k]]
        decided = self.promoted[reached[-1]] if reached else None
        return None if decided is None else trial_id in decided

    def promoted_waiting(self, trial_id: str) -> bool:
        """Whether a trial that reached rungs is promoted past the highest one it reached."""
        return self._verdict(trial_id) is True

    def dropped(self, trial_id: str) -> bool:
        """Whether the highest rung a trial reached has decided against it."""
        return self._verdict(trial_id) is False

    def trial_epochs(self, max_t: float) -> float:
        """The budget synchronous halving spends when no trial ends early: ``sum_k due_k × (r_k - r_(k-1))``.

        >>> SuccessiveHalving(12, [2, 8], 4).trial_epochs(12)
        46
        """
        total, previous, due = 0, 0, self.num_trials
        for rung in [*self.rungs, max_t]:
            total += due * (rung - previous)
            previous, due = rung, max(1, math.floor(due / self.reduction_factor))
        return total
