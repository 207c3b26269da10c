"""A user's own corpus: three files, no registered corpus, labelled as what it is (no Ray)."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from drml_ray.cli import app
from drml_ray.config import ConfigError, DataConfig, load_config
from drml_ray.data.conll import CorpusFormatError, Sentence, write_conll
from drml_ray.data.load import folder_splits, load_corpus
from drml_ray.data.parquet import write_parquet
from drml_ray.data.reader import read_corpus_file
from drml_ray.ner.finetune import corpus_summary

TRAIN = [Sentence(("Anna", "Schmidt", "visited", "Berlin"), ("B-PER", "I-PER", "O", "B-LOC"))] * 3
DEV = [Sentence(("Siemens", "hired", "Anna"), ("B-ORG", "O", "B-PER"))]  # ORG: never in train
TEST = [Sentence(("Berlin", "is", "big"), ("B-LOC", "O", "O"))]


def own_files(folder: Path, train=TRAIN, dev=DEV, test=TEST) -> dict[str, str]:  # noqa: ANN001
    folder.mkdir(parents=True, exist_ok=True)
    for name, sentences in (("train", train), ("dev", dev), ("test", test)):
        write_conll(folder / f"{name}.conll", sentences)
    return {name: str(folder / f"{name}.conll") for name in ("train", "dev", "test")}


def test_three_files_without_a_corpus_are_the_users_own_corpus(tmp_path, caplog):
    files = own_files(tmp_path / "clinical")
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        corpus = load_corpus(DataConfig(**files), progress=False)
    summary = corpus_summary(corpus)
    assert summary["name"] == "clinical" and summary["generated"] is False and "GENERATED" not in corpus.describe()
    assert summary["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # the train split's label set
    assert summary["sources"]["dev"] == files["dev"] and summary["sizes"] == {"train": 3, "dev": 1, "test": 1}
    assert f"{files['dev']}:1: B-ORG, I-ORG never occur in the train split" in caplog.text  # named, file and line


def test_data_context_on_files_that_mark_no_documents_is_warned_of(tmp_path, caplog):
    in_documents = [Sentence(s.tokens, s.tags, 0) for s in TRAIN]  # (written under a -DOCSTART- line)
    files = own_files(tmp_path / "clinical", train=in_documents)
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        load_corpus(DataConfig(**files), progress=False)
        assert "data.context" not in caplog.text  # (not asked for)
        load_corpus(DataConfig(**files, context=True), progress=False)
    assert f"data.context: {files['dev']}, {files['test']} mark no documents (-DOCSTART- lines" in caplog.text


def test_a_task_folder_is_a_corpus_and_a_split_given_replaces_its_file(tmp_path, monkeypatch):
    files = own_files(tmp_path / "clinical")
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "exp.yaml"
    config.write_text("data:\n  corpus: ./clinical\n")
    data = load_config(config).data
    assert data.corpus == str(tmp_path / "clinical")  # absolute: Ray's workers may run in another folder
    corpus = load_corpus(data, progress=False)
    assert corpus.name == "clinical" and corpus.sources == files and not corpus.generated
    write_conll(tmp_path / "other_test.conll", DEV)
    replaced = load_corpus(data.model_copy(update={"test": str(tmp_path / "other_test.conll")}), progress=False)
    assert replaced.splits["test"] == DEV and replaced.splits["dev"] == DEV
    config.write_text("data:\n  corpus: ./clinical/train.conll\n")  # a file, not a folder
    with pytest.raises(ConfigError, match=r"exp.yaml:2: data.corpus: .*no such folder; a file is data.train, with"):
        load_config(config)


def test_types_a_reader_cannot_tell_apart_are_named_by_training_and_by_inspect(tmp_path, caplog):
    train = [*TRAIN, Sentence(("Ann", "in", "Rome"), ("B-Per", "O", "B-LOC\u200b"))]
    files = own_files(tmp_path / "clinical", train=train)
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        assert len(load_corpus(DataConfig(**files), progress=False).labels) == 9  # (each a label of its own)
    assert f"{files['train']}: types 'PER', 'Per' differ only in case or invisible characters" in caplog.text
    assert f"{files['train']}: type 'LOC\\u200b' holds an invisible character" in caplog.text
    shown = CliRunner().invoke(app, ["data", "inspect", files["train"]]).output
    assert "    'LOC\\u200b'" in shown and "- types 'LOC', 'LOC\\u200b' differ only in case" in shown


def test_a_dev_split_without_entities_is_warned_of(tmp_path, caplog):
    files = own_files(tmp_path / "clinical", dev=[Sentence(("Nothing", "here"), ("O", "O"))])
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        load_corpus(DataConfig(**files), progress=False)
    assert (
        f"{files['dev']}: no entities, every tag is O: its entity F1 is 0 whatever the model does, so the best"
        in caplog.text
    )
    assert f"{files['test']}: no entities" not in caplog.text


def test_an_own_corpus_needs_all_three_files_and_says_which_is_missing(tmp_path):
    files = own_files(tmp_path)
    config = tmp_path / "exp.yaml"
    config.write_text(f"name: mine\ndata:\n  train: {files['train']}\n  dev: {files['dev']}\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:2: data: .*add data.test \(or name a data.corpus\)"):
        load_config(config)
    config.write_text(f"name: mine\ndata:\n  train: {files['train']}\n  dev: {files['dev']}\n  test: {files['test']}\n")
    assert load_config(config).data.own_files and load_config(config).name == "mine"


def test_iob1_files_are_read_as_iob1_with_a_note(tmp_path, caplog):
    iob1 = [Sentence(("Anna", "Schmidt", "in", "Berlin"), ("I-PER", "I-PER", "O", "I-LOC"))] * 2
    files = own_files(tmp_path / "old", train=iob1, dev=iob1, test=iob1)
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        corpus = load_corpus(DataConfig(**files), progress=False)
    assert corpus.splits["test"][0].tags == ("B-PER", "I-PER", "O", "B-LOC")  # no entity lost
    assert "train.conll: IOB1" in caplog.text and "reading all 3 files as IOB1" in caplog.text


def test_data_inspect_counts_entities_and_names_the_scheme(tmp_path):
    files = own_files(tmp_path)
    result = CliRunner().invoke(app, ["data", "inspect", files["train"], files["dev"]])
    assert result.exit_code == 0, result.output
    assert "sentences 3, tokens 12" in result.output and "IOB2 (every entity starts with B-)" in result.output
    assert "    LOC                      3\n    PER                      3" in result.output
    assert "ORG                      1" in result.output and "problems:\n    none found" in result.output
    missing = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "nope.conll")])
    assert missing.exit_code == 2 and "nope.conll: no such file" in missing.output


@pytest.mark.parametrize(
    ("tags", "scheme", "entities"),
    [
        ("person person O O place", "IO (bare types), read as IOB2", ["person 1", "place 1"]),
        ("B I O O B", "untyped (B, I, O: one type, ENTITY), read as IOB2", ["ENTITY 2"]),
        ("B-PER E-PER O O U-LOC", "BIOES-style (S-, E-, U-, L-, M-), read as IOB2", ["LOC 1", "PER 1"]),
        ("B-PER I-PER O O B-LOC", "IOB2 (every entity starts with B-)", ["LOC 1", "PER 1"]),
    ],
)
def test_data_inspect_names_the_scheme_a_file_is_written_in_not_only_what_it_is_read_as(
    tmp_path, tags, scheme, entities
):
    words = ["Anna", "Schmidt", "went", "to", "Berlin"]
    (tmp_path / "f.txt").write_text("".join(f"{w}\t{t}\n" for w, t in zip(words, tags.split(), strict=True)))
    shown = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "f.txt")]).output
    assert f"tag scheme: {scheme}\n" in shown, shown
    assert [" ".join(line.split()) for line in shown.split("entities per type:\n")[1].splitlines()[:-2]] == entities


def test_a_mixed_file_is_described_as_training_reads_it(tmp_path):
    # (CoNLL-2003's eng.train is one: 23,427 entities start with I-, 2 with B- after O)
    mixed = [Sentence(("in", "New", "York"), ("O", "I-LOC", "I-LOC")), Sentence(("Anna", "ran"), ("B-PER", "O"))]
    files = own_files(tmp_path / "clinical", train=mixed)
    shown = CliRunner().invoke(app, ["data", "inspect", files["train"]]).output
    assert "mixed: 1 entities start with I- (IOB1) and 1 with B- after O (IOB2); training reads it as IOB1" in shown
    assert load_corpus(DataConfig(**files), progress=False).splits["train"][0].tags == ("O", "B-LOC", "I-LOC")


def test_data_inspect_of_a_task_folder_reads_its_three_splits_and_refuses_another_folder(tmp_path):
    own_files(tmp_path / "clinical")
    result = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "clinical")])
    assert result.exit_code == 0, result.output
    assert [line.split("/")[-1] for line in result.output.splitlines() if "(CoNLL columns)" in line] == [
        "train.conll (CoNLL columns)", "dev.conll (CoNLL columns)", "test.conll (CoNLL columns)"]  # fmt: skip
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "eng.train").write_text("Anna B-PER\n")
    other = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "other")])
    assert other.exit_code == 2 and "is no task folder" in other.output and "other/*" in other.output


def test_data_inspect_of_an_experiment_or_a_corpus_name_reads_each_split_and_names_a_type_train_lacks(tmp_path):
    files = own_files(tmp_path / "clinical")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(f"data:\n  corpus: {tmp_path / 'clinical'}\n")
    for given in ("run/config.yaml", "run"):  # an experiment file, a run directory
        shown = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / given)]).output
        sections = shown.split("(CoNLL columns)")
        assert [section.rsplit("\n", 1)[-1].strip() for section in sections[:-1]] == list(files.values()), shown
        assert "problems:\n    none found" in sections[1]  # train
        assert "problems:\n    - 1 type the train split never has, so the model cannot predict them" in sections[2]
        assert "misses): ORG\n" in sections[2] and "none found" in sections[3]  # dev; test: no ORG
    generated = CliRunner().invoke(app, ["data", "inspect", "generated"]).output
    assert [line for line in generated.splitlines() if line.startswith("generated")] == [
        "generated train (generated)", "generated dev (generated)", "generated test (generated)"]  # fmt: skip
    misspelt = CliRunner().invoke(app, ["data", "inspect", "crossner_politcs"])
    assert misspelt.exit_code == 2 and "unknown corpus 'crossner_politcs' (did you mean crossner_politics?)" in (
        misspelt.output)  # fmt: skip
    columns = CliRunner().invoke(app, ["data", "inspect", "--columns", "1,2", str(tmp_path / "run")])
    assert columns.exit_code == 2 and "config.yaml is read as its data section lays it out" in columns.output


def test_data_inspect_lists_a_bioes_tag_continuing_no_entity_as_a_problem(tmp_path):
    (tmp_path / "f.txt").write_text("Paris S-LOC\nLondon E-LOC\nis O\nJohn B-PER\nSmith E-PER\n")
    shown = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "f.txt")]).output
    assert "    LOC                      2\n" in shown  # (London: an entity of its own, as seqeval reads it)
    assert "problems:\n    - 1 E-, L- or M- tag continuing no entity (after O, another type" in shown


def test_a_parquet_write_that_fails_leaves_the_file_before_it_and_no_temporary_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    write_parquet(path, TRAIN)
    before = path.read_bytes()

    def disk_full(table: pa.Table, where: Path) -> None:
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_parquet(path, DEV)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["train.parquet"]


def test_data_inspect_lists_blank_words_as_a_problem(tmp_path):
    """A tab-separated line whose word column is blank (a spreadsheet's empty cell) reads as an empty word."""
    (tmp_path / "f.tsv").write_text("Anna\tB-PER\nwent\tO\n\nBob\tB-PER\n\tO\n \u00a0\tO\n")
    shown = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "f.tsv")]).output
    assert "- 2 blank words, empty or only spaces (the first: sentence 2, word 2; a blank word column?)" in shown
    (tmp_path / "g.tsv").write_text("Anna\tB-PER\n\u00a0Bob\tO\n")
    assert "blank word" not in CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "g.tsv")]).output


