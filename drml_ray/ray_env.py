"""Connecting to Ray: an existing cluster when one is named, else a local Ray started on demand."""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)


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
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
