"""Connecting to Ray: an existing cluster when one is named, else a local Ray started on demand."""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)


DASHBOARD_ENV = "DRML_DASHBOARD"
"""Set (``drml --dashboard``) to start a local Ray with its dashboard."""
LOCAL_SYSTEM_CONFIG = {"enable_worker_prestart": False}
"""A local Ray starts no idle worker processes ahead of need (Ray prestarts one per core for the first
driver): each holds a Python interpreter with Ray imported, memory a laptop run never uses."""


def ensure_ray(address: str | None = None, *, dashboard: bool | None = None) -> None:
    """Connect to Ray once per process.

    ``address`` (or ``RAY_ADDRESS``, which ``ray job submit`` sets for its entrypoint) joins a
    running cluster; without either, a local Ray starts with every core of this machine, lean: no
    dashboard unless ``dashboard`` (default: ``DRML_DASHBOARD`` set, which ``drml --dashboard`` does)
    and no prestarted idle workers (BENCHMARKS.md, "Memory of the embedded default").
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        return
    dashboard = bool(os.environ.get(DASHBOARD_ENV)) if dashboard is None else dashboard
    log.info("starting a local Ray%s (set RAY_ADDRESS to use a cluster)",
             " with its dashboard" if dashboard else "; drml --dashboard ... adds its dashboard")  # fmt: skip
    warn_if_other_local_ray()
    ray.init(logging_level=logging.WARNING, log_to_driver=True, include_dashboard=dashboard,
             _system_config=LOCAL_SYSTEM_CONFIG)  # fmt: skip


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
