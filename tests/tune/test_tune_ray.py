"""``drml tune`` end to end on the shared test Ray: trials are real 1-worker Ray Train runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drml_ray.cli import app
from drml_ray.config import FinetuneConfig, load_config
from drml_ray.tune.driver import run_tune
from tests.helpers import FailOnce, chromium_dom

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "tune" / "smoke.yaml"


def cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def read_trials(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "trials.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def smoke_search(ray_session, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("tune") / "smoke"
    cli("tune", SMOKE, "--output-dir", run_dir, "--set", "tune.num_samples=2")  # the shipped search, both at once
    return run_dir


def test_smoke_search_writes_trials_best_config_and_plot(smoke_search):
    trials = read_trials(smoke_search)
    assert [t["trial"] for t in trials] == [f"trial_{i:05d}" for i in range(2)]
    assert set(trials[0]) >= {"train.lr", "model.strategy", "best", "epochs", "state", "wall_s", "overhead_s"}
    assert all(t["state"] in ("completed", "stopped by asha") for t in trials)
    best = max(trials, key=lambda t: float(t["best"]))

    best_cfg = load_config(smoke_search / "best_config.yaml")  # a plain experiment file drml finetune accepts
    assert isinstance(best_cfg, FinetuneConfig) and best_cfg.tune is None
    assert best_cfg.name == "tune_smoke_best"  # its run is not the search's folder (runs/tune_smoke)
    assert best_cfg.train.lr == pytest.approx(float(best["train.lr"]))
    assert best_cfg.model.strategy == best["model.strategy"]

    results = json.loads((smoke_search / "results.json").read_text())
    assert results["best_trial"] == best["trial"]
    assert results["dev"]["entity"]["micro"]["f1"] == pytest.approx(float(best["best"]))  # best/ is that checkpoint
    assert results["tune"]["trial_epochs"] == sum(float(t["epochs"]) for t in trials)
    assert (smoke_search / "best" / "model.safetensors").is_file()
    assert (smoke_search / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trials_keep_only_the_best_and_the_latest_checkpoint(smoke_search):
    for trial in (smoke_search / "tune").glob("trial_*"):  # not one per epoch (Tune's sync only adds files)
        assert 1 <= len([c for c in (trial / "train").glob("checkpoint_*") if c.is_dir()]) <= 2


def test_each_trial_has_tensorboard_events_with_hparams(smoke_search):
    for trial in (smoke_search / "tune").glob("trial_*"):
        tune_events = list(trial.glob("events.out.tfevents.*"))  # Tune's: scalars per epoch + HParams
        assert tune_events and b"hparams" in tune_events[0].read_bytes()
        train_events = list((trial / "tensorboard").glob("events.out.tfevents.*"))  # ours: loss, lr, dev F1
        assert train_events and b"train/loss" in train_events[0].read_bytes()


def test_report_of_a_search_renders_in_chromium(smoke_search):
    cli("report", smoke_search)
    page, markdown = smoke_search / "report.html", smoke_search / "report.md"
    assert "trial_00001" in page.read_text() and "![trials](trials.png)" in markdown.read_text()
    dom = chromium_dom(page)
    # trials, the best model's per-type F1 and its confusion matrix decoded; its worst sentences highlighted
    assert 'data-figures="3"' in dom and 'data-rendered="3"' in dom and 'data-highlights="0"' not in dom
    assert (smoke_search / "best" / "README.md").read_text().startswith("---\n")  # the model card


def test_asha_stops_a_weak_trial(ray_session, tmp_path):
    """One trial at a time: the second (lr 1e-5, F1 0 after an epoch) falls below the first's rung."""
    run_dir = tmp_path / "asha"
    cli("tune", SMOKE, "--output-dir", run_dir,
        "--set", "tune.space={train.lr: {grid: [1.5e-2, 1.0e-5]}}", "--set", "tune.search=grid",
        "--set", "tune.max_concurrent_trials=1", "--set", "train.epochs=3")  # fmt: skip
    strong, weak = read_trials(run_dir)
    assert (strong["state"], float(strong["epochs"])) == ("completed", 3.0)
    assert (weak["state"], float(weak["epochs"])) == ("stopped by asha", 1.0)


