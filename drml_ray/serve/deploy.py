"""``drml serve``: deploy the served models on Ray Serve, write a config for ``serve deploy``, or swap models.

Deploying to a Ray where the application already runs changes its ``user_config`` only: the running replicas
load the new models and switch to them (see ``app.py``), so a swap drops no request. Replica counts,
autoscaling, CPUs and limits are deployment options (a change of those restarts replicas, one at a time).
"""

from __future__ import annotations

import errno
import math
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drml_ray.errors import UserError, user_error_in
from drml_ray.serve.api import Limits
from drml_ray.serve.models import ModelSource

HIGH_THROUGHPUT_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
}
"""Ray Serve's high-throughput mode (Ray 2.56+): HAProxy listens on the port and hands each request to the
replica's own HTTP server (no Python proxy hop), user code runs in the replica's event loop and logging is
buffered. Measured at 32 clients on 2 cores (BENCHMARKS.md): 138 -> 236 requests/s, p99 351 -> 249 ms. A
stopping replica stays open 30 s by default for remote load balancers to let go of it; the local HAProxy does
at once, so 2 s (Ctrl+C returns in seconds). Ray reads these when its processes start: ``drml serve`` sets them
(where unset) for the local Ray it starts; a cluster sets the first two in ``ray start``'s environment
(``cluster.yaml`` does). ``RAY_SERVE_ENABLE_HA_PROXY=0 RAY_SERVE_THROUGHPUT_OPTIMIZED=0`` keeps Serve's classic
proxy."""
APP_NAME = "drml"
DEPLOYMENT = "ner"
MAX_ONGOING = 512
"""Requests a replica takes in at once (they wait in its batch queue); see ``deployment_options``."""


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``drml serve`` takes besides the models."""

    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    max_batch: int = 32
    batch_wait_ms: float = 5.0
    cpus: float = 1.0
    dtype: str = "float32"
    log_requests: str | None = None
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        limits, wait = asdict(self.limits), self.batch_wait_ms
        checks = {"--port": (self.port, 0 < self.port < 65536, "1 to 65535"),
                  "--batch-wait-ms": (wait, 0 <= wait <= MAX_WAIT_MS, f"0 to {MAX_WAIT_MS:,}"),
                  "--cpus": (self.cpus, 0 < self.cpus < math.inf, "a number above 0"),
                  "--dtype": (self.dtype, self.dtype in ("float32", "bfloat16"), "float32 or bfloat16")}  # fmt: skip
        counts = {"--replicas": self.replicas, "--max-batch": self.max_batch} | {
            f"--{name.replace('_', '-')}": value for name, value in limits.items()}  # fmt: skip
        checks |= {flag: (value, value >= 1, "1 or more") for flag, value in counts.items()}
        wrong = next((flag for flag, (_, ok, _) in checks.items() if not ok), None)
        if wrong:
            value, _, allowed = checks[wrong]
            raise UserError(f"{wrong} {value}: out of range ({allowed})")


MAX_WAIT_MS = 10_000
"""The longest ``--batch-wait-ms``: a request waits that long for others whenever a batch does not fill."""


def parse_autoscale(spec: str | None) -> tuple[int, int] | None:
    """``"1:4"`` -> ``(1, 4)``: between 1 and 4 replicas, as the requests in flight ask for."""
    if spec is None:
        return None
    match = re.fullmatch(r"(\d+):(\d+)", spec.strip())
    if not match or int(match[1]) > int(match[2]) or int(match[2]) < 1:
        raise UserError(f"--autoscale {spec!r}: expected MIN:MAX with 0 <= MIN <= MAX and MAX >= 1, e.g. 1:4")
    return int(match[1]), int(match[2])


def user_config(sources: list[ModelSource], opts: ServeOptions) -> dict[str, Any]:
    """What the running replicas reconfigure to: the models, batching and the request log."""
    return {
        "models": [source.as_config() for source in sources],
        "max_batch": opts.max_batch,
        "batch_wait_ms": opts.batch_wait_ms,
        "dtype": opts.dtype,
        "log_dir": str(Path(opts.log_requests).resolve()) if opts.log_requests else None,
    }


def log_folder(log_requests: str | None, sources: list[ModelSource]) -> str | None:
    """``--log-requests``'s folder, absolute, checked before anything is deployed: the replicas make it and write
    into it, where a file above it failed them inside Serve, and a served model's folder (read whole when loaded) or
    its run's (which ``--overwrite`` empties) would take in files that are not theirs (``drml serve`` checks it
    before Ray starts)."""
    if log_requests is None:
        return None
    path = Path(log_requests).expanduser().resolve()
    above = next(p for p in (path, *path.parents) if p.exists())
    if not above.is_dir():
        raise UserError(f"--log-requests {log_requests}: {above} is a file; name a folder for the request logs")
    for source in sources:
        for folder in filter(None, (source.run_dir, source.model_dir)):
            if path.is_relative_to(folder.resolve()):
                raise UserError(f"--log-requests {log_requests}: inside {folder}, served as {source.name!r}; keep "
                                "the request logs in a folder of their own, e.g. served/")  # fmt: skip
    return str(path)


def deployment_options(sources: list[ModelSource], opts: ServeOptions) -> dict[str, Any]:
    """Ray Serve's options for the ``ner`` deployment (as ``.options()`` and a config file's deployment take)."""
    scaling: dict[str, Any] = {"num_replicas": opts.replicas}
    if opts.autoscale is not None:
        low, high = opts.autoscale
        # A replica is busy enough at a full batch in flight; more than that waiting asks for another replica.
        scaling = {"autoscaling_config": {"min_replicas": low, "max_replicas": high,
                                          "target_ongoing_requests": opts.max_batch}}  # fmt: skip
    return {
        **scaling,
        # Far above a batch: a request the router finds no room for waits in exponential backoff (up to 0.5 s a
        # try), which measured 6-17 req/s at 32 clients with room for 2-16 against 64-75 with room for 64.
        "max_ongoing_requests": max(MAX_ONGOING, 4 * opts.max_batch),
        "ray_actor_options": {"num_cpus": opts.cpus},
        "user_config": user_config(sources, opts),
    }


def app_args(opts: ServeOptions) -> dict[str, Any]:
    return {"limits": asdict(opts.limits), "threads": max(1, int(opts.cpus))}


def serve_config(sources: list[ModelSource], opts: ServeOptions) -> dict[str, Any]:
    """A Serve config file for ``serve deploy`` (``drml serve --build FILE``)."""
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": opts.host, "port": opts.port},
        "applications": [{
            "name": APP_NAME,
            "route_prefix": "/",
            "import_path": "drml_ray.serve.app:build_app",
            "args": app_args(opts),
            "deployments": [{"name": DEPLOYMENT, **deployment_options(sources, opts)}],
        }],
    }  # fmt: skip


BUILT = "# Written by `drml serve --build`"
"""The first line of a Serve config drml wrote: the only existing file ``--build`` replaces."""


def write_serve_config(sources: list[ModelSource], opts: ServeOptions, path: Path) -> None:
    from drml_ray.runtime.runfiles import atomic_write_text

    if path.is_file() and not path.read_bytes().startswith(BUILT.encode()):
        raise UserError(f"{path}: exists, and drml serve --build did not write it (it replaces only its own Serve "
                        "config): name another file, or delete this one")  # fmt: skip
    text = f"{BUILT}; deploy with `serve deploy FILE` (RAY_ADDRESS: the cluster).\n"
    text += "# The model folders must exist at these paths on every node (a shared filesystem, or copy them).\n"
    text += "# Serve's high-throughput mode: RAY_SERVE_THROUGHPUT_OPTIMIZED=1 RAY_SERVE_ENABLE_HA_PROXY=1 in the\n"
    text += "# environment of `ray start` on every node (cluster.yaml sets them).\n"
    atomic_write_text(path, text + yaml.safe_dump(serve_config(sources, opts), sort_keys=False))


def deploy(sources: list[ModelSource], opts: ServeOptions) -> str:
    """Deploy (or swap to) ``sources`` on the Ray of this process; returns the HTTP address."""
    from ray import serve  # RAY

    from drml_ray.ray_env import ensure_ray
    from drml_ray.serve.app import NerServer

    use_high_throughput_mode()
    ensure_ray()
    serve.start(http_options={"host": opts.host, "port": opts.port})  # RAY: ignored when Serve already runs
    app = NerServer.options(**deployment_options(sources, opts)).bind(**app_args(opts))  # RAY
    try:
        serve.run(app, name=APP_NAME, route_prefix="/")  # RAY: returns once the replicas run the new config
    except RuntimeError:  # ("Deploying application drml failed"): a model folder each replica refused?
        refused = user_error_in(RuntimeError(_deployment_messages()))
        if refused is None:
            raise
        raise refused from None
    return f"http://{opts.host}:{opts.port}"


def _deployment_messages() -> str:
    """What Serve says of this application's deployments (a replica's constructor's traceback where it failed)."""
    from ray import serve  # RAY

    status = serve.status().applications.get(APP_NAME)  # RAY
    return "\n".join(d.message for d in status.deployments.values()) if status is not None else ""


