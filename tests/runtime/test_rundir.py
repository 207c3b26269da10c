"""The run-directory contract every command shares (no Ray)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drml_ray.cli import app
from drml_ray.config import DataConfig, FinetuneConfig, ModelConfig, TuneSettings, dump_config
from drml_ray.errors import RunExistsError, UserError
from drml_ray.runtime.rundir import LOCK_FILE, RUN_STAMP, check_same_config, held, open_run
from drml_ray.runtime.runfiles import atomic_write_json, read_json
from tests.test_malformed import tiny_model


def cfg(**train) -> FinetuneConfig:
    return FinetuneConfig(name="x", train=train)


def test_a_new_run_writes_its_config_and_a_finished_one_is_kept_unless_overwritten(tmp_path):
    run = open_run(tmp_path / "r", cfg())
    assert run.is_absolute() and (run / "config.yaml").read_text() == dump_config(cfg())
    (run / "results.json").write_text("{}")
    (run / "best").mkdir()
    with pytest.raises(RunExistsError, match=r"holds a finished run \(results.json exists\); pass --overwrite"):
        open_run(run, cfg())
    open_run(run, cfg(epochs=9), overwrite=True)
    assert not (run / "best").exists() and "epochs: 9" in (run / "config.yaml").read_text()


def test_overwrite_empties_a_run_directory_drml_made_never_a_folder_of_the_users_files(tmp_path):
    """``drml finetune my.yaml -o . --overwrite`` in a project's folder deleted the project (code, data, the
    config itself); a run drml made is emptied, as is one made before the stamp (its config.yaml and result file)."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    for name in ("src/code.py", "my.yaml", "config.yaml", "results.json"):
        (project / name).write_text("mine\n")
    refused = r"project: --overwrite empties only a run directory drml made, and this folder is none \(it holds "
    with pytest.raises(UserError, match=refused + r"config.yaml, my.yaml, results.json, ...\): nothing was deleted"):
        open_run(project, cfg(), overwrite=True)
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == [
        "config.yaml", "my.yaml", "results.json", "src", "src/code.py"]  # fmt: skip
    assert (project / "config.yaml").read_text() == "mine\n"
    with pytest.raises(RunExistsError, match="results.json exists"):  # (refused: not made a run either)
        open_run(project, cfg())
    (project / "results.json").unlink()
    with pytest.raises(UserError, match=r"project: holds files drml did not write \(config.yaml, my.yaml, src/\)"):
        open_run(project, cfg())  # (a run is not written among the user's files)
    with pytest.raises(UserError, match=refused):
        open_run(project, cfg(), overwrite=True)
    run = open_run(tmp_path / "run", cfg())
    (run / "best").mkdir()
    open_run(run, cfg(epochs=9), overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == [RUN_STAMP, "config.yaml"]
    old = tmp_path / "old"  # a finished run from before the stamp
    old.mkdir()
    (old / "config.yaml").write_text(dump_config(cfg()))
    (old / "results.json").write_text("{}")
    (old / "best").mkdir()
    open_run(old, cfg(epochs=9), overwrite=True)
    assert sorted(p.name for p in old.iterdir()) == [RUN_STAMP, "config.yaml"]


def test_a_run_is_not_written_into_a_folder_of_the_users_files_which_overwrite_would_then_empty(tmp_path):
    """``drml evaluate MODEL DATA -o MODEL`` wrote its files among the model's and stamped the folder a run, so the
    same command with ``--overwrite`` deleted the model. A folder holding files is a run's only if drml made it."""
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt"):
        (model / name).write_text("weights\n")
    for overwrite in (False, True):
        with pytest.raises(UserError, match=r"model: (holds files drml did not write|--overwrite empties only a run) "):
            open_run(model, marker="eval_test.json", overwrite=overwrite)
    assert sorted(p.name for p in model.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
    ]
    evaluation = open_run(tmp_path / "eval", marker="eval_test.json")  # an empty or new folder, and a run's, are
    (evaluation / "eval_dev.json").write_text("{}")
    assert open_run(evaluation, marker="eval_test.json") == evaluation  # written into
    unfinished = tmp_path / "unfinished"  # a run from before the stamp: its config.yaml and a checkpoint
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "config.yaml").write_text(dump_config(cfg()))
    assert open_run(unfinished, cfg()) == unfinished


