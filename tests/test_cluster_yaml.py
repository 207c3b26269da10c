"""cluster.yaml is a valid Ray autoscaler config (Ray's own schema) pinned to pyproject's Ray."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_validates_against_rays_autoscaler_schema(cluster):
    import json

    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cluster, schema)  # the file as written (raises naming the bad field)
    validate_config(prepare_config(cluster))  # and as `ray up` sees it, AWS defaults merged in


def test_head_cpu_and_gpu_worker_types_scale_from_zero(cluster):
    types = cluster["available_node_types"]
    assert cluster["head_node_type"] in types and types[cluster["head_node_type"]]["resources"] == {"CPU": 0}
    workers = {name: spec for name, spec in types.items() if name != cluster["head_node_type"]}
    gpu = [spec for spec in workers.values() if spec["node_config"]["InstanceType"].startswith(("g", "p"))]
    cpu = [spec for spec in workers.values() if spec not in gpu]
    assert gpu and cpu
    assert all(spec["min_workers"] == 0 and spec["max_workers"] >= 1 for spec in workers.values())
    assert 0 < cluster["idle_timeout_minutes"] <= 30


def test_dashboard_is_not_exposed(cluster):
    (head_start,) = [c for c in cluster["head_start_ray_commands"] if "ray start --head" in c]
    assert "--dashboard-host=127.0.0.1" in head_start  # reached via `ray dashboard cluster.yaml` (SSH tunnel)


def test_ray_version_matches_pyproject(cluster):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    (ray_req,) = [Requirement(d) for d in pyproject["project"]["dependencies"] if d.startswith("ray[")]
    pinned = {m.group(1) for c in cluster["setup_commands"] for m in re.finditer(r"ray\[[\w,]+\]==([\d.]+)", c)}
    assert len(pinned) == 1
    (version,) = pinned
    assert version in ray_req.specifier, f"cluster.yaml installs Ray {version}, pyproject wants {ray_req.specifier}"
    import ray

    assert ray.__version__ == version  # and it is the Ray the tests run on
