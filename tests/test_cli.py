"""The drml command without Ray: help, user-error handling, data commands."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drml_ray.cli import app
from drml_ray.config import DataConfig
from drml_ray.data import registry
from drml_ray.data.conll import Sentence, read_conll
from drml_ray.data.load import load_corpus
from drml_ray.data.parquet import read_parquet, write_parquet
from drml_ray.data.reader import read_corpus_file
from drml_ray.errors import UserError
from tests.test_malformed import tiny_model


def cli(*args, stdin: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["finetune"],
        ["tune"],
        ["meta-train"],
        ["meta-eval"],
        ["report"],
        ["tensorboard"],
        ["evaluate"],
        ["predict"],
        ["quickstart"],
        ["data", "fetch"],
    ],
)
def test_every_command_has_help(command):
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert "<bool>" not in result.output  # (typer 0.29 shows flags as taking a value: `--overwrite <bool>`)


def help_texts(command, path="drml"):  # noqa: ANN001
    """Every help text and epilog under ``command``, with the command line it belongs to."""
    yield from ((path, text) for text in (command.help, command.epilog) if text)
    yield from ((path, p.help) for p in command.params if getattr(p, "help", None))
    for name, sub in getattr(command, "commands", {}).items():
        yield from help_texts(sub, f"{path} {name}")


def test_help_texts_hold_nothing_markdown_would_swallow():
    # (rich renders help as Markdown: `experts/<family>/` printed as `experts//`, `train.*, dev.*` in italics)
    import typer

    for path, text in help_texts(typer.main.get_command(app)):
        outside_code = re.sub(r"`[^`]*`", "", text)
        assert not re.search(r"[<>*\\]", outside_code), f"{path}: {text}"


def test_config_error_exits_2_with_file_line_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    result = cli("finetune", bad)
    assert result.exit_code == 2
    assert f"{bad}:2: train.epochz: unknown key" in result.output


def test_unknown_override_exits_2(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: ok\n")
    result = cli("finetune", ok, "--set", "model.backbon=x")
    assert result.exit_code == 2 and "unknown key 'backbon' in model" in result.output


def test_version_and_short_help():
    from importlib.metadata import version

    shown = cli("--version")
    assert shown.exit_code == 0 and shown.output.startswith(f"drml-ray {version('drml-ray')} (ray {version('ray')}, ")
    assert cli("finetune", "-h").output == cli("finetune", "--help").output != ""


def test_predict_needs_exactly_one_input(tmp_path):
    result = cli("predict", tmp_path, "--text", "a", "--input", tmp_path / "x")
    assert result.exit_code == 2 and "exactly one of --text or a file to tag" in result.output
    result = cli("predict", tmp_path, tmp_path / "x", "--text", "a")
    assert result.exit_code == 2 and "exactly one of --text or a file to tag" in result.output
    result = cli("predict", tmp_path, tmp_path / "x", "--input", tmp_path / "y")
    assert result.exit_code == 2 and f"given twice ({tmp_path / 'x'} and --input {tmp_path / 'y'})" in result.output
    result = cli("predict", tmp_path, "--text", "a")
    assert result.exit_code == 2 and "neither a model folder (config.json) nor a run directory" in result.output


@pytest.mark.parametrize("command", [["predict", "m", "--text", "a"], ["evaluate", "m", "generated"]])
def test_a_batch_size_below_1_is_refused_before_any_model_loads(command):
    # (--batch-size 0 reached range() and was reported as a bug in drml-ray)
    result = cli(*command, "--batch-size", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--batch-size'" in result.output
    assert "x>=1" in result.output or "greater than or equal to 1" in result.output  # (typer 0.28, 0.29 words)


def test_predict_reads_standard_input_as_it_reads_a_file_and_a_run_directory_as_its_model(tmp_path):
    tiny_model()(tmp_path / "model")
    (tmp_path / "in.txt").write_text("Anna met Bob .\n\nBob left\n")
    from_file = cli("predict", tmp_path / "model", "--input", tmp_path / "in.txt", "--output", tmp_path / "a.jsonl")
    (tmp_path / "run").mkdir()
    (tmp_path / "model").rename(tmp_path / "run" / "best")  # (a run directory is read through its best/)
    from_stdin = cli("predict", tmp_path / "run", "--input", "-", "--output", tmp_path / "b.jsonl",
                     stdin=(tmp_path / "in.txt").read_text())  # fmt: skip
    assert from_file.exit_code == from_stdin.exit_code == 0, from_stdin.output
    as_argument = cli("predict", tmp_path / "run", tmp_path / "in.txt", "--output", tmp_path / "c.jsonl")
    assert as_argument.exit_code == 0, as_argument.output  # (drml predict MODEL FILE, as drml evaluate MODEL DATA)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text() != ""
    assert (tmp_path / "c.jsonl").read_text() == (tmp_path / "a.jsonl").read_text()
    folder = cli("predict", tmp_path / "run", "--text", "Anna", "--output", tmp_path, "--overwrite")
    assert folder.exit_code == 2 and "a folder; name the file to write, e.g." in folder.output
    same = cli("predict", tmp_path / "run", "--input", tmp_path / "in.txt", "--output", tmp_path / "in.txt",
               "--overwrite")  # fmt: skip
    assert same.exit_code == 2 and "the input file itself" in same.output
    assert (tmp_path / "in.txt").read_text() == "Anna met Bob .\n\nBob left\n"  # (it replaced the text it read)
    config = (best := tmp_path / "run" / "best" / "config.json").read_text()
    into_model = cli("predict", tmp_path / "run", "--text", "Anna", "--output", best, "--overwrite")
    assert into_model.exit_code == 2 and "best/config.json: inside " in into_model.output
    assert best.read_text() == config
    binary = cli("predict", tmp_path / "run", "--input", "-", stdin="a\x00b\n")
    assert binary.exit_code == 2 and "<stdin>: binary content" in binary.output


def test_data_convert_iob1_to_parquet_and_back(tmp_path):
    src = tmp_path / "eng.train"
    src.write_text("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP I-PER\n")
    result = cli("data", "convert", src, tmp_path / "train.parquet", "--from-scheme", "iob1")
    assert result.exit_code == 0, result.output
    assert [s.tags for s in read_parquet(tmp_path / "train.parquet")] == [("B-ORG", "O"), ("B-PER",)]
    assert cli("data", "convert", tmp_path / "train.parquet", tmp_path / "back.conll").exit_code == 0
    assert read_conll(tmp_path / "back.conll") == read_parquet(tmp_path / "train.parquet")
    in_place = cli("data", "convert", src, tmp_path / "." / src.name, "--overwrite")
    assert in_place.exit_code == 2 and "the input file itself" in in_place.output and "I-NP" in src.read_text()
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "a.parquet").write_bytes((tmp_path / "train.parquet").read_bytes())
    into_folder = cli("data", "convert", tmp_path / "served", tmp_path / "served" / "all.parquet")
    assert into_folder.exit_code == 2 and "which this command reads; write it elsewhere" in into_folder.output
    again = cli("data", "convert", src, tmp_path / "train.parquet")
    assert again.exit_code == 2 and "--overwrite" in again.output
    # a Parquet file is told by its magic bytes too (.pq, any case, no suffix); a JSON name is not given CoNLL
    assert cli("data", "convert", src, tmp_path / "train.PQ", "--from-scheme", "iob1").exit_code == 0
    (tmp_path / "train").write_bytes((tmp_path / "train.PQ").read_bytes())
    assert read_corpus_file(tmp_path / "train") == read_parquet(tmp_path / "train.parquet")
    json = cli("data", "convert", src, tmp_path / "train.json")
    assert json.exit_code == 2 and "train.json: drml writes corpora as Parquet (.parquet) or CoNLL" in json.output


def test_data_convert_takes_the_columns_it_is_given(tmp_path):
    src = tmp_path / "germeval.tsv"  # GermEval 2014: index, word, outer entities, nested entities
    src.write_text("1\tAnna\tB-PER\tO\n2\tin\tO\tO\n3\tBerliner\tB-LOCderiv\tB-LOC\n")
    outer = cli("data", "convert", src, tmp_path / "outer.conll", "--columns", "2,3")
    assert outer.exit_code == 0, outer.output
    assert (tmp_path / "outer.conll").read_text() == "Anna\tB-PER\nin\tO\nBerliner\tB-LOCderiv\n\n"
    assert read_conll(src)[0].tags == ("O", "O", "B-LOC")  # (by default the last column, and said so)
    assert cli("data", "convert", src, tmp_path / "x.conll", "--columns", "2,7").output.endswith(
        "germeval.tsv: no column 7: its lines have fewer\n"
    )
    assert "counted from 1 (e.g. 2,3)" in cli("data", "convert", src, tmp_path / "x.conll", "--columns", "0,3").output
    named = cli("data", "convert", src, tmp_path / "x.conll", "--columns", "tokens,tags")
    assert named.exit_code == 2 and "a CoNLL file's counted from 1 (2,3)" in named.output


def test_data_convert_reads_the_parquet_columns_it_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"words": [["Anna", "ran"]], "labels": [["B-PER", "O"]]}), tmp_path / "w.parquet")
    said = cli("data", "convert", tmp_path / "w.parquet", tmp_path / "a").output
    assert "--columns words,labels, names others" in said
    assert (
        cli("data", "convert", tmp_path / "w.parquet", tmp_path / "b.conll", "--columns", "words,labels").exit_code == 0
    )
    assert (tmp_path / "b.conll").read_text() == "Anna\tB-PER\nran\tO\n\n"
    missing = cli("data", "convert", tmp_path / "w.parquet", tmp_path / "c.conll", "--columns", "words,tags")
    assert missing.exit_code == 2 and "w.parquet: no column tags: it has words, labels" in missing.output
    numbered = cli("data", "convert", tmp_path / "w.parquet", tmp_path / "c.conll", "--columns", "1,2")
    assert numbered.exit_code == 2 and "a Parquet file's columns are named" in numbered.output


def test_data_convert_reports_malformed_input(tmp_path):
    src = tmp_path / "bad.conll"
    src.write_text("EU B-ORG\nrejects X-O\n")
    result = cli("data", "convert", src, tmp_path / "out.parquet")
    assert result.exit_code == 2 and "bad.conll:2: unknown tag scheme prefix" in result.output


def test_data_convert_refuses_a_token_conll_columns_cannot_hold_and_makes_the_folder(tmp_path):
    write_parquet(tmp_path / "in.parquet", [Sentence(("New York", "rains"), ("B-LOC", "O"))])
    result = cli("data", "convert", tmp_path / "in.parquet", tmp_path / "out.conll")
    assert result.exit_code == 2 and "cannot write sentence 1, word 1 as CoNLL columns" in result.output
    assert "'New York'" in result.output and not (tmp_path / "out.conll").exists()
    assert cli("data", "convert", tmp_path / "in.parquet", tmp_path / "new" / "out.parquet").exit_code == 0
    folder = cli("data", "convert", tmp_path / "in.parquet", tmp_path / "new", "--overwrite")
    assert folder.exit_code == 2 and "new: a folder; name the file to write" in folder.output
    assert read_parquet(tmp_path / "new" / "out.parquet")[0].tokens == ("New York", "rains")
    below_a_file = cli("data", "convert", tmp_path / "in.parquet", tmp_path / "in.parquet" / "out.conll")
    assert below_a_file.exit_code == 2, below_a_file.output  # (was a NotADirectoryError: "internal error")
    assert (
        "in.parquet/out.conll: cannot make its folder" in below_a_file.output
        and "in.parquet is a file)" in below_a_file.output
    )


def test_unreachable_corpus_falls_back_to_generated_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("DRML_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DRML_DATA_MIRROR", raising=False)
    offline = dataclasses.replace(registry.CORPORA["crossner_politics"], base_url="http://127.0.0.1:9/x")
    monkeypatch.setitem(registry.CORPORA, "crossner_politics", offline)
    (tmp_path / "test.conll").write_text("Anna B-PER\nran O\n")
    data = DataConfig(corpus="crossner_politics", fallback_to_generated=True, test=str(tmp_path / "test.conll"))
    corpus = load_corpus(data, progress=False)
    assert corpus.generated and "fallback for crossner_politics" in corpus.name
    assert [s.tokens for s in corpus.splits["test"]] == [("Anna", "ran")]  # the file replacing a split still does
    from drml_ray.data.fetch import FetchError

    with pytest.raises(FetchError):
        load_corpus(DataConfig(corpus="crossner_politics"), progress=False)


@pytest.mark.shared_data
def test_data_fetch_from_the_shared_mirror(data_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("DRML_DATA_MIRROR", str(data_mirror))
    result = cli("data", "fetch", "crossner", "--output-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache" / "crossner" / "ai" / "test.txt").is_file()
    listing = cli("data", "list")
    assert "crossner_music" in listing.output and "conll2003" in listing.output


@pytest.mark.shared_data
def test_real_corpora_load_with_expected_sizes(data_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("DRML_DATA_MIRROR", str(data_mirror))
    monkeypatch.setenv("DRML_DATA_DIR", str(tmp_path / "cache"))
    conll = load_corpus(DataConfig(corpus="conll2003"), progress=False)
    assert {k: len(v) for k, v in conll.splits.items()} == {"train": 14041, "dev": 3250, "test": 3453}
    assert sum(len(s.tokens) for s in conll.splits["test"]) == 46435
    assert conll.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    politics = load_corpus(DataConfig(corpus="crossner_politics"), progress=False)
    assert {k: len(v) for k, v in politics.splits.items()} == {"train": 200, "dev": 541, "test": 651}
    assert len(politics.labels) == 1 + 2 * 9


def test_tune_without_a_search_space_and_report_of_a_non_run_exit_2(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\n")
    result = cli("tune", plain)
    assert result.exit_code == 2 and "has no tune.space to search" in result.output
    result = cli("report", tmp_path)
    assert result.exit_code == 2 and "no results.json" in result.output
    assert "nowhere: no such folder" in cli("report", tmp_path / "nowhere").output
    for name in ("b", "a"):  # (a folder of runs: where their reports are, and what shows them together)
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.yaml").write_text(f"name: {name}\n")
    result = cli("report", tmp_path / "runs")
    assert result.exit_code == 2 and "runs: a folder of 2 run(s) (a, b), not a run: report each" in result.output


def test_report_of_an_evaluation_draws_scores_and_errors_from_the_predicted_tags(tmp_path):
    import torch

    from drml_ray.config import ModelConfig
    from drml_ray.ner.modeling import build_model, load_tokenizer, save_hf_folder

    model = build_model(ModelConfig(backbone="tiny-random-bert"), ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], seed=0)
    with torch.no_grad():  # (every word B-PER: constrained decoding keeps B-PER, as B-PER may follow B-PER)
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 9.0, 0.0, 0.0, 0.0]))
    save_hf_folder(model, load_tokenizer("tiny-random-bert"), tmp_path / "model")
    (tmp_path / "task").mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / "task" / f"{split}.conll").write_text("Anna B-PER\nmet O\nBob B-PER\n\nParis B-LOC\nis O\n")
    for split in ("dev", "test"):  # (two evaluations into one folder)
        scored = cli("evaluate", tmp_path / "model", tmp_path / "task", "--split", split, "-o", tmp_path / "ev")
        assert scored.exit_code == 0, scored.output
    result = cli("report", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    # by hand: predicted PER Anna, met, Bob, Paris, is against gold PER Anna, Bob and LOC Paris: 2 of 5 right,
    # 2 of 3 found: precision 0.4, recall 0.6667, F1 0.5; Paris (LOC as PER) a confusion, met and is spurious
    report = (tmp_path / "ev" / "report.md").read_text()
    assert report.startswith("# drml evaluate: ev")
    for split in ("dev", "test"):
        assert (
            f"| {split} | {tmp_path / 'model'} | {tmp_path / 'task'} | 0.5000 | 0.4000 | 0.6667 | constrained |"
            in report
        )
        assert f"The 2 {split} sentences with the most errors" in report
    assert "  - gold: [Anna]{PER} met [Bob]{PER}\n  - predicted: [Anna]{PER} [met]{PER} [Bob]{PER}" in report
    assert (tmp_path / "ev" / "report_confusion_dev.png").exists() and (
        tmp_path / "ev" / "report_confusion.png"
    ).exists()


def test_an_interrupted_search_exits_130_and_says_how_to_resume(tmp_path, monkeypatch):
    import drml_ray.tune.driver
    from drml_ray.runtime.rundir import RunInterrupted

    def interrupted(*args, **kwargs):
        raise RunInterrupted("the search stopped with 5 of 12 trials ended; run the same command with --resume")

    monkeypatch.setattr(drml_ray.tune.driver, "run_tune", interrupted)
    smoke = Path(__file__).resolve().parents[1] / "configs" / "tune" / "smoke.yaml"
    result = cli("tune", smoke, "--output-dir", tmp_path / "run")
    assert result.exit_code == 130 and "5 of 12 trials ended" in result.output and "--resume" in result.output


def test_a_bug_keeps_its_traceback_exits_1_and_asks_for_a_report(tmp_path, monkeypatch):
    import drml_ray.ner.finetune

    def broken(*args, **kwargs):
        return {}["dev_f1"]  # an internal KeyError: no user's fault

    monkeypatch.setattr(drml_ray.ner.finetune, "run_finetune", broken)
    result = cli("finetune", "ner/smoke", "--output-dir", tmp_path / "x")
    assert result.exit_code == 1
    assert "Traceback" in result.output and "KeyError: 'dev_f1'" in result.output
    assert "internal error: this is a bug in drml-ray" in result.output


@pytest.mark.parametrize(
    ("code", "said"), [(errno.ENOSPC, "the disk is full"), (errno.EACCES, "no permission"), (errno.EIO, None)]
)
def test_the_file_systems_refusal_is_one_line_naming_the_file_and_other_os_errors_stay_bugs(
    tmp_path, monkeypatch, code, said
):
    import drml_ray.ner.finetune

    results = tmp_path / "x" / "results.json"

    def refused(*args, **kwargs):  # as open() raises it (root ignores permission bits, so it cannot be made real)
        raise OSError(code, os.strerror(code), str(results))

    monkeypatch.setattr(drml_ray.ner.finetune, "run_finetune", refused)
    result = cli("finetune", "ner/smoke", "--output-dir", tmp_path / "x")
    if said is None:  # an I/O error is no limit the user can lift: a bug's report, with its traceback
        assert result.exit_code == 1 and "Traceback" in result.output and "internal error" in result.output
        return
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"drml: error: {results}: {said} ({os.strerror(code)}); free space or fix the permissions" in result.output


def test_a_user_error_from_deep_inside_exits_2_in_one_line(tmp_path):
    result = cli("data", "fetch", "crossner_sport", "--output-dir", tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown corpus 'crossner_sport'; known corpora: conll2003, crossner_ai" in result.output


def test_evaluate_names_a_missing_file_or_a_misspelt_corpus(tmp_path):
    # (a misspelt corpus was a pydantic ValidationError reported as a bug; a missing file an "unknown corpus")
    tiny_model()(tmp_path / "model")
    result = cli("evaluate", tmp_path / "model", "crossner_politcs")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown corpus 'crossner_politcs' (did you mean crossner_politics?)" in result.output
    result = cli("evaluate", tmp_path / "model", "my.conll")
    assert result.exit_code == 2 and "my.conll: no such file" in result.output


def test_evaluate_names_a_folder_without_a_model_before_it_reads_the_data(tmp_path, monkeypatch):
    import drml_ray.data.load

    def read(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(drml_ray.data.load, "evaluation_data", read)
    result = cli("evaluate", tmp_path, "conll2003")
    assert result.exit_code == 2 and "neither a model folder (config.json) nor a run directory" in result.output


def test_evaluate_takes_a_task_folders_split_or_a_folder_of_parquet_files(tmp_path):
    from drml_ray.data.conll import Sentence
    from drml_ray.data.load import evaluation_data
    from drml_ray.data.parquet import write_parquet

    task = tmp_path / "clinical"
    for split, word in (("train", "Anna"), ("dev", "Bob"), ("test", "Carl")):
        (task / f"{split}.conll").parent.mkdir(exist_ok=True)
        (task / f"{split}.conll").write_text(f"{word}\tB-PER\nsaw\tO\n\n")
    sentences, name = evaluation_data(str(task), "dev", True)
    assert ([s.tokens for s in sentences], name) == ([("Bob", "saw")], "clinical-dev")
    with pytest.raises(UserError, match=r"--split must be train, dev or test, not 'validation' \(dev is the valid"):
        evaluation_data(str(task), "validation", True)  # (the Hugging Face name)
    write_parquet(tmp_path / "served" / "requests-1.parquet", [Sentence(("Dana",), ("B-PER",))])
    assert [s.tokens for s in evaluation_data(str(tmp_path / "served"), "test", False)[0]] == [("Dana",)]
    tiny_model()(tmp_path / "m" / "model")
    result = cli("evaluate", tmp_path / "m" / "model", tmp_path / "served", "--split", "dev")
    assert result.exit_code == 2 and "served holds .parquet files, scored whole" in result.output
    result = cli("evaluate", tmp_path / "m" / "model", tmp_path / "served" / "..")  # (was: unknown corpus)
    assert result.exit_code == 2 and "no train file; a task folder holds" in result.output
    (tmp_path / "run").mkdir()  # a run directory: the data of its config.yaml (it was read as a task folder)
    (tmp_path / "run" / "config.yaml").write_text(f"name: mine\ndata: {{corpus: {task}}}\n")
    sentences, name = evaluation_data(str(tmp_path / "run"), "test", False)
    assert ([s.tokens for s in sentences], name) == ([("Carl", "saw")], "mine-test")


def test_shipped_configs_are_listed_shown_and_run_by_name(tmp_path, monkeypatch):
    listing = cli("configs", "list")
    assert listing.exit_code == 0 and "ner/smoke" in listing.output and "rl/smoke_nav2d" in listing.output
    shown = cli("configs", "show", "ner/quickstart")
    assert shown.exit_code == 0 and "backbone: minilm" in shown.output
    assert cli("configs", "show", "ner/nope").exit_code == 2
    misspelt = cli("configs", "show", "ner/crosner_politics")
    assert "(did you mean ner/crossner_politics or meta/crossner_politics" in misspelt.output
    kind = cli("configs", "show", "meta")  # (a kind's folder: its configs)
    assert kind.exit_code == 2 and "meta holds meta/crossner_ai, meta/crossner_literature, meta/" in kind.output
    bare = cli("finetune", "smoke", "-o", tmp_path / "x")  # (the base name of four shipped configs)
    assert (
        bare.exit_code == 2 and "did you mean continual/smoke or meta/smoke or ner/smoke or tune/smoke?" in bare.output
    )
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the name and the checkout path both resolve
    from drml_ray.config import load_config

    assert load_config("configs/ner/smoke.yaml").name == load_config("ner/smoke").name == "smoke"


def test_configs_check_prints_the_resolved_file_and_refuses_what_a_run_would(tmp_path):
    from drml_ray.config import load_config
    from drml_ray.meta.config import MetaExperiment

    checked = cli("configs", "check", "meta/smoke", "--set", "meta.meta_steps=7")
    assert checked.exit_code == 0, checked.output
    header, resolved = checked.output.split("\n", 1)
    assert header == ("# meta/smoke: valid (meta); run by drml meta-train, drml meta-eval; output in "
                      "runs/meta_smoke/ unless --output-dir says otherwise")  # fmt: skip
    (tmp_path / "resolved.yaml").write_text(checked.output)  # (the header is a YAML comment)
    again = load_config(tmp_path / "resolved.yaml")
    assert isinstance(again, MetaExperiment) and again.meta.meta_steps == 7
    assert again == load_config("meta/smoke", ["meta.meta_steps=7"])  # every default written out, nothing changed
    assert "drml finetune, drml tune;" in cli("configs", "check", "tune/smoke").output
    metric = cli("configs", "check", "tune/smoke", "--set", "tune.metric=loss")
    assert metric.exit_code == 2 and "error: --set: tune.metric: a finetune trial reports dev_f1" in metric.output
    (tmp_path / "metric.yaml").write_text("name: x\ntune:\n  metric: dev_F1\n  space: {train.lr: {grid: [0.1]}}\n")
    metric = cli("configs", "check", tmp_path / "metric.yaml")  # (at its line, as drml tune says it)
    assert metric.exit_code == 2 and "metric.yaml:3: tune.metric: a finetune trial reports" in metric.output
    (tmp_path / "bad.yaml").write_text("name: x\ntrain:\n  epochs: three\n")
    bad = cli("configs", "check", tmp_path / "bad.yaml")
    assert bad.exit_code == 2 and "bad.yaml:3: train.epochs" in bad.output, bad.output
    (tmp_path / "exp").mkdir()  # several files (a folder of them): a line each, exit 2 if any is not valid
    (tmp_path / "exp" / "ok.yml").write_text("name: ok\ndata: {corpus: generated}\n")
    (tmp_path / "bad.yaml").rename(tmp_path / "exp" / "bad.yaml")
    several = cli("configs", "check", tmp_path / "exp", "ner/smoke")
    assert several.exit_code == 2 and several.output.splitlines() == [
        f"drml: error: {tmp_path / 'exp' / 'bad.yaml'}:3: train.epochs: Input should be a valid integer (got 'three')",
        f"{tmp_path / 'exp' / 'ok.yml'}: valid (finetune); run by drml finetune; output in runs/ok/ unless "
        "--output-dir says otherwise",
        "ner/smoke: valid (finetune); run by drml finetune; output in runs/smoke/ unless --output-dir says otherwise",
        "drml: error: 1 of 3 experiment files not valid"]  # fmt: skip
    (tmp_path / "exp" / "bad.yaml").unlink()
    assert cli("configs", "check", tmp_path / "exp", "ner/smoke").exit_code == 0


def test_configs_check_makes_the_runs_checks_of_a_backbone_folder(tmp_path):
    tiny_model()(tmp_path / "bb")
    (tmp_path / "exp.yaml").write_text(f"name: x\nmodel:\n  backbone: {tmp_path / 'bb'}\n  max_length: 600\n")
    checked = cli("configs", "check", tmp_path / "exp.yaml")
    assert (
        checked.exit_code == 2 and "exp.yaml:4: model.max_length 600: the backbone has 512 positions" in checked.output
    )
    checked = cli("configs", "check", tmp_path / "exp.yaml", "--set", "model.max_length=64", "--set",
                  "model.strategy=top", "--set", "model.top_layers=3")  # fmt: skip
    assert checked.exit_code == 2 and "--set: model.top_layers=3 but the encoder has 2 layers" in checked.output
    assert cli("configs", "check", tmp_path / "exp.yaml", "--set", "model.max_length=64").exit_code == 0


def test_ctrl_c_exits_130_and_says_how_to_continue(tmp_path, monkeypatch):
    import drml_ray.ner.finetune

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(drml_ray.ner.finetune, "run_finetune", interrupted)
    result = cli("finetune", "ner/smoke", "--output-dir", tmp_path / "x")
    assert result.exit_code == 130 and "the same command continues from the last checkpoint" in result.output


def test_sigterm_stops_drml_tensorboard_and_its_server_and_exits_0(tmp_path):
    """``drml tensorboard`` is a server: Ctrl+C or SIGTERM (to drml alone) is how it ends, so it stops TensorBoard
    (the port is free again) and exits 0, without the 'continues from the last checkpoint' of an interrupted run."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "tb.log"
    drml = Path(sys.executable).parent / "drml"
    command = [str(drml), "tensorboard", str(tmp_path), "--port", str(port)]
    proc = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while f"127.0.0.1:{port}/" not in log.read_text():  # TensorBoard's own line: its server is up
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    output = log.read_text()
    assert "holds no TensorBoard events yet" in output and "[drml] TensorBoard stopped" in output
    assert "interrupted" not in output
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # nothing listens there any more
        again.listen()
        taken = cli("tensorboard", tmp_path, "--port", port)  # (was TensorBoard's paragraph and exit status 255)
    assert taken.exit_code == 2 and f"--port {port}: another program listens there" in taken.output, taken.output