def test_a_run_of_another_kind_is_not_written_into(tmp_path):
    """``drml evaluate RUN DATA -o RUN`` replaced a fine-tuning run's report_test.txt and predictions_test.jsonl
    with the evaluation's; the stamp names the kind, and a run from before that is told by its config.yaml."""
    from drml_ray.meta.config import MetaExperiment

    run = open_run(tmp_path / "ft", cfg())
    assert (run / RUN_STAMP).read_text() == "finetune"
    with pytest.raises(RunExistsError, match=r"/ft holds a run of drml finetune, not of drml evaluate; pass "
                       r"--output-dir another folder \(or --overwrite to replace that run\)"):  # fmt: skip
        open_run(run, marker="eval_test.json")
    with pytest.raises(RunExistsError, match=r"holds a run of drml finetune, not of drml meta-train, drml meta-eval"):
        open_run(run, MetaExperiment(name="x"), marker="meta_train.json")
    (run / RUN_STAMP).write_text("")  # (stamped before it named the kind)
    with pytest.raises(RunExistsError, match=r"holds a run of drml finetune, not of drml evaluate"):
        open_run(run, marker="eval_test.json")
    evaluation = open_run(tmp_path / "ev", marker="eval_test.json")
    assert (evaluation / RUN_STAMP).read_text() == "evaluation"
    assert open_run(evaluation, marker="eval_dev.json") == evaluation  # (another split: the same kind)
    with pytest.raises(RunExistsError, match=r"holds a run of drml evaluate, not of drml finetune"):
        open_run(evaluation, cfg())
    (evaluation / RUN_STAMP).write_text("")  # (an evaluation stamped before the stamp named the kind: its scores)
    (evaluation / "eval_test.json").write_text("{}")
    with pytest.raises(RunExistsError, match=r"holds a run of drml evaluate, not of drml finetune"):
        open_run(evaluation, cfg())
    open_run(evaluation, cfg(), overwrite=True)  # (asked for: the evaluation is replaced)
    assert sorted(p.name for p in evaluation.iterdir()) == [RUN_STAMP, "config.yaml"]


def test_overwrite_never_deletes_what_the_command_reads(tmp_path):
    """``drml evaluate RUN DATA -o RUN --overwrite`` emptied the run, the model it scores among its files, and a
    backbone inside the run directory it replaces went the same way."""
    from drml_ray.irl.config import IRLExperiment

    run = open_run(tmp_path / "ft", cfg())
    (run / "best").mkdir()
    (run / "best" / "config.json").write_text("{}")
    with pytest.raises(UserError, match=r"/ft: --overwrite would delete .*/ft/best, which this command reads: nothing "
                       "was deleted"):  # fmt: skip
        open_run(run, marker="eval_test.json", overwrite=True, reads=[run / "best", "generated"])
    again = FinetuneConfig(name="x", model={"backbone": str(run / "best")})
    with pytest.raises(UserError, match=r"--overwrite would delete .*/ft/best, which this command reads"):
        open_run(run, again, overwrite=True)
    assert (run / "best" / "config.json").read_text() == "{}"
    elsewhere = open_run(tmp_path / "other", again, overwrite=True)  # (read from elsewhere: replaced as asked)
    assert (elsewhere / RUN_STAMP).read_text() == "finetune"
    experts = IRLExperiment(name="e", irl={"experts_dir": str(tmp_path / "irl")})  # (the run drml rl expert fills)
    open_run(tmp_path / "irl", experts, marker="experts.json")
    open_run(tmp_path / "irl", experts, marker="experts.json", overwrite=True)


def test_an_unfinished_run_continues_with_the_same_config_only(tmp_path, capsys):
    run = open_run(tmp_path / "r", cfg())
    (run / "train").mkdir()
    open_run(run, cfg(), free=("tune",))
    assert "continuing the run found there" in capsys.readouterr().out and (run / "train").is_dir()
    open_run(run, cfg().model_copy(update={"name": "renamed", "tune": TuneSettings()}), free=("tune",))
    with pytest.raises(RunExistsError, match=r"train.epochs: 3 there, 9 now; train.lr: 5e-05 there, 0.001 now\)"):
        open_run(run, cfg(lr=1e-3, epochs=9), free=("tune",))
    assert "lr: 5.0e-05" in (run / "config.yaml").read_text()  # the refused config was not written


