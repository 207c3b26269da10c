"""The YAML search space (``tune.space``) as Ray Tune domains, and the scheduler it names."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ray import tune  # RAY
from ray.tune.experiment import Trial  # RAY
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler  # RAY
from ray.tune.search.basic_variant import BasicVariantGenerator  # RAY

from drml_ray._ray_compat import asha_rungs, live_trials, set_asha_rungs
from drml_ray.config import Distribution, TuneSettings
from drml_ray.errors import UserError
from drml_ray.runtime.runfiles import atomic_write_json, damaged, read_json
from drml_ray.tune.halving import HalvingState, SuccessiveHalving, halving_rungs


def is_grid(dist: Distribution, *, as_grid: bool = False) -> bool:
    """Whether Tune runs every value of ``dist``: a ``grid``, or a ``choice`` under ``search: grid``."""
    return dist.kind == "grid" or (dist.kind == "choice" and as_grid)


def to_domain(dist: Distribution, *, as_grid: bool = False) -> Any:
    """One ``{kind: args}`` mapping as a Tune domain; ``as_grid`` turns ``choice`` into a grid (``search: grid``)."""
    kind, args = dist.kind, dist.args
    if is_grid(dist, as_grid=as_grid):
        return tune.grid_search(list(args))
    if kind == "choice":
        return tune.choice(list(args))
    if kind == "loguniform":
        return tune.loguniform(*args)
    if kind == "uniform":
        return tune.uniform(*args)
    return tune.randint(*args)


def pbt_mutation(dist: Distribution) -> Any:
    """How PBT may change one key: a ``choice``/``grid`` as the list it moves along (a neighbour or a new
    draw), not a domain it would multiply by 0.8 or 1.2 (a strategy name, an unset ``train.head_lr``).

    >>> from drml_ray.config import TuneSettings
    >>> space = {"train.head_lr": {"choice": [None, 3e-3]}, "train.lr": {"loguniform": [1e-5, 1e-3]}}
    >>> [type(pbt_mutation(d)).__name__ for d in TuneSettings.model_validate({"space": space}).space.values()]
    ['list', 'Float']
    """
    return list(dist.args) if dist.kind in ("choice", "grid") else to_domain(dist)


def param_space(settings: TuneSettings) -> dict[str, Any]:
    """``{"train.lr": tune.loguniform(...), ...}``: flat dotted keys, applied to the config by each trial."""
    return {key: to_domain(dist, as_grid=settings.search == "grid") for key, dist in settings.space.items()}


def expected_trials(settings: TuneSettings) -> int:
    """How many trials the search runs: every grid combination, ``num_samples`` times unless ``search: grid``.

    >>> from drml_ray.config import TuneSettings
    >>> space = {"train.lr": {"grid": [1e-4, 2e-4, 4e-4]}, "model.strategy": {"choice": ["full", "lora"]}}
    >>> expected_trials(TuneSettings.model_validate({"space": space, "search": "grid"}))
    6
    >>> expected_trials(TuneSettings.model_validate({"space": space, "search": "random", "num_samples": 4}))
    12
    """
    as_grid = settings.search == "grid"
    grids = [len(d.args) for d in settings.space.values() if is_grid(d, as_grid=as_grid)]
    return math.prod(grids) * (1 if as_grid else settings.num_samples)


ASHA_STATE_FILE = "asha_state.json"


RESTART_HALVING = "remove it to restart the halving"

AshaRungs = list[list[dict[str, float]]]
"""``asha_state.json``: per bracket, per rung, the scores recorded there (trial id -> score)."""


def read_asha_state(path: str, brackets: list[int]) -> AshaRungs:
    """ASHA's saved rungs (JSON, never unpickled, since a run directory may come from elsewhere), checked against
    the scheduler's ``brackets`` (the number of rungs in each)."""
    rungs = read_json(path, list, schema=AshaRungs, fix=RESTART_HALVING)
    if [len(bracket) for bracket in rungs] != brackets:
        raise damaged(path, f"rungs per bracket {[len(b) for b in rungs]}, the search has {brackets}", RESTART_HALVING)
    return rungs


def read_halving_state(path: str) -> SuccessiveHalving:
    """Successive halving's saved bookkeeping, checked (:class:`~drml_ray.tune.halving.HalvingState`)."""
    data = read_json(path, schema=HalvingState, fix=RESTART_HALVING)
    rungs = len(data["rungs"])
    if any(len(data[key]) != rungs for key in ("scores", "ended", "promoted")):
        raise damaged(path, f"scores, ended and promoted must each hold one entry per rung ({rungs})", RESTART_HALVING)
    return SuccessiveHalving.from_dict(data)


