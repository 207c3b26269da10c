"""Driver logic that needs no running Ray: episode jobs, run-directory checks."""

from __future__ import annotations

import pytest

from drml_ray.config import MetaExperiment, dump_config
from drml_ray.meta.driver import _check_budget, _check_config, _setup, episode_jobs
from drml_ray.runs import RunExistsError


def cfg(**meta) -> MetaExperiment:
    return MetaExperiment(name="x", meta={"train_tasks": ["a", "b"], "heldout_tasks": ["c"], **meta})


def test_episode_jobs_depend_on_seed_and_step_only():
    assert episode_jobs(cfg(), 3) == episode_jobs(cfg(workers=8), 3) != episode_jobs(cfg(), 4)
    assert {task for task, _ in episode_jobs(cfg(meta_batch=50), 0)} == {"a", "b"}


def test_an_older_config_without_a_new_default_key_is_the_same_setup():
    text = dump_config(cfg(), exclude={"eval", "tune"})
    older = text.replace("  gpus_per_worker: 0.0\n", "")
    assert older != text and _setup(older) == _setup(text)
    assert _setup(dump_config(cfg(inner_steps=9))) != _setup(text)


def test_eval_keys_that_choose_cells_may_change_but_not_the_budget(tmp_path):
    _check_config(tmp_path, cfg())
    _check_budget(tmp_path, cfg())
    other = cfg().model_copy(update={"eval": cfg().eval.model_copy(update={"seeds": [7], "shots": [10]})})
    _check_config(tmp_path, other)
    _check_budget(tmp_path, other)
    longer = cfg().model_copy(update={"eval": cfg().eval.model_copy(update={"epochs": 40})})
    with pytest.raises(RunExistsError, match="holds cells adapted with another budget"):
        _check_budget(tmp_path, longer)
    with pytest.raises(RunExistsError, match="a different config"):
        _check_config(tmp_path, cfg(meta_steps=7))


def test_cells_recorded_by_two_processes_are_merged(tmp_path):
    from drml_ray.meta.results import record_cell

    path = tmp_path / "meta_eval.json"
    record_cell(path, ("politics", "10", 1, "reptile"), {"f1": 0.5})
    # Another process added a cell meanwhile; this one's next cell must keep it.
    record_cell(path, ("politics", "10", 1, "direct"), {"f1": 0.1})
    table = record_cell(path, ("politics", "10", 2, "reptile"), {"f1": 0.7})
    assert set(table["politics"]["10"]) == {"reptile", "direct"}
    cell = table["politics"]["10"]["reptile"]
    assert cell["f1_per_seed"] == [0.5, 0.7] and cell["seeds"] == [1, 2]
    assert cell["mean_f1"] == pytest.approx(0.6) and cell["std_f1"] == pytest.approx(0.1414213562)


def test_a_cell_of_more_shots_than_train_sentences_is_the_all_shot_cell():
    from drml_ray.meta.results import finished_twin, twin_cell

    sizes = {"music": 100}
    all_run, fifty_run = {"f1": 0.4, "shots": 100}, {"f1": 0.3, "shots": 50}
    table = {"music": {"all": {"direct": {"runs": {"1": all_run}}}, "50": {"direct": {"runs": {"1": fifty_run}}}}}
    assert finished_twin(table, ("music", "100", 1, "direct"), sizes) == ("all", all_run)
    assert finished_twin(table, ("music", "250", 1, "direct"), sizes) == ("all", all_run)
    assert finished_twin(table, ("music", "25", 1, "direct"), sizes) is None
    assert finished_twin(table, ("music", "100", 2, "direct"), sizes) is None  # another seed
    assert finished_twin(table, ("music", "100", 1, "reptile"), sizes) is None  # another method
    computed_100 = {"music": {"100": {"direct": {"runs": {"1": all_run}}}}}
    assert finished_twin(computed_100, ("music", "all", 1, "direct"), sizes) == ("100", all_run)
    # Politics has 200 train sentences: its 100-shot cell is a cell of its own.
    assert twin_cell(("politics", "100", 1, "direct"), {"politics": 200}) == ("politics", "100", 1, "direct")
    assert twin_cell(("politics", "all", 1, "direct"), {"politics": 200}) == ("politics", "all", 1, "direct")