def use_high_throughput_mode() -> None:
    """:data:`HIGH_THROUGHPUT_ENV`, where the user has not set it, when this process is about to start its
    own Ray (an existing Ray or a cluster keeps the mode it was started with)."""
    import ray  # RAY

    if not ray.is_initialized() and not os.environ.get("RAY_ADDRESS"):
        for name, value in HIGH_THROUGHPUT_ENV.items():
            os.environ.setdefault(name, value)


def check_address(host: str, port: int) -> None:
    """Refuse, before Ray starts, an address this machine cannot listen on: a port another program holds, a port
    below 1024 without root, a host that is not this machine's (Serve's proxy fails on them with a traceback)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as servers bind: TIME_WAIT is no owner)
            probe.bind((host, port))
    except socket.gaierror as err:
        raise UserError(f"--host {host}: no such address ({err.strerror}); give 127.0.0.1, 0.0.0.0 or this "
                        "machine's") from None  # fmt: skip
    except OSError as err:
        why = {errno.EADDRINUSE: f"--port {port}: another program listens there; stop it or pick another --port",
               errno.EACCES: f"--port {port}: ports below 1024 need root; pick another --port",
               errno.EADDRNOTAVAIL: f"--host {host}: not an address of this machine"}  # fmt: skip
        other = f"--host {host} --port {port}: cannot listen there ({err.strerror})"
        raise UserError(why.get(err.errno, other)) from None


def serve_until_stopped(sources: list[ModelSource], opts: ServeOptions, detach: bool) -> None:
    """``drml serve``: deploy, print where, then stay until Ctrl+C (which shuts the application down)."""
    from ray import serve  # RAY

    if detach and not os.environ.get("RAY_ADDRESS"):
        raise UserError("--detach needs a Ray that outlives this command: `ray start --head`, then RAY_ADDRESS=auto")
    if not os.environ.get("RAY_ADDRESS"):  # (on a running Ray, Serve may hold the port itself: a swap)
        check_address(opts.host, opts.port)
    url = deploy(sources, opts)
    for source in sources:
        print(f"[drml] serving {source.name} from {source.model_dir}")
    print(f"[drml] POST {url}/v1/predict · GET {url}/v1/models · API docs {url}/docs")
    if detach:
        print(f"[drml] deployed; `serve shutdown` (or `serve delete {APP_NAME}`) stops it")
        return
    print("[drml] Ctrl+C (or SIGTERM) stops serving")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("[drml] stopping", flush=True)
    finally:
        serve.delete(APP_NAME)  # RAY: graceful: the replicas finish their requests and flush the request log
        if not os.environ.get("RAY_ADDRESS"):
            serve.shutdown()  # RAY: the local Ray is this command's; a cluster's Serve may run other applications
