"""`drml continual extend` without Ray: reading the new experience, keeping it for the next extension, and
what a finished run must still be for an extension to continue it (the whole command runs on Ray Train in
``test_continual.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drml_ray.config import dump_config, load_config
from drml_ray.continual.driver import experience_digests
from drml_ray.continual.extend import _earlier, _finished_run, _keep, read_experience
from drml_ray.continual.protocols import experiences
from drml_ray.errors import UserError
from drml_ray.serve.requestlog import RequestLog

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "continual" / "smoke.yaml"


def served(folder: Path, names: list[str]) -> Path:
    """A request log of ``drml serve --log-requests``: one sentence per name, its person tagged."""
    log = RequestLog(folder)
    for name in names:
        log.add([name, "met", "Bob"], ["B-PER", "O", "B-PER"], {"text": "", "entities": []}, "m", "v1")
    log.flush()
    return folder


def test_an_extension_is_read_from_the_columns_it_is_given(tmp_path):
    from drml_ray.continual.extend import read_experience

    new = tmp_path / "germeval.tsv"
    new.write_text("".join(f"1\t{day}\tB-DATE\tB-TIME\n2\tthen\tO\tO\n\n" for day in ["Monday", "Friday"] * 5))
    assert read_experience(new, None, None, False).types == ["TIME"]  # (the last column, said)
    assert read_experience(new, None, None, False, "2,3").types == ["DATE"]


def test_an_extension_is_read_from_a_request_log_folder(tmp_path):
    """The README's loop: served traffic (drml serve --log-requests DIR), corrected, is the next experience; the
    folder was refused as 'no such file'."""
    from drml_ray.continual.extend import read_experience
    from drml_ray.serve.requestlog import RequestLog

    log = RequestLog(tmp_path / "served")
    for i in range(10):
        log.add([f"Anna{i}", "met", "Bob"], ["B-PER", "O", "B-PER"], {"text": "", "entities": []}, "m", "v1")
    log.flush()
    experience = read_experience(tmp_path / "served", None, None, False)
    assert experience.types == ["PER"] and (len(experience.train), len(experience.dev)) == (9, 1)
    with pytest.raises(UserError, match=r"nowhere: no such file or folder"):
        read_experience(tmp_path / "nowhere", None, None, False)


def test_extend_names_the_strategy_the_run_did_not_run(tmp_path):
    from drml_ray.continual.extend import _strategy

    table = {"strategies": {"naive": {}, "replay": {}}}
    assert _strategy(table, "replay", tmp_path) == "replay"
    with pytest.raises(UserError, match=r"ran naive, replay: --strategy gem is not one of them"):
        _strategy(table, "gem", tmp_path)
    with pytest.raises(UserError, match=r"ran naive, replay: name one with --strategy"):
        _strategy(table, None, tmp_path)


def test_a_later_extension_reads_the_splits_kept_not_the_grown_log(tmp_path):
    """A request log goes on growing after it was an extension: the next extension replayed and scored the grown
    folder, and its dev split moved; the kept splits are read instead, even once the log is gone."""
    log = served(tmp_path / "served", [f"Anna{i}" for i in range(10)])
    first = read_experience(log, None, None, False)
    kept = _keep(tmp_path / "run" / "strategies" / "naive" / "exp4", first)
    record = {"experience": "served", "train": str(log), "dev": None, "test": None,
              "data": str(kept.relative_to(tmp_path / "run"))}  # fmt: skip
    served(log, [f"Carl{i}" for i in range(10)])  # (a second Parquet file in the folder)
    grown = read_experience(log, None, None, False)
    assert (len(grown.train), len(grown.dev)) == (18, 2)
    assert grown.test_key != first.test_key  # (two extensions from one folder are scored each on its own sentences)
    assert read_experience(log, None, None, False).test_key == grown.test_key
    for path in log.iterdir():
        path.unlink()
    again = _earlier(tmp_path / "run", record, False)
    assert (again.name, again.types, again.test_key) == ("served", ["PER"], first.test_key)
    assert (again.train, again.dev, again.test) == (first.train, first.dev, first.test)
    for path in kept.iterdir():
        path.unlink()
    with pytest.raises(
        UserError, match=r"extension 'served''s data are gone \(.*train.parquet, .*dev.parquet, .*test.parquet\)"
    ):
        _earlier(tmp_path / "run", record, False)


def test_an_unfinished_extension_on_other_data_starts_again(tmp_path):
    exp_dir = tmp_path / "exp4"
    a = read_experience(served(tmp_path / "a", ["Anna", "Bea", "Carl"]), None, None, False)
    b = read_experience(served(tmp_path / "b", ["Dora", "Emil", "Fritz"]), None, None, False)
    _keep(exp_dir, a)
    checkpoint = exp_dir / "train" / "checkpoint_000001"
    checkpoint.mkdir(parents=True)
    assert _keep(exp_dir, a) == exp_dir / "data" and checkpoint.exists()  # (the same data: it continues)
    _keep(exp_dir, b)
    assert not checkpoint.exists()
    assert _earlier(tmp_path, {"experience": "b", "train": "", "data": "exp4/data"}, False).train == b.train


def test_extend_refuses_a_run_whose_experiences_changed(tmp_path):
    """An extension replays and scores the experiences the run learned: read again from their files, an edited
    corpus was taken in silence."""
    cfg = load_config(SMOKE, ["data.generated.train=20", "data.generated.dev=4", "data.generated.test=4"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    (run_dir / "continual.json").write_text(json.dumps({"protocol": "domain", "experiences": [], "strategies": {}}))
    began = experience_digests(experiences(cfg))
    (run_dir / "inputs.json").write_text(json.dumps(began))
    assert _finished_run(run_dir)[2][1].name == "generated:LOC"
    (run_dir / "inputs.json").write_text(json.dumps(began | {"experience generated:LOC's test": "0" * 16}))
    with pytest.raises(UserError, match="experience generated:LOC's test changed since this run began .*; an "
                                        "extension replays and scores the experiences the run learned"):  # fmt: skip
        _finished_run(run_dir)


def test_the_report_shows_each_extension():
    """drml report showed the run's strategies and nothing of its extensions."""
    from drml_ray.continual.results import extension_rows

    rows = extension_rows([{"strategy": "replay", "experience": "week1.conll", "types": ["DATE", "TIME"],
                            "R": [0.5, 0.25, 0.0], "train": "", "dev": None, "test": None}])  # fmt: skip
    assert rows == [{"extension": "1", "strategy": "replay", "experience": "week1.conll", "types": "DATE, TIME",
                     "F1 on it": "0.00", "average F1": "25.00",
                     "F1 on each, in order": "50.00 · 25.00 · 0.00"}]  # fmt: skip


