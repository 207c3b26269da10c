"""The YAML search space (``tune.space``) as Ray Tune domains, and the scheduler it names."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ray import tune  # RAY
from ray.tune.schedulers import ASHAScheduler  # RAY

from drml_ray.config import Distribution, TuneSettings


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


ASHA_STATE_FILE = "asha_state.pkl"


class ResumableASHA(ASHAScheduler):
    """ASHA that keeps the scores recorded at its rungs across ``drml tune --resume``.

    ``Tuner.restore`` rebuilds the scheduler from the copy pickled when the search started, so plain
    ASHA forgets its rungs (ray-project/ray#30838) and lets whichever trial reaches a rung first after
    the restart continue. This one writes its state to ``state_path`` after every result (atomically)
    and reads it back on its first call after a restore.
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
            self.restore(self._state_path)
            recorded = sum(len(r) for b in self._brackets for _, r in b._rungs)
            print(f"[drml] ASHA: {recorded} score(s) at its rungs restored from {self._state_path}", flush=True)

    def _write_state(self) -> None:
        tmp = f"{self._state_path}.tmp"
        self.save(tmp)
        os.replace(tmp, self._state_path)

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


def make_scheduler(settings: TuneSettings, max_epochs: int, state_dir: Path | None = None) -> Any:
    """The Tune scheduler; every one counts time in (fractional) epochs as reported by the trials.

    With ``state_dir``, ASHA keeps its rungs there so that ``--resume`` continues the same halving.
    """
    from ray.tune.schedulers import (  # RAY
        FIFOScheduler,
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
    if s.type == "hyperband":
        return HyperBandScheduler(time_attr="epoch", max_t=max_t, reduction_factor=s.reduction_factor)
    if s.type == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=s.grace_period, min_samples_required=2)
    if s.type == "pbt":
        mutations = s.mutations or {
            key: dist for key, dist in settings.space.items() if dist.kind in ("loguniform", "uniform")
        }
        if not mutations:
            raise ValueError("tune.scheduler.mutations: pbt needs at least one key to mutate")
        return PopulationBasedTraining(
            time_attr="epoch", perturbation_interval=s.perturbation_interval,
            hyperparam_mutations={key: to_domain(dist) for key, dist in mutations.items()},
        )  # fmt: skip
    return FIFOScheduler()


def make_searcher(settings: TuneSettings, seed: int, max_concurrent: int) -> Any:
    """Random/grid sampling (seeded: the same file gives the same trials) or Optuna's TPE.

    Tune applies ``max_concurrent_trials`` to an Optuna searcher but not to its own variant
    generator, which takes the limit itself.
    """
    if settings.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch  # RAY

        return OptunaSearch(metric=settings.metric, mode=settings.mode, seed=seed)
    from ray.tune.search.basic_variant import BasicVariantGenerator  # RAY

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)