class ResumableASHA(ASHAScheduler):
    """ASHA that keeps the scores recorded at its rungs across ``drml tune --resume``.

    ``Tuner.restore`` rebuilds the scheduler from the copy pickled when the search started, so plain
    ASHA forgets its rungs (ray-project/ray#30838) and lets whichever trial reaches a rung first after
    the restart continue. This one writes the scores at its rungs to ``state_path`` (JSON, atomically)
    after every result and reads them back on its first call after a restore.
    """

    def __init__(self, *args: Any, state_path: str | Path, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._state_path = str(state_path)
        self._state_read = False

    def _read_state_once(self) -> None:
        if self._state_read:
            return
        self._state_read = True
        if os.path.exists(self._state_path):
            set_asha_rungs(self, read_asha_state(self._state_path, [len(b) for b in asha_rungs(self)]))
            recorded = sum(len(scores) for bracket in asha_rungs(self) for scores in bracket)
            print(f"[drml] ASHA: {recorded} score(s) at its rungs restored from {self._state_path}", flush=True)

    def _write_state(self) -> None:
        atomic_write_json(self._state_path, asha_rungs(self))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._read_state_once()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._read_state_once()
        decision = super().on_trial_result(tune_controller, trial, result)
        self._write_state()
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._read_state_once()
        super().on_trial_complete(tune_controller, trial, result)
        self._write_state()


SHA_STATE_FILE = "sha_state.json"
_PAUSED_AT_RUNGS: dict[str, set[str]] = {}
"""Per search (keyed by its state file): trials paused at an undecided rung. The scheduler fills it and
the trial generator reads it, in the driver process; a module-level table rather than a shared object
because ``Tuner.restore`` unpickles the scheduler and the generator separately."""


class SyncHalvingScheduler(FIFOScheduler):
    """Synchronous successive halving on Tune (``scheduler: {type: sha}``): a trial reaching a rung is
    paused until every trial due there has a score, then the best ``1/reduction_factor`` resume.

    A paused finetune trial costs nothing but its folder: when Tune runs it again, Ray Train resumes
    from the rung's checkpoint. At most ``max_concurrent`` trials run at once; paused trials do not
    count (the generator below starts new ones in their place). The bookkeeping
    (:class:`~drml_ray.tune.halving.SuccessiveHalving`) is written to ``state_path`` after every
    change, so ``--resume`` continues the same halving.
    """

    def __init__(self, *, num_trials: int, max_t: float, grace_period: float, reduction_factor: float,
                 max_concurrent: int, state_path: str | Path, time_attr: str = "epoch"):  # fmt: skip
        super().__init__()
        self.halving = SuccessiveHalving(num_trials, halving_rungs(grace_period, reduction_factor, max_t),
                                         reduction_factor)  # fmt: skip
        self.max_concurrent = max_concurrent
        self.time_attr = time_attr
        self._state_path = str(state_path)
        self._state_read = False
        self._metric: str | None = None
        self._stopping: set[str] = set()

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._metric = metric or self._metric
        if mode in ("max", "min"):
            self.halving.mode = mode
        return True

    # -- state across --resume ------------------------------------------------------------------------

    def _read_state_once(self) -> None:
        if self._state_read:
            return
        self._state_read = True
        if os.path.exists(self._state_path):
            self.halving = read_halving_state(self._state_path)
            scored = sum(len(r) for r in self.halving.scores)
            print(f"[drml] successive halving: {scored} score(s) at its rungs restored from {self._state_path}",
                  flush=True)  # fmt: skip
        self._share_waiting()

    def _share_waiting(self) -> None:
        _PAUSED_AT_RUNGS[self._state_path] = self.halving.waiting()

    def _changed(self, tune_controller: Any) -> None:
        """Persist, publish the waiting set, and stop the paused trials a rung's decision dropped."""
        atomic_write_json(self._state_path, self.halving.to_dict())
        self._share_waiting()
        self._stop_dropped(tune_controller)

    def _stop_dropped(self, tune_controller: Any) -> None:
        # (Tune calls on_trial_remove from stop_trial before the status changes: stop each one once)
        for trial in tune_controller.get_trials():
            tid = trial.trial_id
            if trial.status == Trial.PAUSED and tid not in self._stopping and self.halving.dropped(tid):
                self._stopping.add(tid)
                tune_controller.stop_trial(trial)

    # -- Tune's scheduler interface -------------------------------------------------------------------

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._read_state_once()
        # --resume requeues every unfinished trial as PENDING, and Tune starts every PENDING trial: one
        # that had reached a rung waits again (PAUSED) and runs when its rung promotes it, as before.
        if trial.status == Trial.PENDING and any(trial.trial_id in scored for scored in self.halving.scores):
            trial.set_status(Trial.PAUSED)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._read_state_once()
        if self.time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        decision = self.halving.on_result(trial.trial_id, float(result[self.time_attr]), float(result[self._metric]))
        self._changed(tune_controller)
        return {"continue": TrialScheduler.CONTINUE, "pause": TrialScheduler.PAUSE,
                "stop": TrialScheduler.STOP}[decision]  # fmt: skip

    def _ended(self, tune_controller: Any, trial: Any) -> None:
        self._read_state_once()
        self.halving.on_end(trial.trial_id)
        self._changed(tune_controller)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._ended(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._ended(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._ended(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """New trials first (the generator limits them); then paused trials their rung promoted, while
        fewer than ``max_concurrent`` run. A trial paused at an undecided rung is never chosen."""
        trials = tune_controller.get_trials()
        for trial in trials:
            if trial.status == Trial.PENDING:
                return trial
        self._stop_dropped(tune_controller)  # paused trials a rung dropped (after --resume: requeued ones)
        running = sum(t.status == Trial.RUNNING for t in trials)
        if running >= self.max_concurrent:
            return None
        h = self.halving
        if not running and h.promoted[0] is None and tune_controller.search_alg.is_finished():
            h.close_first_rung()  # every trial there is, is at the first rung: do not wait for more
            self._changed(tune_controller)  # (also stops the trials it drops)
        for trial in trials:
            if trial.status == Trial.PAUSED and self.halving.promoted_waiting(trial.trial_id):
                return trial
        return None

    def debug_string(self) -> str:
        h = self.halving
        return "Successive halving: " + " | ".join(
            f"epoch {rung:g}: {len(h.scores[k])}/{h.due(k) if h.due(k) is not None else '?'} scored"
            for k, rung in enumerate(h.rungs)
        )


class HalvingVariantGenerator(BasicVariantGenerator):
    """Tune's random/grid generator for successive halving: ``max_concurrent`` counts running trials,
    not the ones paused at a rung (they hold no CPUs; with the plain limit the search would stall once
    ``max_concurrent`` trials wait at the first rung)."""

    def __init__(self, *args: Any, state_path: str | Path, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._state_path = str(state_path)

    def next_trial(self) -> Any:
        waiting = _PAUSED_AT_RUNGS.get(self._state_path, set())
        if self.max_concurrent > 0 and len(live_trials(self) - waiting) >= self.max_concurrent:
            return None
        limit, self.max_concurrent = self.max_concurrent, 0
        try:
            return super().next_trial()
        finally:
            self.max_concurrent = limit


def make_scheduler(
    settings: TuneSettings, max_epochs: int, state_dir: Path | None = None, max_concurrent: int = 1
) -> Any:
    """The Tune scheduler; every one counts time in (fractional) epochs as reported by the trials.

    With ``state_dir``, ASHA and successive halving keep their rungs there so that ``--resume``
    continues the same halving (successive halving needs it: its generator reads the rungs too).
    """
    from ray.tune.schedulers import (  # RAY
        HyperBandScheduler,
        MedianStoppingRule,
        PopulationBasedTraining,
    )

    s = settings.scheduler
    max_t = s.max_t or max_epochs
    if s.type == "asha":
        asha = dict(time_attr="epoch", max_t=max_t, grace_period=s.grace_period, reduction_factor=s.reduction_factor)
        if state_dir is None:
            return ASHAScheduler(**asha)
        return ResumableASHA(**asha, state_path=Path(state_dir).resolve() / ASHA_STATE_FILE)
    if s.type == "sha":
        if state_dir is None:
            raise ValueError("successive halving keeps its rungs in the run directory: pass state_dir")
        return SyncHalvingScheduler(num_trials=expected_trials(settings), max_t=max_t, grace_period=s.grace_period,
                                    reduction_factor=s.reduction_factor, max_concurrent=max_concurrent,
                                    state_path=Path(state_dir).resolve() / SHA_STATE_FILE)  # fmt: skip
    if s.type == "hyperband":
        return HyperBandScheduler(time_attr="epoch", max_t=max_t, reduction_factor=s.reduction_factor)
    if s.type == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=s.grace_period, min_samples_required=2)
    if s.type == "pbt":
        mutations = s.mutations or {
            key: dist for key, dist in settings.space.items() if dist.kind in ("loguniform", "uniform")
        }
        if not mutations:
            raise UserError("tune.scheduler.mutations: pbt needs at least one key to mutate")
        return PopulationBasedTraining(
            time_attr="epoch", perturbation_interval=s.perturbation_interval,
            hyperparam_mutations={key: pbt_mutation(dist) for key, dist in mutations.items()},
        )  # fmt: skip
    return FIFOScheduler()


def make_searcher(settings: TuneSettings, seed: int, max_concurrent: int, state_dir: Path | None = None) -> Any:
    """Random/grid sampling (seeded: the same file gives the same trials) or Optuna's TPE.

    Tune applies ``max_concurrent_trials`` to an Optuna searcher but not to its own variant
    generator, which takes the limit itself (under successive halving, not counting paused trials).
    """
    if settings.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch  # RAY

        return OptunaSearch(metric=settings.metric, mode=settings.mode, seed=seed)
    if settings.scheduler.type == "sha":
        if state_dir is None:
            raise ValueError("successive halving keeps its rungs in the run directory: pass state_dir")
        return HalvingVariantGenerator(random_state=seed, max_concurrent=max_concurrent,
                                       state_path=Path(state_dir).resolve() / SHA_STATE_FILE)  # fmt: skip
    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)