def test_a_hugging_face_hub_layout_is_a_task_folder(tmp_path):
    # the Hub's Parquet: one shard per split (data/train-00000-of-00001.parquet) or a folder per split
    for split, sentences in (("train", TRAIN), ("validation", DEV), ("test", TEST)):
        write_parquet(tmp_path / "data" / f"{split}-00000-of-00001.parquet", sentences)
        write_parquet(tmp_path / "by_split" / split / "0000.parquet", sentences)
    assert folder_splits(tmp_path / "data") == {
        split: str(tmp_path / "data" / f"{name}-00000-of-00001.parquet")
        for split, name in (("train", "train"), ("dev", "validation"), ("test", "test"))
    }
    corpus = load_corpus(DataConfig(corpus=str(tmp_path / "by_split")), progress=False)
    assert (corpus.splits["train"], corpus.splits["dev"], corpus.splits["test"]) == (TRAIN, DEV, TEST)
    write_parquet(tmp_path / "data" / "train.parquet", TRAIN)  # a split given twice
    with pytest.raises(ValueError, match=r"2 train files \(train-00000-of-00001.parquet, train.parquet\)"):
        folder_splits(tmp_path / "data")
    shown = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "by_split" / "train")])
    assert shown.exit_code == 0 and "by_split/train (Parquet files)\n  sentences 3, tokens 12" in shown.output


