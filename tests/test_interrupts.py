"""Real interrupts of a real ``drml`` process (a subprocess on the test session's Ray): Ctrl+C during
``drml finetune``, and the ``drml tune`` driver killed outright (each run is then continued and must not
redo what was finished); SIGTERM to ``drml serve``."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drml_ray.checkpoints import load_state
from drml_ray.cli import app
from drml_ray.ner.train_loop import STATE_FILE
from drml_ray.ner.train_record import RAY_SNAPSHOT, prune_unregistered_checkpoints

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[1]
DRML = Path(sys.executable).parent / "drml"


def start(ray_session, log: Path, *args) -> subprocess.Popen:
    """``drml ARGS`` in a new process on the test session's Ray."""
    env = os.environ | {"RAY_ADDRESS": ray_session.get_runtime_context().gcs_address, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    return subprocess.Popen([str(DRML), *map(str, args)], env=env, cwd=REPO, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)  # fmt: skip


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"drml ended before the interrupt:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out waiting:\n{log.read_text()}"
        time.sleep(0.5)


def actors_of_killed_driver_gone(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until Ray has ended the actors of the killed driver ``proc``: a trial that was starting as its driver
    died goes on for seconds (once, it made its folder after the resumed search had cleared it, and Tune named the
    trial run again ``trial_00001_7921``)."""
    from ray.util.state import list_actors, list_jobs

    jobs = {j.job_id for j in list_jobs() if j.driver_info is not None and str(j.driver_info.pid) == str(proc.pid)}
    assert jobs, f"no Ray job of the killed driver (pid {proc.pid})"
    deadline = time.monotonic() + timeout

    def alive() -> list[str]:  # (a detached actor is Ray's own, made to outlive the driver)
        actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000, detail=True)
        return [a.class_name for a in actors if a.job_id in jobs and not a.is_detached]

    while alive():
        assert time.monotonic() < deadline, f"the killed driver's actors are still alive: {alive()}"
        time.sleep(0.5)


def cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


# SIGTERM becomes Ctrl+C in drml_ray/signals.py for every command; CI keeps it for drml serve and drml tensorboard
# (test_sigterm_stops_drml_serve_as_ctrl_c_does, test_cli.py), and runs Ctrl+C here (22-35 s each on 2 cores).
SIGTERM_SLOW = pytest.param(signal.SIGTERM, id="sigterm", marks=pytest.mark.slow)


@pytest.mark.parametrize("stop", [pytest.param(signal.SIGINT, id="ctrl_c"), SIGTERM_SLOW])
def test_ctrl_c_during_finetune_exits_130_and_leaves_a_run_to_continue(ray_session, tmp_path, stop):
    """Ctrl+C, and SIGTERM (``kill``, ``ray job stop``) the same way. (That the same command then continues from
    the recorded checkpoint, exactly, is ``tests/ner/test_finetune_ray.py::test_interrupted_run_resumes_in_the_same
    _directory``.)"""
    run_dir, log = tmp_path / "run", tmp_path / "finetune.log"
    sets = ["train.epochs=4", "train.patience=0", "data.generated.train=1200"]  # epochs of a few seconds
    proc = start(ray_session, log, "finetune", "ner/smoke", "-o", run_dir, *[a for s in sets for a in ("--set", s)])
    snapshot = run_dir / "train" / RAY_SNAPSHOT
    wait_for(snapshot.exists, proc, log)  # Ray Train has recorded a checkpoint
    proc.send_signal(stop)
    assert proc.wait(timeout=120) == 130, log.read_text()
    said = log.read_text()
    assert "drml: interrupted" in said and "continues from the last checkpoint" in said and "SIGTERM" not in said
    assert not (run_dir / "results.json").exists() and (run_dir / "config.yaml").exists()
    prune_unregistered_checkpoints(run_dir / "train")  # keep what Ray recorded, as a rerun does
    recorded = [c for c in (run_dir / "train").glob("checkpoint_*") if c.is_dir()]
    assert recorded and all(load_state(c / STATE_FILE)["loop"]["history"] for c in recorded)  # whole: resumable


def trial_epochs(run_dir: Path, trial: str) -> list[float]:
    with (run_dir / "tune" / trial / "progress.csv").open() as handle:
        return [float(row["epoch"]) for row in csv.DictReader(handle)]


def test_a_killed_tune_driver_resumes_without_rerunning_finished_trials(ray_session, tmp_path):
    run_dir, log = tmp_path / "search", tmp_path / "tune.log"
    sets = ["tune.scheduler.type=fifo", "tune.search=grid", "tune.space={train.lr: {grid: [1.5e-2, 1.0e-2]}}",
            "tune.max_concurrent_trials=1", "train.epochs=1"]  # fmt: skip
    args = ["tune", "tune/smoke", "-o", run_dir, *[a for s in sets for a in ("--set", s)]]
    proc = start(ray_session, log, *args)
    finished = lambda: any("TERMINATED" in p.read_text() for p in (run_dir / "tune").glob("experiment_state*.json"))
    wait_for(finished, proc, log)  # the first trial is done, and Tune's saved state says so
    proc.kill()  # no clean-up of any kind
    proc.wait(timeout=60)
    actors_of_killed_driver_gone(proc)
    first = run_dir / "tune" / "trial_00000" / "result.json"
    kept = first.read_bytes()
    # A trial that ran after Tune last saved its state (as the second one may have: the kill races it)
    shutil.copytree(run_dir / "tune" / "trial_00000", run_dir / "tune" / "trial_00009")

    said = cli(*args, "--resume")
    assert "trial_00009 started after the search last saved its state, so it runs again" in said
    assert not (run_dir / "tune" / "trial_00009").exists()
    with (run_dir / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert [(t["trial"], t["state"]) for t in trials] == [("trial_00000", "completed"), ("trial_00001", "completed")]
    assert first.read_bytes() == kept and trial_epochs(run_dir, "trial_00000") == [1.0]  # not run again
    assert trial_epochs(run_dir, "trial_00001")[-1] == 1.0


def test_ctrl_c_when_every_trial_has_reported_leaves_the_search_unfinished(ray_session, tmp_path):
    """Tune lists the trials Ctrl+C cut short as terminated, as those its scheduler stopped: once every trial had
    started and reported, the search was taken for finished (its trials ``stopped by asha``), and the best trial's
    model exported mid-training."""
    run_dir, log = tmp_path / "search", tmp_path / "tune.log"
    sets = [
        "tune.num_samples=2",
        "tune.max_concurrent_trials=2",
        "tune.scheduler.grace_period=3",
        "data.generated.train=1200",
    ]  # fmt: skip  (ASHA stops no trial before epoch 3 of 4)
    proc = start(ray_session, log, "tune", "tune/smoke", "-o", run_dir, *[a for s in sets for a in ("--set", s)])
    reported = lambda: all(any((run_dir / "tune" / f"trial_0000{i}" / "train").glob("checkpoint_*")) for i in (0, 1))
    wait_for(reported, proc, log)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, log.read_text()
    assert "drml: interrupted: the search stopped with" in log.read_text()
    assert not (run_dir / "results.json").exists() and not (run_dir / "best").exists()
    with (run_dir / "trials.csv").open() as handle:
        states = {t["trial"]: t["state"] for t in csv.DictReader(handle)}
    assert "interrupted" in states.values() and "stopped by asha" not in states.values(), states


def test_sigterm_stops_drml_serve_as_ctrl_c_does(ray_session, tmp_path):
    """``kill``, ``docker stop`` or systemd: one line, the application deleted, no native stack dump from Ray."""
    import requests
    from ray import serve

    from tests.serve.test_serve_ray import _free_port, _tiny_model

    port, log = _free_port(), tmp_path / "serve.log"
    proc = start(ray_session, log, "serve", _tiny_model(tmp_path / "model", seed=0), "--port", port)
    wait_for(lambda: "stops serving" in log.read_text(), proc, log)
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30).json()["status"] == "ok"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()
    said = log.read_text()
    assert "[drml] stopping" in said and "SIGTERM received" not in said, said
    assert "drml" not in serve.status().applications
