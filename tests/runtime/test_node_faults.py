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


results = []  # the jobs run in a thread: Ray adds and removes nodes from the main thread only
run = threading.Thread(target=lambda: results.append(pool.map([Job(f"square {x}", "square", (x, 4.0))
                                                                for x in range(4)])))
run.start()
time.sleep(2)  # the first two jobs are running, one on each node
cluster.remove_node(nodes[0], allow_graceful=False)
cluster.add_node(num_cpus=1)  # room for the replacement actor
run.join()
print("RESULT", results[0], flush=True)
pool.close()
ray.shutdown()
cluster.shutdown()
"""


KILL_A_TRAIN_WORKER_NODE = r"""
import json, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import ray
from ray.cluster_utils import Cluster
from drml_ray.config import load_config
from drml_ray.ner.finetune import run_finetune
from tests.helpers import NoteNode

out = Path(sys.argv[3])
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "gcs_server_port": int(sys.argv[2]),
                                                         "include_dashboard": False})
nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
ray.init(address=cluster.address)
cfg = load_config("ner/smoke", ["train.epochs=4", "scaling.max_failures=2"])  # a worker on each node
marker = out / "node_of_rank_0"


runs = {}  # the run in a thread: Ray adds and removes nodes from the main thread only
fit = threading.Thread(target=lambda: runs.update(killed=run_finetune(cfg, out / "killed",
                                                                      loop_callbacks=[NoteNode(str(marker))])))
fit.start()
snapshot = out / "killed" / "train" / "checkpoint_manager_snapshot.json"
while not (marker.exists() and snapshot.exists() and "checkpoint_dir_name" in snapshot.read_text()):
    time.sleep(0.05)  # rank 0 checkpointed epoch 1 and Ray Train registered it
victim = next(n for n in nodes if n.node_id == marker.read_text())
cluster.remove_node(victim, allow_graceful=False)  # mid-epoch
cluster.add_node(num_cpus=1)  # room for the restarted worker
fit.join()
killed = runs["killed"]
straight = run_finetune(cfg, out / "straight")
print("RESULT", json.dumps({"killed": killed, "straight": straight}))
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


@pytest.mark.slow  # ~2.5 min; CI keeps the restart (test_failure_config_restarts_workers_from_the_latest_checkpoint)
def test_a_train_worker_node_that_dies_mid_epoch_resumes_and_trains_as_an_uninterrupted_run(tmp_path):
    """The node of rank 0 dies mid-epoch, once Ray Train registered a checkpoint: it restarts the worker group
    from its latest checkpoint (``scaling.max_failures``) and, every worker's random state being restored, the
    run scores exactly as one that was never interrupted."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTEST_CURRENT_TEST")}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="drt")
    run = subprocess.run([sys.executable, "-c", KILL_A_TRAIN_WORKER_NODE, str(REPO), str(free_port()), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    runs = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    killed, straight = runs["killed"], runs["straight"]
    assert killed["train"]["resumed_at_steps"] in ([15], [30], [45])  # restarted once, from an epoch's checkpoint
    for a, b in zip(killed["history"], straight["history"], strict=True):
        assert (a["train_loss"], a["dev_f1"]) == pytest.approx((b["train_loss"], b["dev_f1"]), rel=1e-6)
    assert killed["test"]["entity"]["micro"]["f1"] == straight["test"]["entity"]["micro"]["f1"]