def test_a_split_in_several_hub_shards_is_read_whole_from_any_of_them(tmp_path):
    """A large split on the Hub: data/train-00000-of-00003.parquet, ...; the shards in order, each once."""
    parts = [TRAIN[:1], DEV, TEST]
    for i, sentences in enumerate(parts):
        write_parquet(tmp_path / "data" / f"train-{i:05d}-of-00003.parquet", sentences)
    for split in ("validation", "test"):
        write_parquet(tmp_path / "data" / f"{split}-00000-of-00001.parquet", TEST)
    whole = [*TRAIN[:1], *DEV, *TEST]
    assert folder_splits(tmp_path / "data")["train"] == str(tmp_path / "data" / "train-00000-of-00003.parquet")
    assert load_corpus(DataConfig(corpus=str(tmp_path / "data")), progress=False).splits["train"] == whole
    assert read_corpus_file(tmp_path / "data" / "train-00002-of-00003.parquet") == whole  # named by any shard
    (tmp_path / "data" / "train-00001-of-00003.parquet").unlink()
    with pytest.raises(CorpusFormatError, match=r"train-00000-of-00003.parquet: a shard of 3, and "
                       r"train-00001-of-00003.parquet is not beside it"):  # fmt: skip
        load_corpus(DataConfig(corpus=str(tmp_path / "data")), progress=False)


