"""``drml quickstart`` run again over a finished run: it shows that run, and only if it is the quickstart's."""

from __future__ import annotations

from pathlib import Path

import pytest

import drml_ray.quickstart as quickstart
from drml_ray.config import dump_config, load_config
from drml_ray.errors import RunExistsError
from tests.test_malformed import tiny_model

CONFIG = """name: qs
data: {corpus: generated, generated: {train: 20, dev: 5, test: 5}}
model: {backbone: tiny-random-bert, max_length: 32}
scaling: {num_workers: 0}
"""


@pytest.fixture
def finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A config file and a finished run of it (its model a tiny random BERT) without its test report."""
    config = tmp_path / "qs.yaml"
    config.write_text(CONFIG)
    run_dir = tmp_path / "run"
    tiny_model()(run_dir / "best")
    (run_dir / "config.yaml").write_text(dump_config(load_config(config)))
    (run_dir / "results.json").write_text("{}")
    (run_dir / "report_dev.txt").write_text("DEV REPORT\n")

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(quickstart, "run_finetune", no_training)
    return config, run_dir


def test_a_finished_quickstart_is_shown_even_with_a_report_deleted(finished, capsys):
    config, run_dir = finished
    assert quickstart.run_quickstart(config, run_dir) == run_dir.resolve()
    out = capsys.readouterr().out
    assert "already holds a finished quickstart" in out and "DEV REPORT" in out
    assert f"report_test.txt is not there: drml report {run_dir.resolve()}" in out
    assert out.count("\n    -> ") == quickstart.N_EXAMPLES  # the test sentences went through drml predict


def test_a_finished_run_of_another_config_is_refused_naming_the_difference(finished):
    config, run_dir = finished
    config.write_text(CONFIG + "train: {lr: 0.5}\n")
    with pytest.raises(RunExistsError, match=r"train.lr: 5e-05 there, 0.5 now"):
        quickstart.run_quickstart(config, run_dir)


def test_a_finished_run_without_its_config_is_refused(finished):
    config, run_dir = finished
    (run_dir / "config.yaml").unlink()
    with pytest.raises(RunExistsError, match="no config.yaml"):
        quickstart.run_quickstart(config, run_dir)
