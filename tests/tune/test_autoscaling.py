"""A search on Ray's fake autoscaling cluster: the head offers no CPUs, so every trial's Ray Train
workers need worker nodes, the autoscaler adds them on demand, and removes them once idle.

Scale-down is slow for a reason outside drml-ray: Ray Train V2 registers its workers' resources with
Ray's AutoscalingCoordinator, which holds them as a standing ``request_resources`` until they
expire 180 s after the last renewal (``ray status`` shows "{'CPU': 1}: 2 from request_resources()"
after the run has ended; the cancel at controller shutdown did not clear it here). Only then are
the nodes idle; with a 6 s idle timeout they went away ~3 min after the search ended.

Runs `drml tune` in a subprocess against a head this test starts (and alone stops: see
tests/test_jobs_submit.py for why it never calls `ray stop`).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.test_jobs_submit import BIN, free_port, stop_processes_under

pytestmark = [pytest.mark.cluster, pytest.mark.slow]  # ~5 min, 3 of them waiting for Train's request expiry
REPO = Path(__file__).resolve().parents[2]
IDLE_TIMEOUT_S = 6
SCALE_DOWN_WITHIN_S = 300  # Train's 180 s request expiry + the coordinator's 20 s tick + the idle timeout


def worker_nodes(address: str, env: dict) -> int | None:
    """Active nodes besides the head, from the autoscaler's summary in `ray status` (lines ``N <node>``)."""
    out = subprocess.run([BIN / "ray", "status", "--address", address], env=env,
                         capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    if "Active:" not in out:
        return None
    active = out.split("Active:")[1].split("Pending:")[0]
    return sum(int(n) for n in re.findall(r"^\s*(\d+) \S+", active, flags=re.MULTILINE)) - 1


@pytest.fixture
def autoscaling_head():
    import ray._private.services as services

    temp_dir = tempfile.mkdtemp(prefix="dra")
    port = free_port()
    address = f"{services.get_node_ip_address()}:{port}"
    config = {
        "cluster_name": "drml-fake", "max_workers": 2, "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_S / 60,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": address},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "ray.worker.cpu": {"resources": {"CPU": 2}, "node_config": {}, "min_workers": 0, "max_workers": 2},
        },
        "head_node_type": "ray.head.default", "auth": {}, "docker": {}, "file_mounts": {},
        "cluster_synced_files": [], "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }  # fmt: skip
    config_path = Path(temp_dir) / "autoscaling.json"
    config_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTEST_CURRENT_TEST")}
    env |= {"RAY_AUTH_MODE": "disabled", "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    with open(Path(temp_dir) / "ray_start.log", "w") as log:
        subprocess.run(
            [BIN / "ray", "start", "--head", f"--port={port}", "--num-cpus=0", f"--temp-dir={temp_dir}",
             f"--autoscaling-config={config_path}", "--include-dashboard=true", f"--dashboard-port={free_port()}",
             "--disable-usage-stats",
             *[f"--{name}-port={free_port()}" for name in
               ("dashboard-agent-listen", "dashboard-agent-grpc", "runtime-env-agent", "metrics-export")]],
            env=env, check=True, stdout=log, stderr=subprocess.STDOUT, timeout=120,
        )  # fmt: skip
    try:
        yield address, env
    finally:
        stop_processes_under(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_trials_scale_worker_nodes_up_and_down(autoscaling_head, tmp_path):
    address, env = autoscaling_head
    deadline = time.monotonic() + 60
    while worker_nodes(address, env) is None and time.monotonic() < deadline:
        time.sleep(2)  # the autoscaler's first status report takes a few seconds
    assert worker_nodes(address, env) == 0
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            count = worker_nodes(address, env)
            if count is not None:
                seen.append(count)
            time.sleep(2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run_dir = tmp_path / "autoscaled"
    search = subprocess.run(
        [BIN / "drml", "tune", "configs/tune/smoke.yaml", "--output-dir", str(run_dir),
         "--set", "tune.num_samples=2", "--set", "tune.max_concurrent_trials=2", "--set", "train.epochs=1",
         "--set", "scaling.num_workers=2"],  # 2 trials x 2 workers: the head has no CPU, each needs a node
        env=env | {"RAY_ADDRESS": address}, cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    done.set()
    watcher.join()
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    with (run_dir / "trials.csv").open() as handle:
        assert [t["state"] for t in csv.DictReader(handle)] == ["completed", "completed"]
    assert max(seen) >= 1, seen  # the autoscaler added worker nodes for the trials' workers
    ended, deadline = time.monotonic(), time.monotonic() + SCALE_DOWN_WITHIN_S
    while (count := worker_nodes(address, env)) != 0 and time.monotonic() < deadline:
        time.sleep(5)
    assert count == 0, f"{count} worker node(s) still up {time.monotonic() - ended:.0f} s after the search"
    print(f"worker nodes gone {time.monotonic() - ended:.0f} s after the search")