def write_arrow_split(folder: Path, sentences: list[Sentence], names: list[str]) -> None:
    """A split as ``DatasetDict.save_to_disk`` writes it: an Arrow stream of class ids, the ClassLabel names in the
    schema's metadata (datasets' ArrowWriter), beside its dataset_info.json and state.json."""
    label = {"names": names, "_type": "ClassLabel"}
    meta = {"huggingface": json.dumps({"info": {"features": {"ner_tags": {"feature": label, "_type": "List"}}}})}
    ids = [[names.index(tag) for tag in s.tags] for s in sentences]
    table = pa.table({"id": [str(i) for i in range(len(ids))], "tokens": [list(s.tokens) for s in sentences],
                      "ner_tags": ids}).replace_schema_metadata(meta)  # fmt: skip
    folder.mkdir(parents=True)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (folder / "dataset_info.json").write_text("{}")
    (folder / "state.json").write_text("{}")


def test_a_dataset_saved_with_save_to_disk_is_a_task_folder(tmp_path, caplog):
    """datasets' DatasetDict.save_to_disk: dataset_dict.json and a folder of Arrow files per split; it was 'no
    train file'."""
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    for split, sentences in (("train", TRAIN), ("validation", DEV), ("test", TEST)):
        write_arrow_split(tmp_path / "saved" / split, sentences, names)
    (tmp_path / "saved" / "dataset_dict.json").write_text('{"splits": ["train", "validation", "test"]}')
    with caplog.at_level(logging.WARNING):
        corpus = load_corpus(DataConfig(corpus=str(tmp_path / "saved")), progress=False)
    assert (corpus.splits["train"], corpus.splits["dev"], corpus.splits["test"]) == (TRAIN, DEV, TEST)
    assert "passed over" not in caplog.text  # (dataset_info.json and state.json hold no sentences)
    arrow = tmp_path / "saved" / "train" / "data-00000-of-00001.arrow"
    assert read_corpus_file(arrow) == TRAIN
    shown = CliRunner().invoke(app, ["data", "inspect", str(arrow)])
    assert shown.exit_code == 0 and "data-00000-of-00001.arrow (Arrow)\n  sentences 3, tokens 12" in shown.output