def test_an_extension_is_scored_on_the_types_it_teaches(tmp_path, capsys):
    """A test file with a type the training file lacks: its entities counted as misses of the new experience."""
    train, test = tmp_path / "train.conll", tmp_path / "test.conll"
    train.write_text("Monday B-DATE\nthen O\n\n" * 4)
    test.write_text("Monday B-DATE\nin O\nParis B-LOC\n\n")
    experience = read_experience(train, None, test, False)
    assert experience.types == ["DATE"] and experience.test[0].tags == ("B-DATE", "O", "O")
    assert "the test split's LOC entities are not scored (the training sentences teach DATE)" in capsys.readouterr().out


def test_an_extension_is_read_from_a_task_folder(tmp_path):
    """A folder of train, dev and test files, as a continual run's own experiences are given, was refused as a
    folder without Parquet files."""
    domain = tmp_path / "clinic"
    domain.mkdir()
    for split, day in [("train", "Monday"), ("dev", "Friday"), ("test", "Sunday")]:
        (domain / f"{split}.conll").write_text(f"{day} B-DATE\nthen O\n\n" * (4 if split == "train" else 1))
    experience = read_experience(domain, None, None, False)
    assert (experience.name, len(experience.train), experience.dev[0].tokens[0], experience.test[0].tokens[0]) == (
        "clinic", 4, "Friday", "Sunday")  # fmt: skip
    other = tmp_path / "other.conll"
    other.write_text("Tuesday B-DATE\n\n")
    assert read_experience(domain, None, other, False).test[0].tokens == ("Tuesday",)  # (--test before its own)
    (domain / "test.conll").unlink()
    with pytest.raises(UserError, match=r"clinic: neither a folder of Parquet files .* no test file"):
        read_experience(domain, None, None, False)


def test_an_extension_is_cut_as_the_run_cuts_its_experiences(tmp_path, capsys):
    """The run's experiences keep the first continual.dev_sentences of their dev split (200 by default, ...); an
    extension's whole dev file picked its checkpoint, outweighing every other experience's."""
    from drml_ray.continual.extend import run_first

    train, test = tmp_path / "train.conll", tmp_path / "test.conll"
    train.write_text("".join(f"Day{i} B-DATE\nthen O\n\n" for i in range(8)))
    test.write_text("".join(f"Day{i} B-DATE\n\n" for i in range(5)))
    cfg = load_config(SMOKE, ["data.max_train_sentences=6", "continual.test_sentences=2"])
    assert run_first(cfg) == {"train": (6, "data.max_train_sentences"), "dev": (200, "continual.dev_sentences"),
                              "test": (2, "continual.test_sentences")}  # fmt: skip
    experience = read_experience(train, None, test, False, None, run_first(cfg))
    assert [s.tokens[0] for s in experience.train] == [f"Day{i}" for i in range(6)]  # (7 left after the dev split)
    assert [s.tokens[0] for s in experience.dev] == ["Day7"]
    assert [s.tokens[0] for s in experience.test] == ["Day0", "Day1"]
    out = capsys.readouterr().out
    assert (
        "train.conll: its first 6 of 7 train sentences, as the run reads each experience's (data.max_train_sentences"
        in out
    )


def test_extend_of_a_search_says_to_run_its_best_configuration(tmp_path):
    """A search (drml tune) and its trials hold no continual.json: the run to extend is its best configuration's."""
    search = tmp_path / "search"
    (search / "tune" / "trial_00000").mkdir(parents=True)
    (search / "best_config.yaml").write_text("name: x_best\n")
    for folder in (search, search / "tune" / "trial_00000"):
        with pytest.raises(UserError, match=r"\(continual.json\); this is drml tune's: run the search's best "
                                            r"configuration \(drml continual .*search/best_config.yaml\)"):  # fmt: skip
            _finished_run(folder)
    with pytest.raises(UserError, match=r"no finished continual run there \(continual.json\); run drml continual"):
        _finished_run(tmp_path)
