from __future__ import annotations

import json
import logging
import unicodedata

import pytest

from drml_ray.config import ModelConfig
from drml_ray.data.conll import Sentence
from drml_ray.data.parquet import write_parquet
from drml_ray.errors import UserError
from drml_ray.ner.evaluate import load_saved_model
from drml_ray.ner.inputs import read_inputs
from drml_ray.ner.modeling import build_model, load_tokenizer, save_hf_folder
from drml_ray.ner.predict import entities_from_tags, predict_lines, predict_records, split_words, words_and_tags

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_split_words_offsets():
    text = "Hi, Bob's well-known U.S. trip"
    spans = split_words(text)
    assert [text[s:e] for s, e in spans] == ["Hi", ",", "Bob", "'s", "well-known", "U.S.", "trip"]
    assert spans[:4] == [(0, 2), (2, 3), (4, 7), (7, 9)]


@pytest.mark.parametrize(
    ("text", "words"),
    [  # as CoNLL-2003 writes these words (its eng.train has U.S. 428 times, 's 1,866, n't 126, M. 53, Inc. 12)
        ("Germany's E.U.'s GERMANY'S players' I'm", ["Germany", "'s", "E.U.", "'s", "GERMANY", "'S", "players", "'",
                                                     "I", "'m"]),
        ("don't won't O'Brien's rock'n'roll", ["do", "n't", "wo", "n't", "O'Brien", "'s", "rock'n'roll"]),
        ("Mr. Smith of Apple Inc. met J. Doe at St. Paul.", ["Mr.", "Smith", "of", "Apple", "Inc.", "met", "J.", "Doe",
                                                             "at", "St.", "Paul", "."]),
        ("3.5 1,000 10:30 2-1 in 1996. Then... a.m.", ["3.5", "1,000", "10:30", "2-1", "in", "1996", ".", "Then",
                                                       "...", "a.m."]),
        ("Income is Co-op's, not Corp's; A. b", ["Income", "is", "Co-op", "'s", ",", "not", "Corp", "'s", ";", "A",
                                                 ".", "b"]),
    ],
)  # fmt: skip
def test_raw_text_is_cut_into_words_as_conll_cuts_english(text, words):
    assert [text[s:e] for s, e in split_words(text)] == words


@pytest.mark.parametrize(
    "words",
    [  # words as WikiANN / PAN-X and other corpora of these languages write them
        ["नरेन्द्र", "मोदी", "दिल्ली", "में", "हैं", "।"],  # Hindi: virama and vowel signs inside every word
        ["சென்னை", "தமிழ்நாடு"],  # Tamil
        ["বাংলাদেশ", "ঢাকা"],  # Bengali
        ["مُحَمَّد", "في", "القاهرة", "."],  # Arabic with harakat
        ["می\u200cخواهم", "تهران"],  # Persian: a zero-width non-joiner inside a word
        [unicodedata.normalize("NFD", w) for w in ["José", "Müller", "visitó", "Bogotá", "Nguyễn"]],  # decomposed
        ["👍🏽", "👩\u200d👩\u200d👧", "co\u00adoperate"],  # a skin tone, joined emoji, a soft hyphen
    ],
)
def test_raw_text_in_any_script_is_cut_into_the_words_its_corpora_write(words):
    """Python's ``\\w`` holds no combining mark: 'नरेन्द्र' was cut into 8 words, decomposed 'José' into 'Jose' and
    an accent, so a model trained on the corpus' words read other words from drml predict and serve."""
    text = " ".join(words)
    assert [text[s:e] for s, e in split_words(text)] == words


def test_cjk_ideographs_written_without_spaces_are_a_word_each_as_chinese_corpora_write_them():
    """A run of ideographs has no space to cut at: '我住在北京。' was one word (one tag for the whole clause)."""
    cases = [("我住在北京。", ["我", "住", "在", "北", "京", "。"]), ("在Google工作", ["在", "Google", "工", "作"]),
             ("한국어 문장", ["한국어", "문장"])]  # fmt: skip
    for text, words in cases:
        assert [text[s:e] for s, e in split_words(text)] == words