def test_an_unfinished_run_continues_on_the_same_inputs_only(tmp_path):
    """A corpus file edited between an interrupt and the rerun: the checkpoints learned from the other data."""
    run = open_run(tmp_path / "r", cfg(), inputs={"the train split (t.conll)": "aa", "the dev split (d.conll)": "bb"})
    open_run(run, cfg(), inputs={"the train split (t.conll)": "aa", "the dev split (d.conll)": "bb"})
    with pytest.raises(UserError, match=r"/r: the dev split \(d.conll\) changed since this run began \(inputs.json "
                       r"keeps a hash of what it read\); pass --overwrite to start again"):  # fmt: skip
        open_run(run, cfg(), inputs={"the train split (t.conll)": "aa", "the dev split (d.conll)": "cc"})
    open_run(run, cfg(), inputs={"the train split (t.conll)": "aa", "an input it did not hash (x)": "dd"})
    assert read_json(run / "inputs.json") == {"the train split (t.conll)": "aa", "the dev split (d.conll)": "bb",
                                              "an input it did not hash (x)": "dd"}  # fmt: skip
    open_run(run, cfg(), overwrite=True, inputs={"the dev split (d.conll)": "cc"})
    assert read_json(run / "inputs.json") == {"the dev split (d.conll)": "cc"}


def test_a_key_added_to_drml_later_at_its_default_is_no_difference(tmp_path):
    written = tmp_path / "config.yaml"
    written.write_text(dump_config(cfg()).replace("  fused_adamw: true\n", ""))
    check_same_config(written, cfg())
    written.write_text(dump_config(cfg()).replace("  fused_adamw: true\n", "  fused_adamw: false\n"))
    with pytest.raises(RunExistsError, match="train.fused_adamw: False there, True now"):
        check_same_config(written, cfg())


@pytest.mark.parametrize(("text", "why"), [(b"train: [1\n", "ParserError"), (b"- a\n", "not a mapping"),
                                           (b"\xff\xfe", "UnicodeDecodeError")])  # fmt: skip
def test_a_config_yaml_that_holds_no_config_is_refused_as_the_users(tmp_path, text, why):
    (tmp_path / RUN_STAMP).touch()  # (a run drml made, its config.yaml edited since)
    (tmp_path / "config.yaml").write_bytes(text)
    with pytest.raises(RunExistsError, match=rf"config.yaml is not the config of a run \({why}.*pass --overwrite"):
        open_run(tmp_path, cfg())


def test_a_run_file_that_no_longer_parses_is_named_as_damaged(tmp_path):
    atomic_write_json(tmp_path / "results.json", {"test": [1, 2]})
    assert read_json(tmp_path / "results.json") == {"test": [1, 2]}
    (tmp_path / "results.json").write_text('{"test": [1,')
    with pytest.raises(UserError, match=r"results.json: damaged, not the JSON drml wrote \(Expecting value: line 1"):
        read_json(tmp_path / "results.json")
    for text, kind in (("[1, 2]", "list"), ('"done"', "str"), ("null", "null")):  # parses, but is not drml's object
        (tmp_path / "results.json").write_text(text)
        with pytest.raises(UserError, match=rf"results.json: damaged, not the JSON drml wrote \(a JSON {kind}, not"):
            read_json(tmp_path / "results.json")
    (tmp_path / "baseline.json").write_text("[0.5, 0.25]")  # (the one run file that holds a list)
    assert read_json(tmp_path / "baseline.json", list) == [0.5, 0.25]
    with pytest.raises(UserError, match=r"baseline.json: damaged, not the JSON drml wrote \(a JSON dict, not a list"):
        (tmp_path / "baseline.json").write_text("{}")
        read_json(tmp_path / "baseline.json", list)


