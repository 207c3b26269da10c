"""drml tune over meta-learning: trials meta-train on their own actor pools and ASHA sees held-out dev F1."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drml_ray.cli import app
from drml_ray.config import load_config
from drml_ray.data.conll import write_conll
from drml_ray.data.generated import generated_splits
from drml_ray.meta.config import MetaExperiment

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
META_SMOKE = REPO / "configs" / "tune" / "meta_smoke.yaml"


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_meta_search_reports_heldout_f1_per_evaluation(ray_session, tmp_path, monkeypatch):
    # the held-out task is a folder given by a relative path: a trial must read it from the working folder too
    for split, sentences in generated_splits(40, 20, 20, seed=5).items():
        write_conll(tmp_path / "heldout" / f"{split}.conll", sentences)
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "tune_meta"
    result = cli("tune", META_SMOKE, "--output-dir", run_dir, "--set", "tune.num_samples=2",  # both at once
                 "--set", "meta.heldout_tasks=[./heldout]")  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(run_dir / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 2
    assert {t["state"] for t in trials} <= {"completed", "stopped by asha"}
    assert any(t["state"] == "completed" for t in trials)
    assert all(0.0 <= float(t["best"]) <= 1.0 and float(t["epochs"]) >= 1 for t in trials)
    best = load_config(run_dir / "best_config.yaml")  # a plain meta-learning file drml meta-train accepts
    assert isinstance(best, MetaExperiment) and best.tune is None
    results = json.loads((run_dir / "results.json").read_text())
    assert results["best_trial"] in {t["trial"] for t in trials}
    if results["best_model"]:
        assert (Path(results["best_model"]) / "drml_label_head.pt").is_file()


def test_meta_search_needs_one_algorithm_per_trial(tmp_path):
    result = cli("tune", META_SMOKE, "--output-dir", tmp_path / "x", "--set", "meta.algorithms=[reptile,fomaml]")
    assert result.exit_code == 2 and "tunes one algorithm per trial" in result.output


RL_SMOKE = REPO / "configs" / "tune" / "rl_smoke_nav2d.yaml"


def test_meta_rl_search_reports_the_heldout_return_and_keeps_the_best_weights(ray_session, tmp_path):
    from drml_ray.rl.config import RLExperiment

    run_dir = tmp_path / "tune_rl"
    result = cli("tune", RL_SMOKE, "--output-dir", run_dir, "--set", "tune.num_samples=2")
    assert result.exit_code == 0, result.output
    with open(run_dir / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 2 and all(float(t["best"]) < 0 for t in trials)  # Nav2D returns are negative
    assert any(t["state"] == "completed" for t in trials)
    best = load_config(run_dir / "best_config.yaml")
    assert isinstance(best, RLExperiment) and best.tune is None
    results = json.loads((run_dir / "results.json").read_text())
    assert results["best_heldout_return"] == max(float(t["best"]) for t in trials)
    if results["best_model"]:
        assert (Path(results["best_model"]) / "weights.pt").is_file()


def test_meta_rl_search_needs_the_heldout_return_metric(tmp_path):
    result = cli("tune", RL_SMOKE, "--output-dir", tmp_path / "x", "--set", "tune.metric=dev_f1")
    assert result.exit_code == 2 and "set tune.metric: heldout_return" in result.output