def test_entities_from_tags_hand_case():
    text = "Anna Smith met Bob in New York"
    spans = split_words(text)
    tags = ["B-PER", "I-PER", "O", "I-PER", "O", "B-LOC", "I-LOC"]  # a lone I-PER still names an entity
    scores = [0.9, 0.7, 0.99, 0.6, 0.99, 0.8, 0.6]
    assert entities_from_tags(text, spans, tags, scores) == [
        {"type": "PER", "start": 0, "end": 10, "text": "Anna Smith", "score": 0.8},
        {"type": "PER", "start": 15, "end": 18, "text": "Bob", "score": 0.6},
        {"type": "LOC", "start": 22, "end": 30, "text": "New York", "score": 0.7},
    ]
    # B- after B- of the same type starts a new entity; I- of another type does too.
    entities = entities_from_tags("a b c", split_words("a b c"), ["B-PER", "B-PER", "I-LOC"], [1.0] * 3)
    assert [e["text"] for e in entities] == ["a", "b", "c"]


def test_a_records_words_and_tags_are_read_back_from_its_entities():
    """What ``drml predict --output X.parquet`` keeps: the words as split and the IOB2 tags of the entities (a stray
    I- that started an entity is its B-), for raw and pre-tokenised text."""
    text = "Anna Smith met Bob in New York."
    entities = entities_from_tags(text, split_words(text), ["B-PER", "I-PER", "O", "I-PER", "O", "B-LOC", "I-LOC",
                                                            "O"], [1.0] * 8)  # fmt: skip
    words, tags = words_and_tags({"text": text, "entities": entities}, pretokenized=False)
    assert words == ["Anna", "Smith", "met", "Bob", "in", "New", "York", "."]
    assert tags == ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "I-LOC", "O"]
    adjacent = [{"type": "PER", "start": 0, "end": 1}, {"type": "PER", "start": 2, "end": 5}]
    assert words_and_tags({"text": "A B,C D", "entities": adjacent}, pretokenized=True) == (
        ["A", "B,C", "D"], ["B-PER", "B-PER", "O"])  # fmt: skip
    assert words_and_tags({"text": "", "entities": []}, pretokenized=False) == ([], [])


def test_read_inputs_detects_conll_and_text(tmp_path):
    conll = tmp_path / "x.conll"
    conll.write_text("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nsaid VBD B-VP O\n\nHi NN B-NP O\n")
    assert read_inputs(conll) == (["EU said", "Hi"], True, [0, 0])
    plain = tmp_path / "x.txt"
    plain.write_text("Anna met Bob .\nO no\n\nNext one\n")  # a blank line opens the next document
    assert read_inputs(plain) == (["Anna met Bob .", "O no", "", "Next one"], False, [0, 0, 1, 1])
    tagged = tmp_path / "y.conll"  # BIOES tags, then IO's bare types: CoNLL too
    tagged.write_text("Word\tTag\nAnna\tS-PER\nran\tO\n")  # (a first line naming the columns)
    assert read_inputs(tagged) == (["Anna ran"], True, [None])
    tagged.write_text("Anna\tperson-actor\nLee\tperson-actor\nran\tO\nfar\tO\n")
    assert read_inputs(tagged) == (["Anna Lee ran far"], True, [None])
    plain.write_text("Anna met\nBob ran\nto Oslo\n")  # lines of one width, but no O: text
    assert read_inputs(plain).texts == ["Anna met", "Bob ran", "to Oslo"]


def test_conll_words_without_tags_are_read_as_their_sentences(tmp_path):
    """One word a line and a blank line after each sentence (a test file without its tags): sentences, not a text
    a word; single words on lines of their own stay texts of one word (``--format conll`` reads them as one)."""
    words = tmp_path / "words.txt"
    words.write_text("-DOCSTART-\n\nEU\nrejects\t\nGerman\n\nHi\n\n-DOCSTART-\n\nYo\nthere\n")
    assert read_inputs(words) == (["EU rejects German", "Hi", "Yo there"], True, [0, 0, 1])
    words.write_text("Anna\nmet\nBob\n\nHi\n")
    assert read_inputs(words) == (["Anna met Bob", "Hi"], True, [None, None])
    assert read_inputs(words, "text").texts == ["Anna", "met", "Bob", "", "Hi"]
    words.write_text("Berlin\nParis\n")
    assert read_inputs(words) == (["Berlin", "Paris"], False, [0, 0])
    assert read_inputs(words, "conll") == (["Berlin Paris"], True, [None])


def test_a_gzipped_text_file_is_read_as_its_lines(tmp_path):
    import gzip

    (tmp_path / "in.txt.gz").write_bytes(gzip.compress(b"Anna met Bob .\r\nHi\n"))
    assert read_inputs(tmp_path / "in.txt.gz").texts == ["Anna met Bob .", "Hi"]


