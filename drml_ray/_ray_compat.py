"""Every use of Ray's private internals, in one place (Ray 2.60); each has a test in ``tests/test_ray_compat.py``
that fails loudly when Ray changes it. Everything else in drml-ray uses Ray's public APIs."""

from __future__ import annotations

import logging
import warnings
from typing import Any


def other_local_ray_addresses() -> list[str]:
    """The GCS addresses of the Ray instances running on this machine (no public way to list them)."""
    from ray._private.services import find_gcs_addresses  # RAY private

    return sorted(find_gcs_addresses())


def quiet_train_worker_logs() -> None:
    """Drop Ray Train's per-report INFO lines from the console (they dump every metric twice); its logger is
    named after a private module's file."""
    from ray.train.v2._internal.execution import context  # RAY private

    logging.getLogger(context.__file__).setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)


def quiet_rllib() -> None:
    """This process's RLlib says only errors. Otherwise each Algorithm it builds warns of RLlib's own internals,
    which a user can do nothing about: the deprecated ``RLModuleConfig`` RLlib makes itself (logged by a private
    module's logger) and the env id it registers again with gymnasium (three lines for every inverse-RL cell)."""
    logging.getLogger("ray.rllib").setLevel(logging.ERROR)
    logging.getLogger("ray._common.deprecation").setLevel(logging.ERROR)  # RAY private
    warnings.filterwarnings("ignore", message=".*Overriding environment rllib-", category=UserWarning)


def quiet_ray_data_progress_notice() -> None:
    """With its progress bars off, Ray Data warns once a process that they are off and how to turn them on (a
    private module's logger): drml turned them off, and the line says nothing a user needs."""
    from ray.data._internal import progress  # RAY private

    logging.getLogger(progress.__name__).setLevel(logging.ERROR)


def asha_rungs(scheduler: Any) -> list[list[dict[str, float]]]:
    """The scores an ``ASHAScheduler`` recorded at each rung of each bracket (``trial id -> score``)."""
    return [[dict(recorded) for _, recorded in bracket._rungs] for bracket in scheduler._brackets]


def set_asha_rungs(scheduler: Any, rungs: list[list[dict[str, float]]]) -> None:
    """Put back scores :func:`asha_rungs` read (a scheduler of the same brackets and rungs)."""
    for bracket, saved in zip(scheduler._brackets, rungs, strict=True):
        for (_, recorded), scores in zip(bracket._rungs, saved, strict=True):
            recorded.clear()
            recorded.update(scores)


def live_trials(generator: Any) -> set[str]:
    """The trials a ``BasicVariantGenerator`` counts against its ``max_concurrent`` (a private set)."""
    return generator._live_trials


def local_learner(algo: Any) -> Any:
    """The Learner of an RLlib Algorithm built with ``num_learners=0``: it trains in this process, and inverse RL
    reads its discriminator from it (``foreach_learner`` wraps every result in RLlib's remote-call records)."""
    group = algo.learner_group
    if not group.is_local:
        raise RuntimeError("local_learner: the Algorithm's learners are remote (num_learners > 0)")
    return group._learner


def unseed_later_resets(env_runner: Any) -> None:
    """An RLlib env runner resets its envs with the config's seed before every ``sample(num_episodes=...)`` call,
    so one episode per call (how a recording writes one episode per file) starts from the same state every time.
    Without the seed, later resets continue the envs' own random streams (seeded by the first): the episodes
    differ and stay reproducible."""
    if not hasattr(env_runner, "_seed"):
        raise RuntimeError("unseed_later_resets: RLlib's env runner has no _seed any more")
    env_runner._seed = None