def test_data_convert_detects_an_iob1_file_unless_told_the_scheme(tmp_path, caplog):
    from drml_ray.data.conll import read_conll

    iob1 = [Sentence(("Anna", "Schmidt", "in", "Berlin"), ("I-PER", "I-PER", "O", "I-LOC"))]
    write_conll(tmp_path / "old.conll", iob1)
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        result = CliRunner().invoke(app, ["data", "convert", str(tmp_path / "old.conll"), str(tmp_path / "new.conll")])
    assert result.exit_code == 0, result.output
    assert read_conll(tmp_path / "new.conll")[0].tags == ("B-PER", "I-PER", "O", "B-LOC")  # no entity dropped
    assert "old.conll: IOB1" in caplog.text and "reading it as IOB1" in caplog.text
    told = CliRunner().invoke(app, ["data", "convert", str(tmp_path / "old.conll"), str(tmp_path / "as_is.conll"),
                                    "--from-scheme", "iob2"])  # fmt: skip
    assert told.exit_code == 0 and read_conll(tmp_path / "as_is.conll")[0].tags == iob1[0].tags


def test_a_corpus_whose_three_splits_are_replaced_is_the_users_own(tmp_path, caplog):
    files = own_files(tmp_path / "clinical")
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        corpus = load_corpus(DataConfig(corpus="generated", **files), progress=False)
    assert corpus.name == "clinical" and not corpus.generated and "GENERATED" not in corpus.describe()
    assert corpus.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # train's, not dev's ORG too
    assert "data.corpus generated is not read: data.train, data.dev and data.test replace all" in caplog.text


def test_an_iob1_file_replacing_one_split_keeps_its_entities(tmp_path, caplog):
    iob1 = [Sentence(("Anna", "Schmidt", "in", "Berlin"), ("I-PER", "I-PER", "O", "I-LOC"))] * 2
    files = own_files(tmp_path, train=iob1)
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        corpus = load_corpus(DataConfig(corpus="generated", train=files["train"]), progress=False)
    assert corpus.splits["train"][0].tags == ("B-PER", "I-PER", "O", "B-LOC") and corpus.generated
    assert "train.conll: IOB1" in caplog.text


def test_a_file_without_blank_lines_between_sentences_is_warned_of(tmp_path, caplog):
    run_on = [Sentence(tuple(["Anna", "ran"] * 300), tuple(["B-PER", "O"] * 300))]  # 600 words: one "sentence"
    files = own_files(tmp_path / "clinical", test=run_on)
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.load"):
        load_corpus(DataConfig(**files), progress=False)
    assert (
        f"{files['test']}: a sentence of 600 words: a blank line ends each sentence (are some missing?)" in caplog.text
    )
    assert f"{files['train']}: a sentence" not in caplog.text


