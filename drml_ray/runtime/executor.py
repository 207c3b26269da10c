"""Many small independent jobs on reusable Ray actors (meta-eval cells, meta-RL tasks, transfer seeds).

Actors are built once (each owns a model or an RLlib Algorithm) and reused for every job. ``map(jobs)``
returns the results in job order and calls ``on_done`` as each job ends, so a kind records a finished job
at once. A job whose actor *dies* (process killed, node lost, out of memory) runs again on a new actor,
up to ``retries`` times; a job that *raises* is not retried, and the other jobs finish before
:class:`JobFailed` names it. With a ``label``, each finished job prints ``[i/n] name: ...`` and the time
left, weighted by the jobs' ``cost``. (``ray.util.ActorPool`` does not fit: it drops a dead actor but
cannot say which job it was running, so that job could be neither retried nor named.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray  # RAY
from ray.exceptions import RayActorError, RayTaskError  # RAY

from drml_ray.errors import UserError, user_error_in

OnDone = Callable[[int, Any], str | None]
"""Called as a job ends: ``(job index, result)``; the text it returns goes into the progress line."""


@dataclass(frozen=True)
class Job:
    """One call of an actor method. ``name`` says what it is in progress lines and errors
    (``"politics 10 shots seed 1 reptile"``); ``cost`` weighs it for the time-left estimate."""

    name: str
    method: str
    args: tuple = ()
    cost: float = 1.0


class JobFailed(RuntimeError):
    """A job raised (or its actor died more than ``retries`` times); the message names the job."""


def actor_factory(cls: type, *args: Any, cpus: float, gpus: float = 0.0) -> Callable[[], Any]:
    """A function that starts one actor of ``cls(*args)`` reserving ``cpus`` CPUs and ``gpus`` GPUs.

    The actor never joins the placement group of the process that starts it: inside a Tune trial (which
    reserves memory only) the actors reserve their own CPUs, which Tune's concurrency limit counts on.
    """
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # RAY

    from drml_ray.ray_env import ensure_ray

    remote = ray.remote(cls).options(  # RAY
        num_cpus=cpus, num_gpus=gpus, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
        scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None),
    )  # fmt: skip

    def start() -> Any:
        ensure_ray()  # (a local Ray starts with the first actor, not before)
        return remote.remote(*args)

    start.resources, start.actor = (cpus, gpus), cls.__name__  # type: ignore[attr-defined]  (ActorExecutor's sizing)
    return start


class ActorExecutor:
    """``size`` actors from ``make_actor``, started on first use and kept until :meth:`close`."""

    def __init__(self, make_actor: Callable[[], Any], size: int, *, retries: int = 2, label: str | None = None):
        self.make_actor, self.size, self.retries, self.label = make_actor, size, retries, label
        self.actors: list[Any] = []

    def __enter__(self) -> ActorExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)  # RAY
        self.actors = []

    def put(self, value: Any) -> Any:
        """``value`` in the object store, for every job to read once (``ray.put``), after Ray is started as drml
        starts it: a bare ``ray.put`` before the first actor started a local Ray itself, Ray's way (no
        ``RAY_ADDRESS`` check, Ray's SIGTERM handler, its log lines)."""
        from drml_ray.ray_env import ensure_ray

        ensure_ray()
        return ray.put(value)  # RAY

    def call(self, method: str, *args: Any) -> Any:
        """One call on the first actor (fresh weights, a shared setup), waited for."""
        return self.map([Job(method, method, args)])[0]

    def map(self, jobs: Sequence[Job], on_done: OnDone | None = None, label: str | None = None) -> list[Any]:
        """Run ``jobs``, each actor one at a time; their results in job order (progress lines under ``label``,
        else the pool's)."""
        if not self.actors:
            self.size = self._fitting(self.size)
            self.actors = [self.make_actor() for _ in range(self.size)]
        results: list[Any] = [None] * len(jobs)
        queue, idle = list(range(len(jobs))), list(self.actors)
        running: dict[Any, tuple[int, Any]] = {}
        tries, failures = [0] * len(jobs), []
        progress = _Progress(label or self.label, [job.cost for job in jobs])
        while queue or running:
            while queue and idle:
                index, actor = queue.pop(0), idle.pop(0)
                job = jobs[index]
                running[getattr(actor, job.method).remote(*job.args)] = (index, actor)  # RAY
            [ready], _ = ray.wait(list(running), num_returns=1)  # RAY
            index, actor = running.pop(ready)
            try:
                results[index] = ray.get(ready)  # RAY
            except RayActorError as err:  # RAY: the actor died; the job did not fail
                idle.append(self._replace(actor))
                tries[index] += 1
                refused = user_error_in(err)  # (it died refusing the user's input as it started: no retry mends it)
                if refused is not None:
                    failures.append(UserError(f"{jobs[index].name}: {refused}"))
                elif tries[index] > self.retries:
                    failures.append(JobFailed(f"{jobs[index].name}: its actor died {tries[index]} times: {err}"))
                else:
                    print(f"[drml] {jobs[index].name}: its actor died; running it again on a new one", flush=True)
                    queue.insert(0, index)
                continue
            except RayTaskError as err:  # RAY: a user's mistake found there stays one (exit 2, no traceback)
                mistake = user_error_in(err)
                failures.append(UserError(f"{jobs[index].name}: {mistake}") if mistake else
                                JobFailed(f"{jobs[index].name} failed: {err}"))  # fmt: skip
                idle.append(actor)
                continue
            idle.append(actor)
            text = on_done(index, results[index]) if on_done is not None else None
            progress.done(index, jobs[index].name, text)
        if failures:
            raise failures[0]
        return results

    def _fitting(self, size: int) -> int:
        """``size``, or as many actors as a local Ray holds at once: an actor it cannot place never starts, and
        the jobs handed to it would wait forever (a cluster's autoscaler may add nodes: not capped there)."""
        from drml_ray.ray_env import actors_that_fit, ensure_ray

        cpus, gpus = getattr(self.make_actor, "resources", (0.0, 0.0))
        ensure_ray()
        held = actors_that_fit(cpus, gpus)
        if held is None or held >= size:
            return size
        what, actor = f"{cpus:g} CPU" + (f" + {gpus:g} GPU" if gpus else ""), getattr(self.make_actor, "actor", "")
        if held == 0:
            raise UserError(f"a {actor} actor needs {what}, more than this Ray has")
        print(f"[drml] {size} {actor} actors asked for, {held} fit this Ray ({what} each): {held} at a time",
              flush=True)  # fmt: skip
        return held

    def _replace(self, dead: Any) -> Any:
        ray.kill(dead)  # RAY
        actor = self.make_actor()
        self.actors[self.actors.index(dead)] = actor
        return actor


class _Progress:
    """``[i/n] name: text (elapsed; time left)`` lines, the time left weighted by the jobs' costs."""

    def __init__(self, label: str | None, costs: list[float]):
        self.label, self.costs, self.started, self.count, self.cost_done = label, costs, time.perf_counter(), 0, 0.0

    def done(self, index: int, name: str, text: str | None) -> None:
        self.count, self.cost_done = self.count + 1, self.cost_done + self.costs[index]
        if self.label is None:
            return
        elapsed = time.perf_counter() - self.started
        left = elapsed / max(self.cost_done, 1e-9) * (sum(self.costs) - self.cost_done)
        eta = f"about {left / 60:.0f} min left" if self.count < len(self.costs) else f"{self.label} done"
        print(f"[drml] [{self.count}/{len(self.costs)}] {name}: {text or 'done'} ({elapsed:.0f} s; {eta})", flush=True)