def test_a_backbone_folder_is_made_absolute_and_a_run_written_with_it_relative_continues(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("bb", "minilm"):
        (tmp_path / name).mkdir()
    assert [ModelConfig(backbone=b).backbone for b in ("bb", "minilm", "org/model")] == [
        str(tmp_path / "bb"), "minilm", "org/model"]  # fmt: skip
    cfg = FinetuneConfig(name="x", model={"backbone": "bb"})
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text(dump_config(cfg).replace(str(tmp_path / "bb"), "bb"))
    open_run(tmp_path / "r", cfg)  # (a run of an earlier drml, which kept the path as written: the same config)


def test_every_local_path_of_a_config_is_made_absolute_against_the_working_folder(tmp_path, monkeypatch):
    """Tune moves each trial into its own folder, where a relative path would name nothing."""
    from drml_ray.continual.config import ContinualSettings
    from drml_ray.irl.config import IRLSettings
    from drml_ray.meta.config import AdaptSettings

    monkeypatch.chdir(tmp_path)
    data = DataConfig(train="my/train.conll", dev="~/dev.conll", test=str(tmp_path / "t.conll"))
    assert (data.train, data.dev, data.test) == (
        str(tmp_path / "my" / "train.conll"), str(Path.home() / "dev.conll"), str(tmp_path / "t.conll"))  # fmt: skip
    assert ContinualSettings(meta_init="runs/m/reptile").meta_init == str(tmp_path / "runs" / "m" / "reptile")
    assert AdaptSettings(conll_model="../c/best").conll_model == str(tmp_path.parent / "c" / "best")
    assert IRLSettings(experts_dir="e").experts_dir == str(tmp_path / "e")


HOLD = """import sys, time
from drml_ray.runtime.rundir import held
with held(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_run_directory_is_held_by_one_command_at_a_time(tmp_path):
    run_dir = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        taken = rf"out: another drml command is writing into it \(pid {holder.pid}: drml "
        with pytest.raises(UserError, match=taken), held(run_dir):
            pass
        result = CliRunner().invoke(app, ["finetune", "ner/smoke", "--output-dir", str(run_dir)])
        assert result.exit_code == 2 and "another drml command is writing into it" in result.output, result.output
        tiny_model()(tmp_path / "model")  # drml evaluate is held to it too (it was not)
        (tmp_path / "test.conll").write_text("Anna\tB-PER\n")
        scored = CliRunner().invoke(app, ["evaluate", str(tmp_path / "model"), str(tmp_path / "test.conll"), "-o",
                                          str(run_dir)])  # fmt: skip
        assert scored.exit_code == 2 and "another drml command is writing into it" in scored.output, scored.output
    finally:
        holder.kill()  # (SIGKILL: its lock goes with its process, its lock file stays)
        holder.wait()
    with held(run_dir):
        assert (run_dir / LOCK_FILE).read_text().startswith(f"pid {os.getpid()}: ")
        open_run(run_dir, cfg())
        (run_dir / "results.json").write_text("{}")
        open_run(run_dir, overwrite=True)  # (empties the folder, but for the lock and the new run's stamp)
        assert sorted(p.name for p in run_dir.iterdir()) == [RUN_STAMP, LOCK_FILE]
    assert [p.name for p in run_dir.iterdir()] == [RUN_STAMP]  # released; the folder was there before: kept
    with held(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()  # made for a command that wrote nothing: removed


def test_a_run_directory_inside_a_submitted_jobs_uploaded_folder_is_warned_of(tmp_path, monkeypatch, caplog):
    """``ray job submit --working-dir . -- python jobs/run.py finetune ...`` runs in Ray's copy of the folder: a run
    written under it (``runs/NAME``, the default) is lost with that copy."""
    upload = tmp_path / "runtime_resources" / "working_dir_files" / "_ray_pkg_1"
    upload.mkdir(parents=True)
    monkeypatch.chdir(upload)
    job = {"runtime_env": {"working_dir": "gcs://_ray_pkg_1.zip"}, "metadata": {}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    with caplog.at_level(logging.WARNING, logger="drml_ray.runtime.rundir"):
        open_run("runs/x", cfg())
        open_run(tmp_path / "kept", cfg())
    assert caplog.text.count("uploaded") == 1 and f"{upload}/runs/x is inside the copy of the working" in caplog.text
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {}, "metadata": {}}))
    with caplog.at_level(logging.WARNING, logger="drml_ray.runtime.rundir"):
        open_run("runs/y", cfg())  # (no folder uploaded)
    assert caplog.text.count("uploaded") == 1


def test_a_folder_that_cannot_be_made_is_refused_before_the_command_runs(tmp_path):
    (tmp_path / "file").write_text("")
    refused = pytest.raises(UserError, match=r"file/run: cannot create the run directory \(Not a directory\)")
    with refused, held(tmp_path / "file" / "run"):
        pytest.fail("the command ran (a local Ray would have started before open_run refused the folder)")