def test_a_parquet_corpus_or_a_folder_of_them_is_read_as_its_sentences(tmp_path, caplog):
    write_parquet(tmp_path / "c.parquet", [Sentence(("EU", "said"), ("B-ORG", "O"), 0), Sentence(("Hi",), ("O",), 1)])
    assert read_inputs(tmp_path / "c.parquet") == (["EU said", "Hi"], True, [0, 1])
    write_parquet(tmp_path / "d.parquet", [Sentence(("Yo",), ("O",))])
    assert read_inputs(tmp_path).texts == ["EU said", "Hi", "Yo"]  # (what drml serve --log-requests wrote)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: a folder without .parquet or .arrow files$"):
        read_inputs(tmp_path / "empty")
    (tmp_path / "empty" / "a.conll").write_text("Yo O\n")
    with pytest.raises(UserError, match=r"a folder without .parquet or .arrow files \(it holds a.conll: name a corpus"):
        read_inputs(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")  # (passed over, and said so)
    with caplog.at_level(logging.WARNING):
        assert read_inputs(tmp_path).texts == ["EU said", "Hi", "Yo"]
    assert "a folder is read as its .parquet and .arrow files; notes.txt passed over" in caplog.text


def test_a_table_of_texts_or_of_untagged_words_is_read_as_its_rows(tmp_path):
    """JSON lines of ``{"text": ...}`` (or a dataset's Parquet of texts) are raw text, one output line a row; a
    ``tokens`` column without tags is words; a table of neither names its columns, a null names its row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "texts.jsonl").write_text('{"text": "Anna met Bob."}\n{"text": ""}\n{"text": "Hi!", "id": 3}\n')
    assert read_inputs(tmp_path / "texts.jsonl") == (["Anna met Bob.", "", "Hi!"], False, [None] * 3)
    pq.write_table(pa.table({"tokens": [["EU", "said"], [], ["Hi"]]}), tmp_path / "words.parquet")
    assert read_inputs(tmp_path / "words.parquet") == (["EU said", "Hi"], True, [None] * 2)
    pq.write_table(pa.table({"text": ["a", None]}), tmp_path / "null.parquet")
    with pytest.raises(UserError, match=r"null.parquet:2: text: a null, not a text"):
        read_inputs(tmp_path / "null.parquet")
    pq.write_table(pa.table({"sentence": ["a"], "label": [1]}), tmp_path / "other.parquet")
    with pytest.raises(UserError, match=r"a tokens column \(lists of strings: .*\); it has sentence \(string"):
        read_inputs(tmp_path / "other.parquet")


def test_a_csv_file_of_texts_is_read_as_its_text_column(tmp_path):
    """A spreadsheet's export: a header, a text column (quoted commas and line breaks inside it), one text a row."""
    (tmp_path / "t.csv").write_text('id,text\n1,"Anna met Bob, then Paris."\n2,\n3,"two\nlines"\n')
    assert read_inputs(tmp_path / "t.csv") == (["Anna met Bob, then Paris.", "", "two\nlines"], False, [None] * 3)
    (tmp_path / "t.csv").write_bytes("\ufefftext;score\r\nAnna, Bob;1,5\r\n".encode())  # (Excel, comma decimals)
    assert read_inputs(tmp_path / "t.csv").texts == ["Anna, Bob"]
    (tmp_path / "t.csv").write_text("id,body\n1,x\n")
    with pytest.raises(UserError, match=r"drml predict tags a CSV file's text column; its header names id, body"):
        read_inputs(tmp_path / "t.csv")
    (tmp_path / "t.csv").write_text("id,text\n1,a\n2\n")
    with pytest.raises(UserError, match=r"not CSV that drml predict reads \(CSV parse error: Row #3: Expected 2"):
        read_inputs(tmp_path / "t.csv")


def test_a_line_ends_only_at_a_line_feed(tmp_path):
    # U+2028, U+0085 and form feeds inside a line are text: one output line per input line
    plain = tmp_path / "web.txt"
    plain.write_bytes("Anna\u2028met Bob\r\nIn\x0cParis\x85today\n".encode())
    assert read_inputs(plain).texts == ["Anna\u2028met Bob", "In\x0cParis\x85today"]


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    """A random tiny model saved like drml finetune saves one (it predicts plenty of entities)."""
    tokenizer = load_tokenizer("tiny-random-bert")
    model = build_model(ModelConfig(backbone="tiny-random-bert"), LABELS, seed=3, vocab_size=len(tokenizer))
    model.config.drml = {"decoding": "argmax"}  # each word its own most probable tag, as these tests were written
    folder = tmp_path_factory.mktemp("model") / "best"
    save_hf_folder(model, tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def context_model_dir(saved_model_dir, tmp_path_factory):
    """The same model, saved as trained with document context."""
    saved = load_saved_model(saved_model_dir)
    saved.model.config.drml = {"max_length": 64, "window_overlap": 8, "context": True, "decoding": "argmax"}
    folder = tmp_path_factory.mktemp("context") / "best"
    save_hf_folder(saved.model, saved.tokenizer, folder)
    return folder


def test_only_a_model_trained_with_context_reads_the_documents(saved_model_dir, context_model_dir):
    texts, documents = ["Berlin is big .", "Anna lives there ."], [0, 0]
    for folder, sees_context in ((saved_model_dir, False), (context_model_dir, True)):
        saved = load_saved_model(folder)
        assert saved.context == sees_context
        alone = predict_records(saved, texts, pretokenized=True)
        together = predict_records(saved, texts, pretokenized=True, documents=documents)
        apart = predict_records(saved, texts, pretokenized=True, documents=[0, 1])
        assert apart == alone
        assert (together != alone) == sees_context  # a random model's scores move with its context


def test_predicted_offsets_slice_back_to_the_entity_text(saved_model_dir):
    texts = ["Angela Merkel flew from Berlin to Paris on Monday.", "", "No entities here, probably!"]
    records = predict_records(load_saved_model(saved_model_dir), texts, pretokenized=False)
    assert [r["text"] for r in records] == texts
    assert records[1]["entities"] == []
    found = [e for r in records for e in r["entities"]]
    assert found, "a random 5-label model should tag something"
    for record in records:
        for e in record["entities"]:
            assert record["text"][e["start"] : e["end"]] == e["text"]
            assert e["type"] in {"LOC", "PER"} and 0 < e["score"] <= 1


def test_a_head_of_bioes_labels_tags_as_the_same_head_of_iob2_labels(saved_model_dir, tmp_path):
    import shutil

    shutil.copytree(saved_model_dir, tmp_path / "bioes")
    config = json.loads((tmp_path / "bioes" / "config.json").read_text())
    config["id2label"] = {i: label.replace("B-", "S-").replace("I-", "E-") for i, label in config["id2label"].items()}
    config["label2id"] = {label: int(i) for i, label in config["id2label"].items()}
    (tmp_path / "bioes" / "config.json").write_text(json.dumps(config))  # S-X is B-X, E-X is I-X: the same tags
    texts = ["Angela Merkel flew from Berlin to Paris on Monday.", "Anna met Bob in Rome and Oslo ."]
    bioes = predict_records(load_saved_model(tmp_path / "bioes"), texts, pretokenized=False)
    assert bioes == predict_records(load_saved_model(saved_model_dir), texts, pretokenized=False)
    assert sum(len(r["entities"]) for r in bioes) > 2


def test_long_input_is_windowed_not_truncated(saved_model_dir):
    saved = load_saved_model(saved_model_dir)
    text = " ".join(["Berlin"] * 700)  # 700 words > the 512-position window
    [record] = predict_records(saved, [text], pretokenized=True)
    assert max((e["end"] for e in record["entities"]), default=0) <= len(text)
    from drml_ray.ner.evaluate import predict_tags

    tags, _ = predict_tags(saved, [text.split(" ")])
    assert len(tags[0]) == 700


def test_a_record_is_one_line_whatever_splits_the_lines(saved_model_dir):
    # U+2028, U+2029 and U+0085 inside a text are escaped, so str.splitlines reads one record a line too
    texts = ["Anna\u2028met Bob", "In\x85Paris\u2029today"]
    output = "\n".join(predict_lines(saved_model_dir, texts, False, engine="local"))
    assert [json.loads(line)["text"] for line in output.splitlines()] == texts


def test_predict_lines_local_engine_emits_json(saved_model_dir):
    lines = list(predict_lines(saved_model_dir, ["EU rejects German call ."], True, engine="local"))
    assert json.loads(lines[0])["text"] == "EU rejects German call ."
    texts = ["Angela Merkel flew from Berlin to Paris on Monday ."] * 3
    fp32 = [json.loads(line) for line in predict_lines(saved_model_dir, texts, True, engine="local")]
    bf16 = [json.loads(line) for line in predict_lines(saved_model_dir, texts, True, engine="local", bfloat16=True)]
    scores = [(e["score"], f["score"]) for r, s in zip(fp32, bf16, strict=True) for e, f in zip(r["entities"],
              s["entities"], strict=False)]  # fmt: skip
    assert scores and any(a != b for a, b in scores)  # the forward pass ran in bf16 ...
    assert all(abs(a - b) < 0.05 for a, b in scores)  # ... to about bf16's precision


def test_a_hub_id_names_a_model_to_predict_with_read_from_the_hub_cache(saved_model_dir, tmp_path, monkeypatch):
    """``drml predict ORG/NAME`` (no such folder here) takes the Hub model; with no network, from the Hub cache."""
    import shutil

    from typer.testing import CliRunner

    from drml_ray.cli import app
    from tests.helpers import offline_hub_cache

    snapshot = offline_hub_cache(tmp_path, monkeypatch, "org/ner")
    shutil.copytree(saved_model_dir, snapshot, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    hub = CliRunner().invoke(app, ["predict", "org/ner", "--text", "Anna met Bob in Paris ."])
    here = CliRunner().invoke(app, ["predict", str(saved_model_dir), "--text", "Anna met Bob in Paris ."])
    assert hub.exit_code == 0 and json.loads(hub.stdout) == json.loads(here.stdout), hub.output
    missing = CliRunner().invoke(app, ["predict", "org/other", "--text", "Anna"])
    said = "org/other: no such model folder or run directory here; as a Hub id, hub.invalid cannot be reached"
    assert missing.exit_code == 2 and said in missing.output
    (snapshot / "model.safetensors").unlink()  # (a pickle's only)
    pickled = CliRunner().invoke(app, ["predict", "org/ner", "--text", "Anna"])
    assert pickled.exit_code == 2 and "org/ner: the Hub model has no safetensors weights" in pickled.output


def test_predictions_written_as_parquet_are_a_corpus_of_the_predicted_tags(saved_model_dir, tmp_path):
    """``--output X.parquet``: the rows a request log holds (text, entities, model, version), read back as a corpus
    whose tags are the predicted entities; ``--output X.jsonl.gz`` is gzip, as its name says. The model decodes
    valid IOB2 (constrained, as drml finetune saves it), so scored on its own predictions it agrees with every one."""
    import gzip
    import shutil

    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from drml_ray.cli import app
    from drml_ray.data.parquet import LOG_SCHEMA
    from drml_ray.data.reader import read_corpus_file

    saved_model_dir = shutil.copytree(saved_model_dir, tmp_path / "model")
    config = json.loads((saved_model_dir / "config.json").read_text())
    (saved_model_dir / "config.json").write_text(json.dumps(config | {"drml": {"decoding": "constrained"}}))
    texts = tmp_path / "in.txt"
    texts.write_text("Angela Merkel flew from Berlin to Paris.\n\nBob met \u200fAnna.\n")
    for name in ("preds.parquet", "preds.jsonl.gz"):
        result = CliRunner().invoke(app, ["predict", str(saved_model_dir), str(texts), "--output", tmp_path / name])
        assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in gzip.decompress((tmp_path / "preds.jsonl.gz").read_bytes()).splitlines()]
    table = pq.read_table(tmp_path / "preds.parquet")
    assert table.schema == LOG_SCHEMA and table.column("text").to_pylist() == [r["text"] for r in records]
    assert [json.loads(e) for e in table.column("entities").to_pylist()] == [r["entities"] for r in records]
    assert set(table.column("model").to_pylist()) == {str(saved_model_dir.resolve())}
    corpus = read_corpus_file(tmp_path / "preds.parquet")  # (the blank line's row, with no words, passed over)
    assert [list(s.tokens) for s in corpus] == [["Angela", "Merkel", "flew", "from", "Berlin", "to", "Paris", "."],
                                                ["Bob", "met", "Anna", "."]]  # fmt: skip
    assert [s.doc for s in corpus] == [0, 1]  # (a blank line between two documents)
    for sentence, record in zip(corpus, [r for r in records if r["text"]], strict=True):
        entities = record["entities"]
        assert [tag[2:] for tag in sentence.tags if tag.startswith("B-")] == [e["type"] for e in entities]
        assert sum(tag != "O" for tag in sentence.tags) == sum(len(split_words(e["text"])) for e in entities)
    assert any(r["entities"] for r in records)  # (a random model tags something: the loop above checked tags)
    scored = CliRunner().invoke(app, ["evaluate", str(saved_model_dir), str(tmp_path / "preds.parquet"), "-o",
                                      tmp_path / "eval"])  # fmt: skip
    assert "[drml] entity F1 1.0000" in scored.output  # (the model agrees with its own predictions, word for word)