def test_evaluate_names_its_run_after_the_model_and_the_file_so_two_of_one_name_do_not_collide(tmp_path, monkeypatch):
    """CoNLL-2003's dev and test files are eng.testa and eng.testb; two models may sit in one folder. Their runs
    were one directory (the stem 'eng', the folder above the model), the second refused as finished."""
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        tiny_model()(tmp_path / "models" / name)
    for name in ("eng.testa", "eng.testb"):
        (tmp_path / "conll").mkdir(exist_ok=True)
        (tmp_path / "conll" / name).write_text("Anna\tB-PER\nsaw\tO\n\n")
    runs = []
    for model, data in (("a", "eng.testa"), ("a", "eng.testb"), ("b", "eng.testa")):
        result = cli("evaluate", f"models/{model}", f"conll/{data}")
        assert result.exit_code == 0, result.output
        runs.append(result.output.rsplit("written to ", 1)[1].strip())
    assert [Path(run).name for run in runs] == [
        "eval-models-a-conll-eng.testa", "eval-models-a-conll-eng.testb", "eval-models-b-conll-eng.testa"
    ]  # fmt: skip


def test_a_reader_that_stops_reading_ends_drml_predict_quietly_with_141(tmp_path):
    """``drml predict ... | head -1``: the pipe closes while drml writes; that is no bug of drml's (it printed a
    BrokenPipeError traceback and 'internal error'), so it exits as a process that SIGPIPE ends, saying nothing."""
    tiny_model()(tmp_path / "model")
    (tmp_path / "in.txt").write_text("Anna met Bob in Berlin on a sunny day .\n" * 1500)
    drml = Path(sys.executable).parent / "drml"
    command = [str(drml), "predict", str(tmp_path / "model"), "--input", str(tmp_path / "in.txt"), "--engine", "local"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b'{"text": "Anna met Bob')
    proc.stdout.close()  # as head does after its line; 1,500 records (over 90 kB) do not fit the pipe's buffer
    assert proc.wait(timeout=120) == 141
    said = proc.stderr.read().decode().splitlines()  # (progress lines only: stderr is no terminal here)
    assert all(line.startswith("[drml] predicting: ") for line in said), said