def test_json_lines_read_as_a_table_of_the_same_fields(tmp_path):
    """run_ner.py's --train_file: one object a sentence, tokens and ner_tags (strings; class ids name nothing)."""
    rows = [{"id": str(i), "tokens": list(s.tokens), "ner_tags": list(s.tags)} for i, s in enumerate(TRAIN + DEV)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert read_corpus_file(tmp_path / "train.jsonl") == TRAIN + DEV
    (tmp_path / "broken").write_text(json.dumps(rows[0]) + '\n{"tokens": ["Hi"\n')  # (no suffix: told by its {)
    with pytest.raises(CorpusFormatError, match=r"broken:2: not JSON lines of a corpus \(Missing a comma"):
        read_corpus_file(tmp_path / "broken")
    (tmp_path / "news.conll").write_text("[\tO\nUPDATE\tO\n]\tO\nObama\tB-PER\n")  # a first word [ is CoNLL
    assert read_corpus_file(tmp_path / "news.conll")[0].tokens == ("[", "UPDATE", "]", "Obama")
    (tmp_path / "train.jsonl.gz").write_bytes(gzip.compress((tmp_path / "train.jsonl").read_bytes()))
    assert read_corpus_file(tmp_path / "train.jsonl.gz") == TRAIN + DEV  # (compressed, as CoNLL files may be)
    (tmp_path / "spaced").write_text('{ "tokens": ["Hi"], "ner_tags": ["O"]}\n')  # another writer's spacing
    assert read_corpus_file(tmp_path / "spaced")[0].tokens == ("Hi",)
    for text in ["", "\n\n", '{"tokens": [], "tags": []}\n']:  # an empty file, blank lines, only empty lists
        (tmp_path / "empty.jsonl").write_text(text)
        with pytest.raises(CorpusFormatError, match="empty.jsonl: no sentences found"):
            read_corpus_file(tmp_path / "empty.jsonl")


def test_data_columns_picks_the_word_and_tag_columns_of_own_files(tmp_path, monkeypatch):
    """GermEval: a word index, the word, the outer entity, the nested one; read by default from the last column."""
    (tmp_path / "g").mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / "g" / f"{split}.tsv").write_text(
            "1\tAnna\tB-PER\tO\n2\tin\tO\tO\n3\tBerlin-Mitte\tB-LOC\tB-LOCpart\n"
        )
    write_parquet(tmp_path / "fine.parquet", TRAIN)  # columns tokens, tags, doc
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "exp.yaml"
    config.write_text("data:\n  corpus: ./g\n  columns: [2, 3]\n")
    assert load_corpus(load_config(config).data, progress=False).splits["dev"][0].tags == ("B-PER", "O", "B-LOC")
    assert load_corpus(DataConfig(corpus="./g"), progress=False).splits["dev"][0].tags == ("O", "O", "B-LOCpart")
    shown = CliRunner().invoke(app, ["data", "inspect", "g", "--columns", "2,3"])  # what training reads
    assert shown.exit_code == 0 and "PER" in shown.output and "LOCpart" not in shown.output
    config.write_text(
        "data:\n  train: fine.parquet\n  dev: fine.parquet\n  test: fine.parquet\n  columns: [tokens, tags]\n"
    )
    assert load_corpus(load_config(config).data, progress=False).splits["test"] == TRAIN
    for columns, said in [("[0, 3]", "counted from 1 in CoNLL files"), ("[2, tags]", "or named in Parquet"),
                          ("[3, 3]", "the word's column and the tag's")]:  # fmt: skip
        config.write_text(f"data:\n  corpus: ./g\n  columns: {columns}\n")
        with pytest.raises(ConfigError, match=rf"exp.yaml:3: data.columns: .*{said}"):
            load_config(config)
    config.write_text("data:\n  corpus: conll2003\n  columns: [2, 3]\n")  # its layout is known
    with pytest.raises(ConfigError, match=r"data.columns: picks columns of your own files .*conll2003 is read as"):
        load_config(config)
    with pytest.raises(CorpusFormatError, match=r"fine.parquet: a Parquet file's columns are named"):
        load_corpus(DataConfig(corpus="./g", test="fine.parquet", columns=[2, 3]), progress=False)


def test_drml_evaluate_reads_the_columns_it_is_given_and_refuses_them_for_a_named_corpus(tmp_path, monkeypatch):
    from drml_ray.data.load import evaluation_data

    path = tmp_path / "t.tsv"
    path.write_text("1\tAnna\tB-PER\tB-X\n2\tin\tO\tO\n")
    assert evaluation_data(str(path), "test", False, (1, 2))[0][0].tags == ("B-PER", "O")
    assert evaluation_data(str(path), "test", False)[0][0].tags == ("B-X", "O")
    from tests.test_malformed import tiny_model

    tiny_model()(tmp_path / "model")
    shown = CliRunner().invoke(app, ["evaluate", str(tmp_path / "model"), "conll2003", "--columns", "2,3"])
    assert (
        shown.exit_code == 2
        and "--columns picks columns of a corpus file or a task folder's; conll2003" in shown.output
    )
