"""Connecting to Ray: an existing cluster when one is named, else a local Ray started on demand."""

from __future__ import annotations

import logging
import os
import signal
import socket

import ray

from drml_ray.errors import UserError
from drml_ray.signals import sigterm_as_ctrl_c

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


def ensure_ray() -> None:
    """Connect to Ray once per process.

    ``RAY_ADDRESS`` (which ``ray job submit`` sets for its entrypoint) joins a running cluster, and one that Ray
    cannot join is the user's to mend (:class:`UserError`); without it, a local Ray starts with every core of this
    machine, and the dashboard if ``ray[default]`` is installed.
    """
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        check_cluster_address(address)
    else:
        log.info("starting a local Ray (set RAY_ADDRESS to use a cluster)")
        warn_if_other_local_ray()
        use_local_ray_settings()
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    except SystemExit as err:  # SIGTERM while Ray starts: Ray's handler, there until ours is back, exits with 15
        if err.code != signal.SIGTERM:
            raise
        raise KeyboardInterrupt from None  # (stopped as Ctrl+C stops it, exit 130, not 15 and no word)
    except (ConnectionError, ValueError) as err:  # Ray's words for an address it cannot use
        if not address:
            raise
        answered = isinstance(err, ConnectionError) and address != "auto" and "://" not in address
        auth = "; a head with token auth also needs RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN" if answered else ""
        raise UserError(f"RAY_ADDRESS={address}: {' '.join(str(err).split())}{auth}{UNSET}") from None
    sigterm_as_ctrl_c()  # (ray.init replaced it with Ray's own)


UNSET = " (unset RAY_ADDRESS to run on a local Ray)"


def check_ray_address() -> None:
    """:func:`check_cluster_address` of ``RAY_ADDRESS`` when it is set, for a command that will need Ray to call
    before it reads its inputs (a CoNLL-2003 corpus and its tokenizer take seconds)."""
    address = os.environ.get("RAY_ADDRESS")
    if address and not ray.is_initialized():
        check_cluster_address(address)


def check_cluster_address(address: str) -> None:
    """Refuse a ``host:port`` or ``ray://host:port`` where nothing listens at once: ``ray.init`` would retry the
    one for minutes, printing Ray's time-outs, and wait ~40 s on the other (``auto`` fails fast in ``ray.init``)."""
    client = address.startswith("ray://")
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if ("://" in address and not client) or not colon or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as err:
        server, default = ("Ray Client server", 10001) if client else ("Ray cluster", 6379)
        raise UserError(
            f"RAY_ADDRESS={address}: no {server} answers there ({err.strerror or err}); start it "
            f"(`ray start --head`) or give its head's address (port {default} unless set){UNSET}"
        ) from None


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


def check_resources(cpus: float, gpus: float, what: str) -> None:
    """Refuse work that a local Ray can never hold (Ray would wait for it forever, silently); on a cluster
    (``RAY_ADDRESS``), where an autoscaler may add nodes, say what it waits for instead."""
    from drml_ray.text import counted

    have = ray.cluster_resources()  # RAY
    short = [counted(need, name) for name, need in (("CPU", cpus), ("GPU", gpus)) if need > have.get(name, 0)]
    if not short:
        return
    message = (f"{what} needs {' and '.join(short)}, and this Ray has {counted(have.get('CPU', 0), 'CPU')} and "
               f"{counted(have.get('GPU', 0), 'GPU')}")  # fmt: skip
    if os.environ.get("RAY_ADDRESS"):
        log.warning("%s: it waits until an autoscaler adds them (Ctrl+C stops it)", message)
        return
    raise UserError(f"{message}: lower scaling.num_workers or scaling.cpus_per_worker (or set scaling.use_gpu: "
                    "false), or run it on a cluster (RAY_ADDRESS)")  # fmt: skip


def actors_that_fit(cpus: float, gpus: float) -> int | None:
    """How many actors of ``cpus`` CPUs and ``gpus`` GPUs a local Ray holds at once; ``None`` on a cluster
    (``RAY_ADDRESS``: an autoscaler may add nodes) or for actors that reserve nothing."""
    return None if os.environ.get("RAY_ADDRESS") else how_many_fit(cpus, gpus, ray.cluster_resources())  # RAY


def how_many_fit(cpus: float, gpus: float, have: dict[str, float]) -> int | None:
    """How many units of ``cpus`` CPUs and ``gpus`` GPUs the resources ``have`` hold at once; ``None`` for units
    that reserve nothing.

    >>> how_many_fit(2, 0, {"CPU": 5.0}), how_many_fit(1, 1, {"CPU": 8.0, "GPU": 2.0}), how_many_fit(0, 0, {})
    (2, 2, None)
    """
    counts = [int(have.get(name, 0) // need) for name, need in (("CPU", cpus), ("GPU", gpus)) if need > 0]
    return min(counts) if counts else None