def test_a_hub_download_retrying_is_said_once_and_drml_lines_keep_their_prefix():
    """The Hub's logger has a handler of its own: drml's root handler printed each retry again under [drml]
    (twenty doubled lines before an unreachable Hub id was refused)."""
    code = ("import logging; from drml_ray.cli_support import log_to_stderr; log_to_stderr(logging.INFO); "
            "from huggingface_hub.utils import logging as hub; "
            "hub.get_logger('huggingface_hub.utils._http').warning('Retrying in 1s [Retry 1/5].'); "
            "logging.getLogger('drml_ray.x').info('ours')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == "Retrying in 1s [Retry 1/5].\n[drml] ours\n"


def test_a_run_says_what_of_its_file_it_does_not_read_a_tune_section_or_another_strategys_settings(
    tmp_path, monkeypatch
):
    import drml_ray.ner.finetune as finetune

    ran: list[str] = []
    monkeypatch.setattr(finetune, "run_finetune", lambda cfg, run_dir, **_: ran.append(cfg.name))
    searched = cli("finetune", "tune/smoke", "-o", tmp_path / "a")
    assert searched.exit_code == 0 and ran == ["tune_smoke"], searched.output
    assert "[drml] tune/smoke: its tune section is not searched by drml finetune, which runs it once with the values " \
        "as written (drml tune tune/smoke searches it)" in searched.output  # fmt: skip
    assert "tune section" not in cli("finetune", "ner/smoke", "-o", tmp_path / "b").output and len(ran) == 2
    lora = cli("finetune", "ner/smoke", "--set", "model.lora.r=8", "--set", "model.top_layers=1", "-o", tmp_path / "c")
    assert "[drml] ner/smoke: model.lora is not used: model.strategy is full, not lora\n" in lora.output
    assert "model.top_layers is not used" in lora.output and len(ran) == 3
    assert "not used" not in cli("finetune", "ner/smoke", "--set", "model.strategy=lora", "--set", "model.lora.r=8",
                                 "-o", tmp_path / "d").output  # fmt: skip
