"""Driver logic that needs no running Ray: episode jobs, run-directory checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drml_ray.errors import RunExistsError, UserError
from drml_ray.meta.config import MetaExperiment
from drml_ray.meta.driver import FREE_KEYS, _check_budget, episode_jobs, resolve_starts
from drml_ray.runtime.rundir import open_run


def cfg(**meta) -> MetaExperiment:
    tasks = {"train_tasks": ["generated:PER", "generated:LOC"], "heldout_tasks": ["generated:ORG"]}
    return MetaExperiment(name="x", meta=tasks | meta)


def test_episode_jobs_depend_on_seed_and_step_only():
    assert episode_jobs(cfg(), 3) == episode_jobs(cfg(workers=8), 3) != episode_jobs(cfg(), 4)
    assert {task for task, _ in episode_jobs(cfg(meta_batch=50), 0)} == {"generated:PER", "generated:LOC"}


def test_eval_keys_that_choose_cells_may_change_but_not_the_budget_or_the_setup(tmp_path):
    open_run(tmp_path, cfg(), marker=None, free=FREE_KEYS)
    _check_budget(tmp_path, cfg())
    other = cfg().model_copy(update={"eval": cfg().eval.model_copy(update={"seeds": [7], "shots": [10]})})
    open_run(tmp_path, other, marker=None, free=FREE_KEYS)
    _check_budget(tmp_path, other)
    longer = cfg().model_copy(update={"eval": cfg().eval.model_copy(update={"epochs": 40})})
    with pytest.raises(RunExistsError, match="holds cells adapted with another budget"):
        _check_budget(tmp_path, longer)
    with pytest.raises(RunExistsError, match=r"a different config .*meta.meta_steps: 150 there, 7 now"):
        open_run(tmp_path, cfg(meta_steps=7), marker=None, free=FREE_KEYS)


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


CELLS = 60


def _record_many(path: str, seed: int, start: Any) -> None:
    from drml_ray.meta.results import record_cell

    start.wait()  # both processes write at the same time
    for k in range(CELLS):
        record_cell(Path(path), ("politics", str(k), seed, "reptile"), {"f1": k / 100})


def test_two_processes_filling_one_table_lose_no_cell(tmp_path):
    """The lock really contends: two processes record 60 cells each into one meta_eval.json at once (without
    the lock, read-merge-write races drop cells)."""
    import multiprocessing

    path, context = tmp_path / "meta_eval.json", multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_record_many, args=(str(path), seed, start)) for seed in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    table = json.loads(path.read_text())["politics"]
    assert len(table) == CELLS and all(table[str(k)]["reptile"]["seeds"] == [1, 2] for k in range(CELLS))


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


def test_the_table_names_a_task_folder_by_its_name_not_its_whole_path():
    from drml_ray.meta.results import format_meta_eval

    cell = {"mean_f1": 0.5, "std_f1": 0.0, "f1_per_seed": [0.5]}
    table = {"/home/u/data/clinical": {"10": {"direct": cell}}, "/srv/x/legal": {"10": {"direct": cell}},
             "crossner_ai": {"10": {"direct": cell}}}  # fmt: skip
    rows = format_meta_eval(table, ["direct"]).splitlines()[2:5]
    assert [row.split(" | ")[0] for row in rows] == ["| clinical", "| legal", "| crossner_ai"]


def test_init_takes_a_model_for_every_method_or_a_meta_train_run_holding_one_per_method(tmp_path):
    """``--init runs/meta`` (the run directory drml meta-train wrote) gave every method that folder, and each
    was refused as no model folder; it gives each method its own folder inside."""
    for folder in ("meta/reptile", "meta/fomaml", "one"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.json").write_text("{}")
    cfg = MetaExperiment.model_validate({"name": "m", "meta": {}, "eval": {"methods": ["direct", "reptile", "fomaml"]}})
    starts = resolve_starts(cfg, tmp_path / "out", [str(tmp_path / "meta")])
    assert starts == {"direct": "minilm", "reptile": str(tmp_path / "meta/reptile"),
                      "fomaml": str(tmp_path / "meta/fomaml")}  # fmt: skip
    starts = resolve_starts(cfg, tmp_path / "out", [str(tmp_path / "one"), f"fomaml={tmp_path / 'meta/fomaml'}"])
    assert (starts["reptile"], starts["fomaml"]) == (str(tmp_path / "one"), str(tmp_path / "meta/fomaml"))
    with pytest.raises(UserError, match=r"--init .*/out: no reptile model there \(config.json\): give the folder "
                       r"drml meta-train writes, OUTPUT/reptile, or its run directory OUTPUT"):  # fmt: skip
        resolve_starts(cfg, tmp_path / "out", [str(tmp_path / "out")])
