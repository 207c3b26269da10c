"""Faults on a real multi-node Ray: ``ray.cluster_utils.Cluster`` (a head and two worker raylets on this
machine), driven from a subprocess so that the test session's own Ray is left alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]

KILL_A_NODE_MID_JOB = r"""
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import ray
from ray.cluster_utils import Cluster
from drml_ray.runtime.executor import ActorExecutor, Job, actor_factory
from tests.helpers import Squarer

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "gcs_server_port": int(sys.argv[2]),
                                                         "include_dashboard": False})
nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
ray.init(address=cluster.address)
pool = ActorExecutor(actor_factory(Squarer, cpus=1), 2, label="squares")
print("PIDS", pool.map([Job("pid", "pid"), Job("pid", "pid")]))  # one actor on each worker node


def kill_a_node():
    time.sleep(2)  # the first two jobs are running, one on each node
    cluster.remove_node(nodes[0], allow_graceful=False)
    cluster.add_node(num_cpus=1)  # room for the replacement actor


threading.Thread(target=kill_a_node).start()
print("RESULT", pool.map([Job(f"square {x}", "square", (x, 4.0)) for x in range(4)]), flush=True)
pool.close()
ray.shutdown()
cluster.shutdown()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_node_that_dies_mid_job_loses_no_job():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTEST_CURRENT_TEST")}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="drn")  # short: Ray's socket paths must fit in 107 bytes
    run = subprocess.run([sys.executable, "-c", KILL_A_NODE_MID_JOB, str(REPO), str(free_port())], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "RESULT [0, 1, 4, 9]" in output  # every job's result, in job order
    assert "its actor died; running it again on a new one" in output
