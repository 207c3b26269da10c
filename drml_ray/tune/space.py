"""The YAML search space (``tune.space``) as Ray Tune domains, and the scheduler it names."""

from __future__ import annotations

import math
from typing import Any

from ray import tune  # RAY

from drml_ray.config import Distribution, TuneSettings


def to_domain(dist: Distribution, *, as_grid: bool = False) -> Any:
    """One ``{kind: args}`` mapping as a Tune domain; ``as_grid`` turns ``choice`` into a grid (``search: grid``)."""
    kind, args = dist.kind, dist.args
    if kind == "grid" or (kind == "choice" and as_grid):
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
    grids = [len(d.args) for d in settings.space.values() if d.kind == "grid" or (d.kind == "choice" and as_grid)]
    return math.prod(grids) * (1 if as_grid else settings.num_samples)


def make_scheduler(settings: TuneSettings, max_epochs: int) -> Any:
    """The Tune scheduler; every one counts time in (fractional) epochs as reported by the trials."""
    from ray.tune.schedulers import (  # RAY
        ASHAScheduler,
        FIFOScheduler,
        HyperBandScheduler,
        MedianStoppingRule,
        PopulationBasedTraining,
    )

    s = settings.scheduler
    max_t = s.max_t or max_epochs
    if s.type == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=s.grace_period,
                             reduction_factor=s.reduction_factor)  # fmt: skip
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
