"""Ray Train's local mode (``scaling.num_workers: 0``): the loop in this process, with no Ray cluster, and the
record of checkpoints that Ray Train's controller would otherwise keep."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drml_ray.config import FinetuneConfig, load_config
from drml_ray.data.conll import write_conll
from drml_ray.data.generated import generated_splits
from drml_ray.errors import UserError
from drml_ray.ner.finetune import run_finetune
from drml_ray.ner.kind import trial_plan
from drml_ray.ner.train_record import (
    LOCAL_RECORD,
    keep_local_checkpoint,
    local_checkpoint_name,
    local_checkpoints,
    local_result,
    prune_unregistered_checkpoints,
)
from tests.helpers import FailOnce

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "ner" / "smoke.yaml"
STEPS_PER_EPOCH = 240 // 16  # smoke: 240 generated training sentences, global batch 16


@pytest.fixture
def keep_threads():
    """The loop sets this process's torch threads (``cpus_per_worker``): put them back for the other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def report(train_dir: Path, dev_f1: float) -> str:
    """A checkpoint as the loop reports one (moved into place, then recorded); returns its name."""
    name = local_checkpoint_name()
    (train_dir / name).mkdir(parents=True)
    (train_dir / name / "state.pt").write_bytes(b"weights")
    keep_local_checkpoint(train_dir, name, {"dev_f1": dev_f1})
    return name


def test_the_record_keeps_the_best_by_dev_f1_and_the_latest(tmp_path):
    names = [report(tmp_path, f1) for f1 in (0.5, 0.7, 0.6)]
    # By hand: the best so far is the 0.7, the latest the 0.6; the 0.5 is deleted.
    assert [e["checkpoint_dir_name"] for e in local_checkpoints(tmp_path)] == [names[1], names[2]]
    names += [report(tmp_path, f1) for f1 in (0.7, 0.65)]
    # An equal score displaces the best, as Ray ranks equals (the later first): 0.7 (the 4th), then 0.65.
    assert [e["checkpoint_dir_name"] for e in local_checkpoints(tmp_path)] == [names[3], names[4]]
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*")) == [names[3], names[4]]
    result = local_result(tmp_path)
    assert Path(result.checkpoint.path).name == names[4]
    assert [(Path(c.path).name, m["dev_f1"]) for c, m in result.best_checkpoints] == [(names[3], 0.7), (names[4], 0.65)]
    (tmp_path / "checkpoint_2099-01-01_00-00-00.000000").mkdir()  # moved into place, never recorded (a crash)
    assert [p.name for p in prune_unregistered_checkpoints(tmp_path)] == ["checkpoint_2099-01-01_00-00-00.000000"]


def test_a_damaged_record_is_a_user_error_naming_it(tmp_path):
    assert local_result(tmp_path).checkpoint is None  # no record yet: nothing to continue from
    for record, why in [
        ('{"not": "a list"}', "a JSON dict, not a list"),
        ('[{"checkpoint_dir_name": "checkpoint_1", "metrics": {"dev_f1": "0.9"}}]', "at 0.metrics.dev_f1"),
        ('[{"checkpoint_dir_name": "checkpoint_1", "metrics": {"epoch": 1}}]', "at 0.metrics.dev_f1: Field required"),
        ('[{"checkpoint_dir_name": "../../elsewhere", "metrics": {"dev_f1": 0.9}}]', "at 0.checkpoint_dir_name"),
    ]:
        (tmp_path / LOCAL_RECORD).write_text(record)
        with pytest.raises(UserError) as err:
            local_result(tmp_path)
        assert f"{LOCAL_RECORD}: damaged, not the JSON drml wrote ({why}" in str(err.value)
        assert str(err.value).endswith(f"delete {tmp_path} to train from the beginning")


def test_local_mode_trains_here_and_resumes_as_if_never_stopped(tmp_path, keep_threads):
    cfg = load_config(SMOKE, ["train.epochs=2", "scaling.num_workers=0"])
    straight = run_finetune(cfg, tmp_path / "straight")
    with pytest.raises(RuntimeError, match="injected failure"):
        run_finetune(cfg, tmp_path / "run", loop_callbacks=[FailOnce(after=1)])
    assert not (tmp_path / "run" / "results.json").exists()
    results = run_finetune(cfg, tmp_path / "run")  # same directory: continues from the recorded checkpoint
    assert results["train"]["resumed_at_steps"] == [STEPS_PER_EPOCH]
    assert [h["step"] for h in results["history"]] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    for resumed, plain in zip(results["history"], straight["history"], strict=True):
        assert (resumed["train_loss"], resumed["dev_f1"]) == pytest.approx((plain["train_loss"], plain["dev_f1"]))
    assert results["test"] == straight["test"]
    assert (tmp_path / "run" / "best" / "config.json").exists()


def test_a_run_continued_on_an_edited_corpus_file_is_refused(tmp_path, keep_threads):
    """Its checkpoints learned from the file as it was: continuing would mix two corpora in one run."""
    splits = generated_splits(240, 60, 60, 13)
    for split, sentences in splits.items():
        write_conll(tmp_path / f"{split}.conll", sentences)
    sets = [f"data.{split}={tmp_path}/{split}.conll" for split in splits]
    cfg = load_config(SMOKE, ["train.epochs=2", "scaling.num_workers=0", *sets])
    with pytest.raises(RuntimeError, match="injected failure"):
        run_finetune(cfg, tmp_path / "run", loop_callbacks=[FailOnce(after=1)])
    write_conll(tmp_path / "dev.conll", splits["dev"][:-1])
    with pytest.raises(UserError, match=r"run: the dev split changed since this run began"):
        run_finetune(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "results.json").exists()


def test_local_mode_has_no_restarts_and_no_tune_trials():
    with pytest.raises(ValueError, match="max_failures: 1 restarts a worker group, and num_workers: 0"):
        FinetuneConfig.model_validate({"name": "x", "scaling": {"num_workers": 0, "max_failures": 1}})
    local = FinetuneConfig.model_validate({"name": "x", "scaling": {"num_workers": 0, "cpus_per_worker": 2}})
    assert local.scaling.processes == 1  # what resources and batch shards count: the calling process
    with pytest.raises(UserError, match="local mode"):
        trial_plan(local)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_local_mode_on_a_gpu_needs_one_visible(tmp_path):
    from drml_ray.ner.train_loop import worker_device

    assert worker_device(FinetuneConfig(name="x", scaling={"num_workers": 0}).scaling) == torch.device("cpu")
    cfg = load_config(SMOKE, ["scaling.num_workers=0", "scaling.use_gpu=true"])
    with pytest.raises(UserError, match="scaling.use_gpu: true, and this process sees no GPU"):
        run_finetune(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run directory is made
