"""Result files that drml reads back (``drml report``, and the commands that resume from their cells and rows),
edited by hand: each is a user error naming the file and the field, never a ``KeyError`` or a format error from
inside a plot. No Ray, no training: the files are written here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from drml_ray.continual.results import RETRAIN, read_baseline, read_row
from drml_ray.errors import UserError
from drml_ray.irl import meta_results, results
from drml_ray.report.build import collect
from drml_ray.runtime.runfiles import MEASURE_AGAIN, RERUN

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MICRO = {"f1": 0.9, "precision": 0.8, "recall": 1.0}
SPLIT = {"entity": {"micro": MICRO, "per_type": {"PER": {"f1": 0.9}}}}


def run_dir(tmp_path: Path, config: str, files: dict[str, object]) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(CONFIGS / config, folder / "config.yaml")
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def rows(sentences: list[tuple[list[str], list[str], list[str]]]) -> str:
    return "".join(json.dumps({"tokens": t, "gold": g, "pred": p}) + "\n" for t, g, p in sentences)


CASES = {
    "a score that is a string": (
        "ner/smoke.yaml", {"results.json": {"test": {"entity": {"micro": {**MICRO, "f1": "0.9"}, "per_type": {}}}}},
        "results.json: damaged, not the JSON drml wrote (at test.entity.micro.f1: Input should be a valid number)"),
    "an evaluation without its loss": (
        "ner/smoke.yaml", {"results.json": {"dev": SPLIT, "history": [{"epoch": 1, "dev_f1": 0.5}]}},
        "results.json: damaged, not the JSON drml wrote (at history.0.train_loss: Field required)"),
    "a prediction a tag short": (
        "ner/smoke.yaml", {"results.json": {"dev": SPLIT, "test": SPLIT},
                           "predictions_test.jsonl": rows([(["Anna"], ["B-PER"], ["B-PER"]),
                                                           (["in", "Rome"], ["O", "B-LOC"], ["O"])])},
        "predictions_test.jsonl, line 2: damaged, not the JSON drml wrote (2 tokens, 2 gold and 1 predicted tags)"),
    "a prediction line cut short": (
        "ner/smoke.yaml", {"results.json": {"dev": SPLIT, "test": SPLIT},
                           "predictions_test.jsonl": '{"tokens": ["Anna"], "gold": ["B-PER"]\n'},
        "predictions_test.jsonl, line 1: damaged, not the JSON drml wrote (Expecting ',' delimiter"),
    "a search's wall time that is not a number": (
        "ner/smoke.yaml", {"trials.csv": "trial,dev_f1\nt0,0.5\n", "results.json": {"tune": {"wall_s": "long"}}},
        "results.json: damaged, not the JSON drml wrote (at tune.wall_s: Input should be a valid number)"),
    "a meta-eval cell without its std": (
        "meta/smoke.yaml", {"meta_eval.json": {"politics": {"10": {"reptile": {"mean_f1": 0.5}}}}},
        "meta_eval.json: damaged, not the JSON drml wrote (at politics.10.reptile.std_f1: Field required)"),
    "a baseline's iterations as text": (
        "rl/smoke_nav2d.yaml", {"meta_train.json": {"multitask": {"iterations": "3", "wall_s": 1.0}, "wall_s": 1.0}},
        "meta_train.json: damaged, not the JSON drml wrote (at multitask.iterations: Input should be a valid integer)"),
    "a strategy without its minutes": (
        "continual/smoke.yaml", {"continual.json": {"protocol": "domain", "experiences": ["a"], "strategies": {
            "naive": {"acc": 0.5, "bwt": None, "fwt": None, "mean_forgetting": None}}}},
        "continual.json: damaged, not the JSON drml wrote (at strategies.naive.seconds: Field required)"),
    "an expert without its demonstrations": (
        "rl/smoke_irl.yaml", {"experts.json": {"nav2d": {"task": {"goal_x": 1.0}, "horizon": 20, "return": -3.0,
                                                         "random_return": -9.0}, "wall_s": 2.0}},
        "experts.json: damaged, not the JSON drml wrote (at nav2d.demo_returns: Field required)"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_hand_edited_result_file_is_a_user_error_naming_the_field(case, tmp_path):
    config, files, expected = CASES[case]
    folder = run_dir(tmp_path, config, files)
    with pytest.raises(UserError) as err:
        collect(folder)
    assert str(err.value).startswith(str(folder / expected.split(":")[0]))
    assert expected in str(err.value)
    assert str(err.value).endswith(MEASURE_AGAIN if "meta_eval" in expected else RERUN)


@pytest.mark.parametrize(
    ("read", "cells", "expected"),
    [(results.read_cells, {"gail/nav2d/4": {"return": 1.0}}, "at gail/nav2d/4.[key]: String should match pattern"),
     (results.read_cells, {"airl/nav2d/4/1": {"return": 1.0, "transfer": {"carried": "-3"}}},
      "at airl/nav2d/4/1.transfer.carried: Input should be a valid number"),
     (meta_results.read_cells, {"budget": {}, "cells": {"reptile/1/0/test0": {"reward": [1.0, None]}}},
      "at cells.reptile/1/0/test0.reward.1: Input should be a valid number"),
     (meta_results.read_cells, {"cells": {}}, "at budget: Field required")],
)  # fmt: skip
def test_the_cells_a_resumed_run_keeps_are_checked(read, cells, expected, tmp_path):
    """``drml rl irl`` and ``drml rl meta-irl`` keep their finished cells in a file: a key that is not
    ``method/family/demos/seed``, a return that is text or a missing field is named, and the advice is to delete
    the file (neither command has ``--overwrite``)."""
    (tmp_path / "cells.json").write_text(json.dumps(cells), encoding="utf-8")
    with pytest.raises(UserError) as err:
        read(tmp_path / "cells.json")
    assert expected in str(err.value) and str(err.value).endswith(MEASURE_AGAIN)


def test_a_meta_rl_run_without_a_timed_meta_step_reports_a_dash(tmp_path):
    """``seconds_per_meta_step`` is null when no meta-step was timed; the report showed ``{None:.1f}`` before."""
    record = {"meta": {"checks": [{"step": 0, "return_before": -5.0, "return_after": -4.0}], "step_s": [],
                       "seconds_per_meta_step": None}, "wall_s": 1.0}  # fmt: skip
    _, sections = collect(run_dir(tmp_path, "rl/smoke_nav2d.yaml", {"meta_train.json": record}))
    assert sections[0].table == [{"method": "meta", "s / meta-step": "—", "meta-steps": 0}]


def test_a_continual_runs_kept_rows_and_baseline_are_checked(tmp_path):
    """``drml continual`` resumes from each finished experience's ``row.json`` and the start's ``baseline.json``."""
    row = {"R": [0.5, 0.0], "dev_f1": 0.6, "seen": None, "seconds": 3.0}
    (tmp_path / "row.json").write_text(json.dumps(row), encoding="utf-8")
    assert read_row(tmp_path / "row.json") == row
    (tmp_path / "row.json").write_text(json.dumps(row | {"seen": {"micro_f1": 0.5}}), encoding="utf-8")
    with pytest.raises(UserError, match=r"row.json: damaged, .*\(at seen.macro_f1: Field required\)") as err:
        read_row(tmp_path / "row.json")
    assert str(err.value).endswith(RETRAIN)
    (tmp_path / "baseline.json").write_text("[0.5, null]", encoding="utf-8")
    with pytest.raises(UserError, match=r"baseline.json: damaged, .*\(at 1: Input should be a valid number\)"):
        read_baseline(tmp_path / "baseline.json")


def test_a_meta_irl_task_kept_for_its_identity_is_checked(tmp_path):
    """A task's ``task.json`` of another identity is trained again (``None``); one of this identity must hold its
    returns."""
    record = {"identity": {"goal": [1.0, 0.0]}, "return": -3.0, "random_return": -9.0, "demo_returns": [-3.0]}
    (tmp_path / "task.json").write_text(json.dumps(record), encoding="utf-8")
    assert meta_results.read_task(tmp_path / "task.json", {"goal": [0.0, 1.0]}) is None
    assert meta_results.read_task(tmp_path / "task.json", {"goal": [1.0, 0.0]}) == record
    assert meta_results.read_task(tmp_path / "missing.json", {"goal": [1.0, 0.0]}) is None
    (tmp_path / "task.json").write_text(json.dumps(record | {"return": None}), encoding="utf-8")
    with pytest.raises(
        UserError,
        match=r"task.json: damaged, .*\(at return: Input should be a valid number\); "
        r"restore it, or delete it to train that task's expert again",
    ):
        meta_results.read_task(tmp_path / "task.json", {"goal": [1.0, 0.0]})


def test_an_evaluation_whose_scores_were_edited_is_a_user_error_naming_the_field(tmp_path):
    """``drml report`` of the folder of ``drml evaluate`` reads ``eval_<split>.json`` as strictly as a run's files."""
    record = {"model": "m", "data": "d", "decoding": "argmax", "dev": SPLIT}
    (tmp_path / "eval_dev.json").write_text(json.dumps(record))
    assert collect(tmp_path)[1][0].table[0]["entity F1"] == "0.9000"
    record["dev"] = {"entity": {"micro": {**MICRO, "recall": None}, "per_type": {}}}
    (tmp_path / "eval_dev.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match=r"eval_dev.json: damaged, .*\(at dev.entity.micro.recall: Input should be"):
        collect(tmp_path)
    (tmp_path / "eval_dev.json").write_text(json.dumps({**record, "dev": None}))
    with pytest.raises(UserError, match=r"eval_dev.json: damaged, .*\(at dev: "):
        collect(tmp_path)
