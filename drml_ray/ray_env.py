"""Connecting to Ray: an existing cluster when one is named, else a local Ray started on demand."""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)

LOCAL_RAY_ENV = {
    # One machine, which no cloud preempts: Ray Train's preemption watcher (one more actor process per run,
    # ~116 MB) has nothing to watch there (BENCHMARKS.md, "Memory of the embedded default").
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}


def use_local_ray_settings() -> None:
    """:data:`LOCAL_RAY_ENV` for a Ray this process starts (its processes inherit it); a value the user set is kept."""
    for key, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(key, value)


def ensure_ray(address: str | None = None) -> None:
    """Connect to Ray once per process.

    ``address`` (or ``RAY_ADDRESS``, which ``ray job submit`` sets for its entrypoint) joins a
    running cluster; without either, a local Ray starts with every core of this machine, and the
    dashboard if ``ray[default]`` is installed.
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        log.info("connecting to the Ray cluster at %s", address)
    else:
        log.info("starting a local Ray (set RAY_ADDRESS to use a cluster)")
        warn_if_other_local_ray()
        use_local_ray_settings()
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)


def warn_if_other_local_ray() -> None:
    """Warn when another Ray instance already runs on this machine.

    Ray Train's placement-group cleaner finds its cluster by scanning this machine's processes, and
    with two instances it cannot tell which is its own: when a trial stops (an ASHA decision) its
    worker's CPUs are never given back, and the next trials wait for workers forever. One shared
    instance avoids it: ``ray start --head`` once, then ``RAY_ADDRESS=auto drml ...``.
    """
    from drml_ray._ray_compat import other_local_ray_addresses

    others = other_local_ray_addresses()
    if others:
        log.warning(
            "another Ray instance runs on this machine (%s): Ray Train cannot tell two local instances "
            "apart and leaks the CPUs of stopped trials. Stop it, or share one: `ray start --head`, then "
            "RAY_ADDRESS=auto drml ...",
            ", ".join(others),
        )
