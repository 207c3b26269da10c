from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drml_ray.data.conll import CorpusFormatError, Sentence, discover_labels, read_conll, write_conll
from drml_ray.data.parquet import read_parquet, write_parquet
from drml_ray.data.reader import read_corpus_file
from drml_ray.data.tags import entity_types, iob1_to_iob2

CONLL_IOB1 = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
Smith NNP I-NP B-PER


-DOCSTART- -X- O O
BRUSSELS NNP I-NP I-LOC
"""


def write(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_iob1_to_iob2_hand_cases():
    # I- after O or after another type starts an entity; B- (IOB1: adjacent same-type) stays B-.
    assert iob1_to_iob2(["I-ORG", "I-ORG", "O", "I-PER", "B-PER", "I-PER", "I-LOC", "O"]) == [
        "B-ORG", "I-ORG", "O", "B-PER", "B-PER", "I-PER", "B-LOC", "O",
    ]  # fmt: skip
    assert iob1_to_iob2(["B-PER", "I-PER"]) == ["B-PER", "I-PER"]  # already IOB2: unchanged
    assert iob1_to_iob2([]) == []


def test_read_conll_iob1_docstart_and_blank_lines(tmp_path):
    sentences = read_conll(write(tmp_path, CONLL_IOB1), scheme="iob1")
    assert sentences == [
        Sentence(("EU", "rejects", "German", "call", "."), ("B-ORG", "O", "B-MISC", "O", "O")),
        Sentence(("Peter", "Blackburn", "Smith"), ("B-PER", "I-PER", "B-PER")),
        Sentence(("BRUSSELS",), ("B-LOC",)),
    ]


def test_read_conll_tab_separated_iob2(tmp_path):
    sentences = read_conll(write(tmp_path, "United\tB-party\nRussia\tI-party\n,\tO\n\nHi\tO\n"))
    assert sentences[0].tags == ("B-party", "I-party", "O")
    assert len(sentences) == 2


def test_wrong_column_count_names_file_line_and_text(tmp_path):
    path = write(tmp_path, "EU NNP I-NP I-ORG\nrejects VBZ O\n")
    with pytest.raises(CorpusFormatError) as err:
        read_conll(path)
    assert f"{path}:2:" in str(err.value)
    assert "expected 4 columns" in str(err.value)
    assert "'rejects VBZ O'" in str(err.value)


def test_single_column_is_an_error(tmp_path):
    with pytest.raises(CorpusFormatError, match=r":1: expected a token and a tag column"):
        read_conll(write(tmp_path, "lonely\n"))


def test_unknown_scheme_prefix(tmp_path):
    path = write(tmp_path, "EU\tB-ORG\nrejects\tZ-ORG\n")
    with pytest.raises(CorpusFormatError, match=r"corpus.txt:2: unknown tag scheme prefix.*'Z-ORG'"):
        read_conll(path)


def test_comment_lines_before_sentences_are_skipped_and_a_hash_token_is_a_word(tmp_path):
    text = "# id 1\tdomain=en\nAnna _ _ B-PER\n# _ _ O\n\n# sent_id = 2\n# text = # wins\n# _ _ O\nwins _ _ O\n"
    sentences = read_conll(write(tmp_path, text))
    assert [(s.tokens, s.tags) for s in sentences] == [(("Anna", "#"), ("B-PER", "O")), (("#", "wins"), ("O", "O"))]


def test_trailing_tabs_and_spaces_around_tab_separated_columns_are_not_data(tmp_path):
    sentences = read_conll(write(tmp_path, "EU \tB-ORG\t\nrejects\t O \t\n"))
    assert [(s.tokens, s.tags) for s in sentences] == [(("EU", "rejects"), ("B-ORG", "O"))]


def test_a_no_break_space_or_next_line_character_is_a_token_not_a_column_break(tmp_path):
    # (str.split() splits on both: "\xa0 O" had one column, and "10\xa0000 B-CARDINAL" three)
    sentences = read_conll(write(tmp_path, "10\xa0000 B-NUM\n\xa0 O\n\x85 O\nend O\n"))
    assert [(s.tokens, s.tags) for s in sentences] == [(("10\xa0000", "\xa0", "\x85", "end"), ("B-NUM", "O", "O", "O"))]
    tabbed = read_conll(write(tmp_path, "\xa0\tO\nx\tB-PER\n", "tabbed.txt"))
    assert [s.tokens for s in tabbed] == [("\xa0", "x")]


BIOES = "EU\tS-ORG\nrejects\tO\nNew\tB-LOC\nYork\tE-LOC\n\nA\tB-PER\nB\tM-PER\nC\tL-PER\nD\tU-X\n"
BIOES_AS_IOB2 = [("B-ORG", "O", "B-LOC", "I-LOC"), ("B-PER", "I-PER", "I-PER", "B-X")]


def test_bioes_bilou_and_bmes_tags_are_read_as_iob2_and_said_so(tmp_path, caplog):
    with caplog.at_level("INFO", logger="drml_ray.data.tags"):
        sentences = read_conll(write(tmp_path, BIOES))
    assert [s.tags for s in sentences] == BIOES_AS_IOB2
    assert "corpus.txt: 5 BIOES/BILOU/BMES tags" in caplog.text
    raw_tags = [["S-ORG", "O", "B-LOC", "E-LOC"], ["B-PER", "M-PER", "L-PER", "U-X"]]
    path = tmp_path / "raw.parquet"
    pq.write_table(pa.table({"tokens": [list(s.tokens) for s in sentences], "tags": raw_tags}), path)
    assert read_parquet(path) == sentences


def test_a_bioes_tag_after_an_entity_ends_starts_another_as_seqeval_reads_it(tmp_path, caplog):
    """``S-LOC E-LOC`` was one entity (each tag rewritten alone: B-LOC I-LOC); seqeval reads two, as does an
    ``E-`` after ``O`` or after another type: the gold standard held entities the file does not."""
    raw_tags = [["S-LOC", "E-LOC", "O", "E-PER", "B-ORG", "E-LOC", "U-X", "I-X"]]
    text = "".join(f"w{i}\t{tag}\n" for i, tag in enumerate(raw_tags[0]))
    with caplog.at_level("INFO", logger="drml_ray.data.tags"):
        sentences = read_conll(write(tmp_path, text))
    assert sentences[0].tags == ("B-LOC", "B-LOC", "O", "B-PER", "B-ORG", "B-LOC", "B-X", "B-X")
    assert "corpus.txt: 3 E-, L- or M- tags continuing no entity" in caplog.text
    path = tmp_path / "raw.parquet"
    pq.write_table(pa.table({"tokens": [list(sentences[0].tokens)], "tags": raw_tags}), path)
    assert read_parquet(path) == sentences


@pytest.mark.parametrize("text", ["", "\n\n", "-DOCSTART- -X- O O\n\n"])
def test_empty_file(tmp_path, text):
    with pytest.raises(CorpusFormatError, match="no sentences found"):
        read_conll(write(tmp_path, text))


def test_write_then_read_round_trip(tmp_path):
    sentences = read_conll(write(tmp_path, CONLL_IOB1), scheme="iob1")
    out = tmp_path / "out.conll"
    write_conll(out, sentences)
    assert read_conll(out) == sentences


def test_parquet_round_trip_and_dispatch(tmp_path):
    sentences = read_conll(write(tmp_path, CONLL_IOB1), scheme="iob1")
    path = tmp_path / "corpus.parquet"
    write_parquet(path, sentences)
    assert read_parquet(path) == sentences
    assert read_corpus_file(path) == sentences


def test_parquet_bad_tag_names_row(tmp_path):
    path = tmp_path / "bad.parquet"
    write_parquet(path, [Sentence(("a",), ("B-PER",)), Sentence(("b",), ("X-Y",))])
    with pytest.raises(CorpusFormatError, match=r"bad.parquet:2: unknown tag scheme prefix"):
        read_parquet(path)


def test_parquet_of_large_strings_reads_and_its_empty_rows_are_skipped_as_blank_lines(tmp_path, caplog):
    text = pa.large_list(pa.large_string())  # (what Polars writes)
    rows = {
        "tokens": pa.array([["Anna", "ran"], [], ["Bo"]], text),
        "tags": pa.array([["B-PER", "O"], [], ["S-PER"]], text),
    }
    pq.write_table(pa.table(rows), tmp_path / "polars.parquet")
    with caplog.at_level("WARNING", logger="drml_ray.data.parquet"):
        sentences = read_parquet(tmp_path / "polars.parquet")
    assert sentences == [Sentence(("Anna", "ran"), ("B-PER", "O")), Sentence(("Bo",), ("B-PER",))]
    assert "polars.parquet: 1 empty row skipped" in caplog.text
    pq.write_table(pa.table({"tokens": ["Anna ran"], "tags": ["B-PER O"]}), tmp_path / "flat.parquet")
    with pytest.raises(CorpusFormatError, match=r"flat.parquet: .* not tokens: string, tags: string$"):
        read_parquet(tmp_path / "flat.parquet")


HF_NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.mark.parametrize("kind", ["List", "Sequence", "one-item list"])  # datasets 4+, before, shorthand
def test_a_hugging_face_datasets_parquet_file_reads_its_class_ids_by_name(tmp_path, kind):
    # what Dataset.to_parquet writes (checked with datasets 5.2.0): ids in ner_tags, names in the metadata
    label = {"names": HF_NAMES, "_type": "ClassLabel"}
    feature = [label] if kind == "one-item list" else {"feature": label, "_type": kind}
    meta = {"huggingface": json.dumps({"info": {"features": {"tokens": {}, "ner_tags": feature}}})}
    table = pa.table(
        {
            "id": ["0", "1"],
            "tokens": [["Anna", "Schmidt", "visited", "Berlin"], ["Hi"]],
            "pos_tags": [[0, 0, 1, 0], [0]],
            "ner_tags": [[1, 2, 0, 3], [0]],
        }
    ).replace_schema_metadata(meta)
    pq.write_table(table, tmp_path / "hf.parquet")
    assert read_corpus_file(tmp_path / "hf.parquet") == [
        Sentence(("Anna", "Schmidt", "visited", "Berlin"), ("B-PER", "I-PER", "O", "B-LOC")),
        Sentence(("Hi",), ("O",)),
    ]
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "bare.parquet")
    with pytest.raises(CorpusFormatError, match="bare.parquet: column ner_tags holds class ids and the file does not"):
        read_parquet(tmp_path / "bare.parquet")
    pq.write_table(
        pa.table({"tokens": [["a"]], "ner_tags": [[5]]}).replace_schema_metadata(meta), tmp_path / "x.parquet"
    )
    with pytest.raises(CorpusFormatError, match=r"x.parquet:1: class id 5 outside the file's 5 label names"):
        read_parquet(tmp_path / "x.parquet")


def test_discover_labels_has_both_prefixes_per_type():
    corpus = [Sentence(("a", "b"), ("B-PER", "O")), Sentence(("c",), ("I-LOC",))]
    assert discover_labels(corpus) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert entity_types(discover_labels(corpus)) == ["LOC", "PER"]


def test_documents_are_kept_and_survive_conll_and_parquet_round_trips(tmp_path):
    sentences = read_conll(write(tmp_path, CONLL_IOB1), scheme="iob1")
    assert [s.doc for s in sentences] == [0, 0, 1]
    write_conll(tmp_path / "out.conll", sentences)
    assert [s.doc for s in read_conll(tmp_path / "out.conll")] == [0, 0, 1]
    write_parquet(tmp_path / "c.parquet", sentences)
    assert [s.doc for s in read_parquet(tmp_path / "c.parquet")] == [0, 0, 1]
    assert [s.doc for s in read_corpus_file(tmp_path / "c.parquet", scheme="iob1")] == [0, 0, 1]  # IOB1 -> IOB2


def test_a_file_without_docstart_marks_no_documents(tmp_path):
    assert [s.doc for s in read_conll(write(tmp_path, "EU\tB-ORG\n\nBob\tB-PER\n"))] == [None, None]


def test_parquet_written_before_documents_reads_without_them(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"tokens": [["EU"]], "tags": [["B-ORG"]]}), tmp_path / "old.parquet")
    assert read_parquet(tmp_path / "old.parquet") == [Sentence(("EU",), ("B-ORG",))]
    assert read_parquet(tmp_path / "old.parquet")[0].doc is None


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("B-ACTOR\tsteve\nI-ACTOR\tmcqueen\nO\tstars\n\nO\tany\nB-GENRE\thorror\n", "tags read from column 1 of 2"),
        (
            "# text = Anna ran\n1\tsteve\tB-ACTOR\t-\n2\tmcqueen\tI-ACTOR\t-\n3\tstars\tO\t-\n\n1\tany\tO\t-\n"
            "2\thorror\tB-GENRE\t-\n",
            "tags read from column 3 of 4 (the last holds a tag on under half of the lines); "
            "words from column 2 (column 1 numbers them)",
        ),
        (
            "1 steve B-PER B-ACTOR\n2 mcqueen I-PER I-ACTOR\n3 stars O O\n\n1 any O O\n2 horror O B-GENRE\n",
            "words from column 2 (column 1 numbers them); column 3 holds tags too; only column 4 is read",
        ),
    ],
    ids=["tag-then-word", "universal-ner", "germeval"],
)
def test_other_column_layouts_a_whole_file_shows_are_read_and_said(tmp_path, caplog, text, said):
    path = tmp_path / "train.txt"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.conll"):
        sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [("steve", "mcqueen", "stars"), ("any", "horror")]
    assert [s.tags for s in sentences] == [("B-ACTOR", "I-ACTOR", "O"), ("O", "B-GENRE")]
    assert f"train.txt: {said}" in caplog.text


def test_a_few_wrong_tags_in_the_last_column_stay_an_error_where_another_column_holds_tags(tmp_path):
    path = tmp_path / "eng.train"  # CoNLL-2003's layout: the chunk column holds tags too
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B_MISC\n")
    with pytest.raises(CorpusFormatError, match=r"eng.train:3: unknown tag scheme prefix .*'B_MISC'"):
        read_conll(path)
    path.write_text("10 B-NP B-ORG\n11 B-VP O\n")  # a number is a word where the numbers do not count from 1
    assert read_conll(path)[0].tokens == ("10", "11")


@pytest.mark.parametrize("range_tag", ["O", "_"])
def test_conllu_multiword_tokens_and_empty_nodes_are_passed_over_for_their_words(tmp_path, caplog, range_tag):
    path = tmp_path / "fr.conllu"  # "du" is words 3 and 4, "de le"; 5.1 an empty node
    path.write_text(f"# text = Jean vit du Paris\n1\tJean\tB-PER\n2\tvit\tO\n3-4\tdu\t{range_tag}\n3\tde\tO\n"
                    f"4\tle\tO\n5\tParis\tB-LOC\n5.1\tvit\t{range_tag}\n\n1\tIl\tO\n")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.conll"):
        sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [("Jean", "vit", "de", "le", "Paris"), ("Il",)]
    assert sentences[0].tags == ("B-PER", "O", "O", "O", "B-LOC")
    assert "2 lines numbered like 3-4 or 5.1" in caplog.text
    assert read_conll(path, columns=(1, 2)) == sentences  # the same columns named


def test_a_word_like_3_4_is_a_word_where_column_1_does_not_number_the_words(tmp_path):
    path = tmp_path / "scores.txt"
    path.write_text("x\t2-1\tO\nx\t0.5\tO\n\n")
    assert read_conll(path, columns=(1, 2))[0].tokens == ("2-1", "0.5")
    path.write_text("2-1\tO\n1\tO\n\n")  # a first column of numbers that do not count from 1: words
    assert read_conll(path)[0].tokens == ("2-1", "1")


FEW_NERD = [
    [("Peter", "person-other"), ("Blackburn", "person-other"), ("of", "O"), ("EU", "organization-company"),
     ("and", "O"), ("France", "location-GPE")],
    [("it", "O")],
]  # fmt: skip


@pytest.mark.parametrize("layout", ["word-tag", "numbered", "columns"])
def test_io_tags_bare_types_are_read_as_iob2_runs(tmp_path, caplog, layout):
    numbered = layout != "word-tag"  # "columns": the same file, its columns named
    rows = [["\t".join([str(i)] * numbered + [word, tag]) for i, (word, tag) in enumerate(s, 1)] for s in FEW_NERD]
    path = write(tmp_path, "\n\n".join("\n".join(lines) for lines in rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.tags"):
        sentences = read_conll(path, columns=(1, 2) if layout == "columns" else None)
    assert sentences == [
        Sentence(
            ("Peter", "Blackburn", "of", "EU", "and", "France"),
            ("B-person-other", "I-person-other", "O", "B-organization-company", "O", "B-location-GPE"),
        ),
        Sentence(("it",), ("O",)),
    ]
    assert "the tags are bare types (IO tagging" in caplog.text


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("Selegiline\tB\nhydrochloride\tI\ninduced\tO\nasthma\tB\n", ("B-ENTITY", "I-ENTITY", "O", "B-ENTITY")),
        ("a\tS\nb\tO\nc\tB\nd\tE\n", ("B-ENTITY", "O", "B-ENTITY", "I-ENTITY")),  # BIOES, untyped
    ],
)
def test_untyped_tags_bare_prefixes_are_one_entity_type(tmp_path, caplog, text, tags):
    """BioBERT's corpora of one type tag B, I, O: taken for IO, Selegiline hydrochloride was two entities of
    the types B and I."""
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.tags"):
        assert read_conll(write(tmp_path, text))[0].tags == tags
    assert "corpus.txt: the tags carry no entity type (B, I, O): read as one type, ENTITY" in caplog.text
    table = pa.table({"tokens": [["Sele", "hcl", "ok"]], "tags": [["B", "I", "O"]]})
    pq.write_table(table, tmp_path / "bio.parquet")
    assert read_corpus_file(tmp_path / "bio.parquet")[0].tags == ("B-ENTITY", "I-ENTITY", "O")


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("EU\tB-ORG\nrejects\tO\nGerman\tmisc\n", "misc"),  # IOB with a tag that has lost its prefix
        ("EU\tNNP\nrejects\tVBZ\nGerman\tJJ\n", "NNP"),  # a POS column, no O: no tags at all
        ("EU\tO\nrejects\t_\n", "_"),  # CoNLL-U's empty field is no type
        ("EU\tB_ORG\nrejects\tO\nUN\tI_ORG\n", "B_ORG"),  # IOB with _ is not two types B_ORG and I_ORG
    ],
)
def test_what_is_not_io_stays_an_error(tmp_path, text, bad):
    with pytest.raises(CorpusFormatError, match=f"unknown tag scheme prefix .*'{bad}'"):
        read_conll(write(tmp_path, text))


def test_a_few_nerd_parquet_file_of_bare_class_names_reads_as_iob2(tmp_path):
    label = {"names": ["O", "art", "person"], "_type": "ClassLabel"}  # DFKI-SLT/few-nerd's coarse ner_tags
    meta = {"huggingface": json.dumps({"info": {"features": {"ner_tags": {"feature": label, "_type": "List"}}}})}
    table = pa.table({"tokens": [["Anna", "Lee", "read", "Ulysses"], ["Hi"]], "ner_tags": [[2, 2, 0, 1], [0]]})
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "fewnerd.parquet")
    assert [s.tags for s in read_corpus_file(tmp_path / "fewnerd.parquet")] == [
        ("B-person", "I-person", "O", "B-art"),
        ("O",),
    ]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Word\tTag\nAnna\tB-PER\nran\tO\n", ("Anna", "ran")),  # a pandas / spreadsheet export
        ("ID FORM NER\n1 Anna B-PER\n2 ran O\n", ("Anna", "ran")),  # numbered, named columns
        ("token\tner_tag\nAnna\tperson\nran\tO\nfar\tO\n", ("Anna", "ran", "far")),  # IO
    ],
)
def test_a_first_line_naming_the_columns_is_passed_over_and_said(tmp_path, caplog, text, tokens):
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.conll"):
        assert read_conll(write(tmp_path, text))[0].tokens == tokens
    assert "corpus.txt:1: a line naming the columns (" in caplog.text


def test_a_word_line_like_a_header_is_data_after_the_first_line(tmp_path):
    assert read_conll(write(tmp_path, "Anna\tB-PER\nword\tO\n"))[0].tokens == ("Anna", "word")


@pytest.mark.parametrize("compress", ["gzip", "bz2", "lzma"])
def test_a_compressed_corpus_file_reads_as_its_text_whatever_its_name(tmp_path, compress):
    """CoNLL-2002 and WikiANN ship ``train.gz``; it read as 'not UTF-8 text (UTF-16? Latin-1?)'."""
    module = __import__(compress)
    (tmp_path / "train").write_bytes(module.compress(b"EU\tB-ORG\nrejects\tO\n\nHi\tO\n"))
    assert [s.tokens for s in read_corpus_file(tmp_path / "train")] == [("EU", "rejects"), ("Hi",)]


def test_an_archive_or_a_truncated_compressed_file_is_named_as_such(tmp_path):
    import gzip
    import tarfile
    import zipfile

    text = write(tmp_path, "EU\tB-ORG\n")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as archive:
        archive.write(text, "train.conll")
    with tarfile.open(tmp_path / "c.tgz", "w:gz") as archive:
        archive.add(text, "train.conll")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(b"EU\tB-ORG\n" * 1000)[:40])
    with pytest.raises(CorpusFormatError, match=r"c.zip: a zip archive: unpack it \(unzip\)"):
        read_corpus_file(tmp_path / "c.zip")
    with pytest.raises(CorpusFormatError, match=r"c.tgz: a tar archive: unpack it \(tar xf\)"):
        read_corpus_file(tmp_path / "c.tgz")
    with pytest.raises(CorpusFormatError, match=r"cut.gz: compressed, but it does not decompress \(Compressed file"):
        read_corpus_file(tmp_path / "cut.gz")


def test_pan_x_words_are_read_without_their_language_code(tmp_path, caplog):
    """XTREME's PAN-X (WikiANN) files: ``en:Tulsa<TAB>B-LOC``; a file where only some words look so keeps them."""
    path = tmp_path / "train"
    path.write_text("en:Tulsa\tB-LOC\nen:is\tO\nen::\tO\n\nen:Bob\tB-PER\n")
    with caplog.at_level(logging.WARNING, logger="drml_ray.data.conll"):
        sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [("Tulsa", "is", ":"), ("Bob",)]
    assert "train: every word starts with 'en:', the language's code" in caplog.text
    path.write_text("en:Tulsa\tB-LOC\nis\tO\n")
    assert read_conll(path)[0].tokens == ("en:Tulsa", "is")
