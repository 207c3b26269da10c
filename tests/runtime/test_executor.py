"""The actor executor on the shared test Ray: order, retries on actor death, failures named."""

from __future__ import annotations

import pytest

from drml_ray.errors import UserError
from drml_ray.runtime.executor import ActorExecutor, Job, JobFailed, actor_factory
from tests.helpers import Refuser, Squarer

pytestmark = pytest.mark.ray


@pytest.fixture
def pool(ray_session):
    with ActorExecutor(actor_factory(Squarer, cpus=0.5), 2, label="squares") as executor:
        yield executor


def test_results_come_in_job_order_and_each_is_handed_over_as_it_ends(pool, capsys):
    done = []
    jobs = [Job(f"square {x}", "square", (x, 1.0 if x == 0 else 0.0), cost=3 if x == 0 else 1) for x in range(5)]
    assert pool.map(jobs, lambda i, r: done.append(i) or f"= {r}") == [0, 1, 4, 9, 16]
    assert sorted(done) == [0, 1, 2, 3, 4] and done[-1] == 0  # the slow first job ended last
    out = capsys.readouterr().out
    assert "[1/5] square 1: = 1 (" in out and "min left" in out and "[5/5] square 0: = 0" in out
    assert "squares done" in out
    first = pool.actors
    assert pool.map([Job("again", "square", (3,))]) == [9] and pool.actors == first  # the actors are reused


def test_a_job_whose_actor_dies_runs_again_on_a_new_actor(pool, tmp_path, capsys):
    pids = set(pool.map([Job("pid", "pid"), Job("pid", "pid")]))
    jobs = [Job(f"job {x}", "die_once", (x, str(tmp_path / f"died-{x}"))) for x in (2, 3)]
    assert pool.map(jobs) == [4, 9]
    assert "job 2: its actor died; running it again on a new one" in capsys.readouterr().out
    assert not pids & set(pool.map([Job("pid", "pid"), Job("pid", "pid")]))  # both actors were replaced
    assert len(pool.actors) == 2


def test_a_job_that_raises_is_named_after_the_others_finished(pool):
    done = []
    jobs = [
        Job("square 2", "square", (2, 0.5)),
        Job("politics 10 shots seed 1", "fail", (7,)),
        Job("square 3", "square", (3,)),
    ]
    with pytest.raises(JobFailed, match=r"(?s)politics 10 shots seed 1 failed: .*no square for 7"):
        pool.map(jobs, lambda i, r: done.append(r))
    assert sorted(done) == [4, 9]  # the other jobs ended, and were handed over


def test_an_actor_that_always_dies_fails_its_job_after_the_retries(ray_session):
    executor = ActorExecutor(actor_factory(Squarer, cpus=0.5), 1, retries=1)
    with executor, pytest.raises(JobFailed, match="doomed: its actor died 2 times"):
        executor.map([Job("doomed", "die")])


def test_an_actor_that_refuses_the_users_input_as_it_starts_is_a_user_error_not_retried(ray_session, capsys):
    executor = ActorExecutor(actor_factory(Refuser, cpus=0.5), 1, retries=3)
    with executor, pytest.raises(UserError, match=r"^cell 1: /m: its head's labels are LABEL_0$"):
        executor.map([Job("cell 1", "square", (2,))])
    assert "running it again" not in capsys.readouterr().out


def test_a_pool_larger_than_the_local_ray_holds_runs_as_many_actors_as_fit(ray_session, capsys):
    # (the test Ray has 4 CPUs: the third actor of 2 CPUs never started, and the jobs handed to it waited forever)
    cpus = ray_session.cluster_resources()["CPU"]
    with ActorExecutor(actor_factory(Squarer, cpus=cpus / 2), 5) as executor:
        assert executor.map([Job(f"square {x}", "square", (x,)) for x in range(4)]) == [0, 1, 4, 9]
        assert len(executor.actors) == 2
    assert "5 Squarer actors asked for, 2 fit this Ray" in capsys.readouterr().out
    with pytest.raises(UserError, match="a Squarer actor needs 1 CPU \\+ 1 GPU, more than this Ray has"):
        ActorExecutor(actor_factory(Squarer, cpus=1, gpus=1), 1).map([Job("x", "square", (1,))])


def test_what_the_jobs_share_is_put_after_ray_is_started_as_drml_starts_it(monkeypatch):
    """meta-train's first held-out check put theta in the object store before any actor started: Ray's own
    auto-start ran (no RAY_ADDRESS check, Ray's SIGTERM handler and log lines), not ``ensure_ray``."""
    import ray

    import drml_ray.ray_env

    calls = []
    monkeypatch.setattr(drml_ray.ray_env, "ensure_ray", lambda: calls.append("ensure_ray"))
    monkeypatch.setattr(ray, "put", lambda value: calls.append(("put", value)) or "ref")
    executor = ActorExecutor(actor_factory(Squarer, cpus=0.5), 2)
    assert executor.put([1.0]) == "ref" and calls == ["ensure_ray", ("put", [1.0])] and not executor.actors
