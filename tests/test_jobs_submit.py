"""`ray job submit` against a head this test starts itself (token auth on), then stops.

It never runs `ray stop` (that would stop every Ray on the machine, the test session's too): the head
runs under its own temp dir and only processes naming that dir are stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_processes_under(folder: str) -> None:
    """Kill the processes whose command line names ``folder`` (one Ray cluster's temp dir)."""
    subprocess.run(["pkill", "-TERM", "-f", folder], check=False)
    time.sleep(3)
    subprocess.run(["pkill", "-KILL", "-f", folder], check=False)


@pytest.fixture
def token_auth_head():
    """A local head with token authentication; yields (dashboard address, client env)."""
    temp_dir = tempfile.mkdtemp(prefix="drj")  # short: Ray's socket paths must fit in 107 bytes
    port, dashboard = free_port(), free_port()
    # Every port of its own: the defaults (agent 52365, metrics, client 10001) may belong to another Ray here.
    ports = [f"--{name}-port={free_port()}" for name in (
        "dashboard-agent-listen", "dashboard-agent-grpc", "runtime-env-agent", "metrics-export", "ray-client-server",
    )]  # fmt: skip
    # PYTEST_CURRENT_TEST switches Ray into a test mode in which the head's job agent never registers.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTEST_CURRENT_TEST")}
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    # Output to a file, not a pipe: the daemons `ray start` leaves behind inherit it.
    with open(Path(temp_dir) / "ray_start.log", "w") as log:
        subprocess.run(
            [BIN / "ray", "start", "--head", f"--port={port}", f"--dashboard-port={dashboard}", "--num-cpus=2",
             "--include-dashboard=true", f"--temp-dir={temp_dir}", "--disable-usage-stats", *ports],
            env=env, check=True, stdout=log, stderr=subprocess.STDOUT, timeout=120,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_processes_under(temp_dir)
        if not os.environ.get("DRML_KEEP_RAY_TMP"):
            shutil.rmtree(temp_dir, ignore_errors=True)


def ray_job(address: str, env: dict, *args, timeout: int = 600) -> subprocess.CompletedProcess:
    command, *rest = args
    return subprocess.run([BIN / "ray", "job", command, "--address", address, *rest], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_submit_finetune_job(token_auth_head, tmp_path):
    address, env = token_auth_head
    run_dir = tmp_path / "job_run"
    unauthenticated = ray_job(address, env | {"RAY_AUTH_TOKEN": "0" * 64}, "list", timeout=60)
    assert unauthenticated.returncode != 0  # the head really checks the token

    job_id = f"drml-test-{secrets.token_hex(4)}"
    for _ in range(15):  # the head's job agent takes a few seconds to come up after `ray start`
        submitted = ray_job(
            address, env, "submit", "--submission-id", job_id, "--working-dir", ".", "--",
            sys.executable, "jobs/run.py", "finetune", "configs/ner/smoke.yaml", "--output-dir", str(run_dir),
            "--set", "train.epochs=1", "--set", "scaling.num_workers=1",
        )  # fmt: skip
        if "No available agent" not in submitted.stderr:
            break
        time.sleep(2)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    status = ray_job(address, env, "status", job_id, timeout=60)
    assert f"Job '{job_id}' succeeded" in status.stdout + status.stderr, status.stdout + status.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["train"]["num_workers"] == 1 and len(results["history"]) == 1
    # no --output-dir: the evaluation's runs/... is in Ray's copy of the folder
    scored = ray_job(address, env, "submit", "--working-dir", ".", "--", sys.executable, "jobs/run.py", "evaluate",
                     str(run_dir), str(run_dir / "config.yaml"))  # fmt: skip
    assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
    assert "is inside the copy of the working folder that `ray job submit --working-dir` uploaded" in scored.stdout