def progress_epochs(run_dir: Path, trial: str, column: str = "epoch") -> list[float]:
    with (run_dir / "tune" / trial / "progress.csv").open() as handle:
        return [float(row[column]) for row in csv.DictReader(handle)]


def test_successive_halving_resumes_the_best_from_its_rung(ray_session, tmp_path):
    """Two trials one at a time, one rung at epoch 1 (rf 2): each pauses there until both have a score; the
    better then resumes from its epoch-1 checkpoint and the other stops."""
    run_dir = tmp_path / "sha"
    cli("tune", SMOKE, "--output-dir", run_dir,
        "--set", "tune.space={train.lr: {grid: [1.0e-5, 1.5e-2]}}", "--set", "tune.search=grid",
        "--set", "tune.scheduler={type: sha, grace_period: 1, reduction_factor: 2}",
        "--set", "tune.max_concurrent_trials=1", "--set", "train.epochs=3")  # fmt: skip
    trials = read_trials(run_dir)
    assert sorted((t["state"], float(t["epochs"])) for t in trials) == [("completed", 3.0), ("stopped by sha", 1.0)]
    at_rung = {t["trial"]: progress_epochs(run_dir, t["trial"], "dev_f1")[0] for t in trials}
    winner = next(t["trial"] for t in trials if t["state"] == "completed")
    assert at_rung[winner] == max(at_rung.values())
    epochs = progress_epochs(run_dir, winner)  # resumed from a checkpoint, not started over: no epoch twice
    assert epochs[0] == 1.0 and epochs[-1] == 3.0 and epochs == sorted(set(epochs))  # ([1, 3] if epoch 2
    # finished before Tune paused the trial: Ray Train resumes from the latest checkpoint it wrote)
    assert json.loads((run_dir / "results.json").read_text())["tune"]["trial_epochs"] == 4
    assert all(float(t["overhead_s"]) > 0 for t in trials)  # the resumed trial's time counts both runs


def test_resume_reruns_errored_trials_from_their_checkpoints(ray_session, tmp_path):
    run_dir = tmp_path / "resume"
    sets = ["tune.scheduler.type=fifo", "tune.space={train.lr: {grid: [1.5e-2]}}", "tune.search=grid",
            "train.epochs=2"]  # fmt: skip
    # every trial dies once, after epoch 1's checkpoint
    run_tune(load_config(SMOKE, sets), run_dir, callbacks=[FailOnce(after=1)])
    assert [t["state"] for t in read_trials(run_dir)] == ["error"]
    args = ["tune", SMOKE, "--output-dir", run_dir, *[a for s in sets for a in ("--set", s)]]

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2 and "finished run" in result.output  # refuses without --resume / --overwrite
    cli(*args, "--resume")
    trials = read_trials(run_dir)
    assert [(t["state"], float(t["epochs"])) for t in trials] == [("completed", 2.0)]
    for trial in trials:  # Ray Train resumed the trial from its epoch-1 checkpoint instead of starting over
        assert progress_epochs(run_dir, trial["trial"]) == [1.0, 2.0]


def test_pbt_trains_in_segments_with_tune_checkpoints(ray_session, tmp_path):
    """PBT copies checkpoints between trials: each perturbation interval is one TorchTrainer run whose
    checkpoint is reported to Tune, and the next segment starts from it."""
    run_dir = tmp_path / "pbt"
    cli("tune", SMOKE, "--output-dir", run_dir, "--set", "tune.scheduler={type: pbt, perturbation_interval: 1}",
        "--set", "tune.space={train.lr: {loguniform: [1.0e-3, 2.0e-2]}}", "--set", "tune.num_samples=2",
        "--set", "train.epochs=2")  # fmt: skip
    trials = read_trials(run_dir)
    assert len(trials) == 2
    for trial in trials:  # (progress.csv: Tune's result.json of a trial PBT exploited can miss its last row)
        assert progress_epochs(run_dir, trial["trial"])[-1] == 2.0
        folder = run_dir / "tune" / trial["trial"]
        assert {p.name for p in folder.glob("train_from_epoch_*")} == {"train_from_epoch_0", "train_from_epoch_1"}
        assert list(folder.glob("checkpoint_*"))  # Tune holds the segments' checkpoints (PBT copies them)
