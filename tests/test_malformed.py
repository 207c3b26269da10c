"""The catalogue of malformed inputs: each must stop ``drml`` with exit status 2 and one message naming the
file, line and field (or key), with nothing written. Inputs whose right answer is to accept and normalise
(CRLF, a byte-order mark, a 5,000-word sentence) are read like the clean file instead.

``python -m tests.test_malformed`` prints the catalogue as the Markdown table of docs/malformed_inputs.md
(a test checks that the file is current). No Ray is started: every case fails before any run begins.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from drml_ray.cli import app
from drml_ray.data.conll import read_conll

DOC = Path(__file__).resolve().parents[1] / "docs" / "malformed_inputs.md"
GOOD = "Anna\tB-PER\nSchmidt\tI-PER\nvisited\tO\nBerlin\tB-LOC\n\nSiemens\tB-ORG\nhired\tO\nher\tO\n"


@dataclass(frozen=True)
class Case:
    category: str
    what: str
    files: dict[str, str | bytes | Callable[[Path], None]]
    """Files written in the case's folder (``exp.yaml``, ``train.conll``, ...) before the command runs (a
    callable writes a folder of that name)."""
    command: tuple[str, ...]
    """The drml command line; ``{dir}`` is the case's folder, the run directory is ``{dir}/out``."""
    expected: tuple[str, ...]
    """Substrings of the message (``{dir}`` as above)."""


def ft(yaml: str, what: str, *expected: str, category: str = "config values") -> Case:
    """``drml finetune`` of a config whose line 2 on holds ``yaml``."""
    text = "data: {corpus: generated}\n" + yaml
    return Case(category, what, {"exp.yaml": text}, ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"), expected)


def own(train: str | bytes, what: str, *expected: str, name: str = "train.conll", category: str = "CoNLL files",
        ) -> Case:  # fmt: skip
    """A finetune run on the user's own three files, the train file malformed."""
    yaml = f"data: {{train: '{{dir}}/{name}', dev: '{{dir}}/dev.conll', test: '{{dir}}/dev.conll'}}\n"
    files = {"exp.yaml": yaml, name: train, "dev.conll": GOOD}
    return Case(category, what, files, ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"), expected)


def parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def predict(content: str | bytes, what: str, *expected: str) -> Case:
    command = ("predict", "{dir}/model", "--input", "{dir}/in.txt", "--output", "{dir}/out/preds.jsonl")
    return Case("drml predict input", what, {"in.txt": content, "model/config.json": "{}"}, command, expected)


def tiny_model(*, tokenizer: bool = True, labels: int = 5, rows: int | None = None, names: str = "B-T{}",
               ) -> Callable[[Path], None]:  # fmt: skip
    """Writes a saved tiny-BERT NER folder; without its tokenizer files, with a label map of ``labels``
    entries for a 5-output head (each label ``names`` of its id), or embedding ``rows`` tokens (fewer than its
    tokenizer's)."""

    def write(folder: Path) -> None:
        from drml_ray.config import ModelConfig
        from drml_ray.ner.modeling import build_model, load_tokenizer, save_hf_folder

        tok = load_tokenizer("tiny-random-bert")
        tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
        model = build_model(ModelConfig(backbone="tiny-random-bert"), tags, seed=0, vocab_size=rows)
        save_hf_folder(model, tok, folder)
        for name in [] if tokenizer else ["tokenizer.json", "tokenizer_config.json"]:
            (folder / name).unlink()
        config = json.loads((folder / "config.json").read_text())
        config["id2label"] = {str(i): names.format(i) for i in range(labels)}
        config["label2id"] = {label: int(i) for i, label in config["id2label"].items()}
        (folder / "config.json").write_text(json.dumps(config))

    return write


def policy(family: str) -> Callable[[Path], None]:
    """Writes a folder holding a ``weights.pt`` of policy weights trained on ``family``."""

    def write(folder: Path) -> None:
        import torch

        from drml_ray.checkpoints import save_state

        save_state(folder / "weights.pt", {"weights": {"pi.w": torch.ones(2)}, "family": family, "arch": "ff"})

    return write


def foreign_backbone(kind: str) -> Callable[[Path], None]:
    """Writes a model folder drml's NER cannot use: ``vision``, a ViT config beside a text tokenizer;
    ``distil``, DistilBERT's (no token types, which word shapes need); ``decoder``, a GPT-2 config and a byte-level
    tokenizer with no CLS, SEP or PAD token."""

    def write(folder: Path) -> None:
        from tokenizers import ByteLevelBPETokenizer
        from transformers import DistilBertConfig, GPT2Config, GPT2TokenizerFast, ViTConfig

        from drml_ray.ner.modeling import packaged_minilm_dir

        if kind == "decoder":
            bpe = ByteLevelBPETokenizer()
            bpe.train_from_iterator(["Anna met Bob in Rome"] * 20, vocab_size=270, special_tokens=["<|endoftext|>"])
            end = "<|endoftext|>"
            tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=end, eos_token=end, unk_token=end)
            tokenizer.save_pretrained(folder)
            GPT2Config(vocab_size=270, n_embd=8, n_layer=1, n_head=2).save_pretrained(folder)
            return
        small = {"vision": ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8),
                 "distil": DistilBertConfig(dim=8, n_layers=1, n_heads=2, hidden_dim=8)}  # fmt: skip
        small[kind].save_pretrained(folder)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            (folder / name).write_bytes((packaged_minilm_dir() / name).read_bytes())

    return write


def evaluate(model: Callable[[Path], None], what: str, *expected: str) -> Case:
    return Case("model folders", what, {"model": model}, ("evaluate", "{dir}/model", "generated", "-o", "{dir}/out"),
                expected)  # fmt: skip


LIST = pa.list_(pa.string())
# fmt: off
CASES = [
    ft("train: {epochs: 0}\n", "zero epochs", "exp.yaml:2: train.epochs: Input should be greater than or equal to 1"),
    ft("train: {epochs: -2}\n", "negative epochs", "exp.yaml:2: train.epochs", "(got -2)"),
    ft("train: {batch_size: 0}\n", "batch size 0", "exp.yaml:2: train.batch_size"),
    ft("train: {eval_batch_size: -8}\n", "negative evaluation batch", "exp.yaml:2: train.eval_batch_size"),
    ft("scaling: {num_workers: -1}\n", "negative workers", "exp.yaml:2: scaling.num_workers: Input should be greater"),
    ft("scaling: {num_workers: 0, max_failures: 2}\n", "restarts in local mode",
       "exp.yaml:2: scaling: max_failures: 2 restarts a worker group"),
    ft("scaling: {cpus_per_worker: 0}\n", "a worker with no CPU", "exp.yaml:2: scaling.cpus_per_worker"),
    ft("train: {lr: 0.0}\n", "learning rate 0", "exp.yaml:2: train.lr: Input should be greater than 0"),
    ft("train: {lr: -1.0e-4}\n", "negative learning rate", "exp.yaml:2: train.lr"),
    ft("train: {patience: -1}\n", "negative patience", "exp.yaml:2: train.patience"),
    ft("model: {max_length: 4}\n", "max_length below what any sentence needs", "exp.yaml:2: model.max_length"),
    ft("model: {max_length: 32, window_overlap: 20}\n", "windows that never move on",
       "exp.yaml:2: model: window_overlap (20) must be below half of max_length (32)"),
    Case("config values", "training windows cut from documents without document context",
         {"exp.yaml": "name: x\ndata: {corpus: generated, context_train: document}\n"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: data.context_train: document cuts training windows from documents: it needs "
          "data.context: true",)),
    ft("model: {lora: {r: 0}}\n", "LoRA rank 0", "exp.yaml:2: model.lora.r: Input should be greater"),
    ft("model: {strategy: top, top_layers: 0}\n", "no top layers", "exp.yaml:2: model.top_layers"),
    ft("train: {warmup_ratio: 1.5}\n", "warm-up of 1.5", "exp.yaml:2: train.warmup_ratio: Input should be less than 1"),
    ft("train: {warmup_ratio: -0.1}\n", "negative warm-up", "exp.yaml:2: train.warmup_ratio"),
    ft("train: {lr: .inf}\n", "an infinite learning rate", "exp.yaml:2: train.lr: Input should be a finite number"),
    ft("seed: -1\n", "a negative seed", "exp.yaml:2: seed: Input should be greater than or equal to 0"),
    ft("train:\n  epochs: 2\n  epochs: 3\n", "a key given twice", "exp.yaml:4: invalid YAML: duplicate key 'epochs'"),
    ft("train: {epochs: three}\n", "a word for a number", "exp.yaml:2: train.epochs: Input should be a valid integer"),
    ft("train: {epochz: 3}\n", "a misspelt key", "exp.yaml:2: train.epochz: unknown key (did you mean 'epochs'?"),
    ft("train: {lr: '1e-5'}\n", "a number in quotes", "exp.yaml:2: train.lr: Input should be a valid number (got "
       "'1e-5'; a number in quotes is text: write it without them)"),
    ft("train: {learning_rate: 1.0e-4}\n", "a key by its Hugging Face name", "exp.yaml:2: train.learning_rate: unknown "
       "key (Hugging Face's name; drml's is train.lr)"),
    ft("train:\n\tepochs: 3\n", "a tab as indentation", "exp.yaml:3: invalid YAML: found character '\\t' that cannot "
       "start any token; YAML indents with spaces, not tabs"),
    ft("model: {strategy: lora, lora: {target_modules: []}}\n", "LoRA on no modules", "exp.yaml:2: "
       "model.lora.target_modules: List should have at least 1 item after validation, not 0 (got [])"),
    ft("model: {lora: {target_modules: query}}\n", "one name where a list is wanted", "exp.yaml:2: "
       "model.lora.target_modules: Input should be a valid list (got 'query'; write a list: [query])"),
    ft("train.epochs: 3\n", "a dotted key (as --set takes it) in a file", "exp.yaml:2: train.epochs: unknown key: a "
       "dotted key, as --set takes it; in a file, write it nested: train: {epochs: ...}"),
    Case("config values", "a misspelt corpus", {"exp.yaml": "name: x\ndata: {corpus: CoNLL2003}\n"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: data.corpus: unknown corpus 'CoNLL2003' (did you mean conll2003?)",)),
    Case("config values", "a corpus file given as data.corpus (a corpus name or a task folder)",
         {"exp.yaml": "name: x\ndata: {corpus: '{dir}/train.conll'}\n", "train.conll": GOOD},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: data.corpus: task '{dir}/train.conll': no such folder; a file is data.train, with data.dev",)),
    Case("config values", "a corpus file written relative to the config's folder (read from the working folder)",
         {"exp.yaml": "name: x\ndata: {train: train.conll, dev: '{dir}/train.conll', test: '{dir}/train.conll'}\n",
          "train.conll": GOOD}, ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: data.train: ", "no such file or folder; {dir}/train.conll is there, beside the config")),
    Case("config values", "columns picked in a corpus whose layout is known",
         {"exp.yaml": "name: x\ndata: {corpus: conll2003, columns: [2, 3]}\n"}, ("finetune", "{dir}/exp.yaml"),
         ("exp.yaml:2: data.columns: picks columns of your own files",)),
    Case("config values", "a word column counted from 0",
         {"exp.yaml": "name: x\ndata: {corpus: '{dir}', columns: [0, 1]}\n"}, ("finetune", "{dir}/exp.yaml"),
         ("exp.yaml:2: data.columns: give the word's column and the tag's: counted from 1",)),
    ft("name: ../../etc\n", "a run name that escapes the output folder", "exp.yaml:2: name: String should match"),
    ft("name: my run\n", "a run name with a space", "exp.yaml:2: name: String should match", "a run's name is its "
       "folder's: ASCII letters, digits, '.', '_', '+' and '-', a letter or digit first, e.g. 'my_run'"),
    ft("train: [1, 2\n", "broken YAML", "exp.yaml:3: invalid YAML: expected ',' or ']'"),
    Case("config values", "a YAML list, not a mapping", {"exp.yaml": "- train\n- epochs\n"},
         ("finetune", "{dir}/exp.yaml"), ("exp.yaml:1: the file must hold a mapping of config keys, not list",)),
    Case("config values", "an empty YAML file", {"exp.yaml": ""}, ("finetune", "{dir}/exp.yaml"),
         ("exp.yaml:1: empty file",)),
    Case("config values", "a YAML file that is not UTF-8", {"exp.yaml": "name: caf\xe9\n".encode("latin-1")},
         ("finetune", "{dir}/exp.yaml"), ("exp.yaml: not UTF-8 text",)),
    Case("paths", "a directory given as the config", {"cfgdir/x": ""}, ("finetune", "{dir}/cfgdir"),
         ("cfgdir: cannot read config (Is a directory",)),
    Case("paths", "a run directory given as the config", {"run/config.yaml": "name: x\n"}, ("finetune", "{dir}/run"),
         ("run: cannot read config (Is a directory; the config of the run there is {dir}/run/config.yaml",)),
    Case("paths", "a model's config.json given as the config",
         {"model/config.json": '{"architectures": ["BertForTokenClassification"], "model_type": "bert"}'},
         ("finetune", "{dir}/model/config.json"),
         ("config.json: a Hugging Face model's config (model_type 'bert'), not an experiment file",)),
    Case("paths", "an output directory that is a file", {"exp.yaml": "data: {corpus: generated}\n", "out": "x"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"), ("out: the output directory is a file",)),
    Case("paths", "a config that does not exist", {}, ("finetune", "{dir}/nope.yaml"),
         ("nope.yaml: cannot read config (No such file or directory",)),
    own("Anna\nSchmidt\n", "one column", "train.conll:1: expected a token and a tag column"),
    own("Anna\tO\nvisited\tO\n\nher\tO\n", "a train file without one entity",
        "train.conll: no entities: every tag of the train split is O"),
    own('{"tokens": ["Anna"], "ner_tags": [1]}\n', "JSON lines of class ids (Hugging Face's Dataset.to_json)",
        "train.conll: column ner_tags holds class ids and the file does not name them", "Dataset.to_parquet"),
    own('[{"tokens": ["Anna"], "ner_tags": ["B-PER"]}]\n', "one JSON array of sentences",
        "train.json: one JSON array: drml reads JSON lines", name="train.json"),
    own('{"text": "Anna left", "label": [[0, 4, "PER"]]}\n', "JSON lines of character spans (doccano's export)",
        "train.jsonl:1: not JSON lines of a corpus", "line 1 is an object of text, label, not a sentence: drml reads "
        "a tokens list and a tags (or ner_tags) list", name="train.jsonl"),
    own("Word,Tag\nAnna,B-PER\n", "comma-separated values (CSV)",
        "train.conll:1: comma-separated values (CSV), not CoNLL columns"),
    own("T1\tPerson 0 4\tAnna\nT2\tLocation 12 18\tBerlin\n", "brat standoff annotations (.ann)",
        "train.ann:1: brat standoff annotations (.ann), not CoNLL columns", name="train.ann"),
    own("Anna\tB-PER\x00\n", "a NUL byte", "train.conll:1: binary content (a NUL byte)"),
    own("#begin document (bc/cctv/00/cctv_0001); part 000\nbc/cctv 0 0 Beijing NNP (NP*) - - - S1 (GPE) (12)\n"
        "bc/cctv 0 1 John NNP (NP* - - - S1 (PERSON* -\nbc/cctv 0 2 Smith NNP *) - - - S1 *) -\n",
        "CoNLL-2012 bracketed spans (OntoNotes)", "train.conll: column 11 holds bracketed spans ((PERSON* ... *)"),
    Case("CoNLL files", "CoNLL-2012 bracketed spans, their column picked (--columns 4,11)",
         {"on.conll": "bc/cctv 0 0 Beijing NNP (NP*) - - - S1 (GPE) (12)\nbc/cctv 0 1 Li NNP * - - - S1 (PERSON) -\n"},
         ("data", "inspect", "{dir}/on.conll", "--columns", "4,11"),
         ("on.conll: column 11 holds bracketed spans ((PERSON* ... *)",)),
    own(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content (a PNG)",
        "train.conll:1: not UTF-8 text but binary content"),
    own(GOOD.encode("utf-16"), "UTF-16",
        "train.conll:1: not UTF-8 text but UTF-16 (it starts with its byte-order mark)"),
    own("Caf\xe9\tB-ORG\n".encode("latin-1"), "Latin-1", "train.conll:1: not UTF-8 text: byte 0xe9 is 'é' in Latin-1; "
        "if the file is Latin-1, convert it: iconv -f LATIN1 -t UTF-8"),
    own(b"PK\x03\x04\x14\x00\x00\x00", "a zip archive", "train.zip: a zip archive: unpack it", name="train.zip"),
    own(gzip.compress(GOOD.encode() * 50)[:30], "a truncated gzip file", "train.conll.gz: compressed, but it does not "
        "decompress (Compressed file ended before the end-of-stream marker was reached)", name="train.conll.gz"),
    own("Anna\tB-\n", "B- with no type", "train.conll:1: unknown tag scheme prefix", "'B-'"),
    own("Anna\tB-\nvisited\tO\n", "a prefix with no type after it (B-), read as a bare type before",
        "train.conll:1: unknown tag scheme prefix", "a prefix with no entity type after it (write B-TYPE): 'B-'"),
    own("Anna\tX-PER\n", "an unknown prefix", "train.conll:1: unknown tag scheme prefix", "BIOES, BILOU and BMES"),
    own("Anna\tb-per\n", "a lowercase tag", "train.conll:1: unknown tag scheme prefix", "'b-per'"),
    own("Anna\tB_PER\nSchmidt\tI_PER\n", "prefix and type joined by '_'", "train.conll:1: unknown tag scheme prefix",
        "write it B-PER (a prefix and its type are joined by '-'): 'B_PER'"),
    own("Anna\tPER-B\nSchmidt\tPER-I\n", "the prefix after the type", "train.conll:1: unknown tag scheme prefix",
        "write it B-PER (a prefix goes before its type): 'PER-B'"),
    own("Anna\tb-per\nsaid\to\n", "prefixes in small letters", "train.conll:1: unknown tag scheme prefix",
        "write it B-per (a prefix is a capital letter): 'b-per'"),
    own("Anna\tB-PER\nSchmidt\tX\tI-PER\n", "another column count", "train.conll:2: expected 2 columns"),
    own("-DOCSTART- -X- O O\n\n-DOCSTART- -X- O O\n", "only -DOCSTART- lines", "train.conll: no sentences found"),
    own("", "an empty file", "train.conll: no sentences found"),
    own(parquet(pa.table({"words": [["a"]], "labels": [["O"]]})), "wrong column names",
        "train.parquet: not a drml corpus Parquet file", name="train.parquet", category="Parquet files"),
    own(parquet(pa.table({"tokens": [[1, 2]], "tags": [[0, 0]]})), "wrong column types",
        "train.parquet: columns tokens, tags must be lists of strings", name="train.parquet", category="Parquet files"),
    own(parquet(pa.table({"tokens": pa.array([["a", None]], LIST), "tags": pa.array([["O", "O"]], LIST)})),
        "a null token", "train.parquet:1: a null token or tag", name="train.parquet", category="Parquet files"),
    own(parquet(pa.table({"tokens": pa.array([["a", "b"]], LIST), "tags": pa.array([["O"]], LIST)})),
        "token and tag lists of different lengths", "train.parquet:1: row has 2 tokens but 1 tags",
        name="train.parquet", category="Parquet files"),
    own(parquet(pa.table({"tokens": pa.ListArray.from_arrays(pa.array([0, 1, 2], pa.int32()), pa.array(
        [b"Anna", b"Pa\xffris"]).view(pa.string())), "tags": pa.array([["B-PER"], ["B-LOC"]], LIST)})),
        "a token of bytes that are not UTF-8", "train.parquet:2: tokens: not UTF-8 text (invalid start byte at byte 2)",
        name="train.parquet", category="Parquet files"),
    own(parquet(pa.table({"tokens": pa.array([], LIST), "tags": pa.array([], LIST)})), "zero rows",
        "train.parquet: no sentences found", name="train.parquet", category="Parquet files"),
    predict("", "an empty file", "in.txt: nothing to tag"),
    Case("drml predict input", "a CSV file without a text column", {"in.csv": "id,body\n1,Anna\n",
         "model/config.json": "{}"}, ("predict", "{dir}/model", "{dir}/in.csv"),
         ("in.csv: drml predict tags a CSV file's text column; its header names id, body",)),
    predict("\n  \n\n", "only blank lines", "in.txt: nothing to tag"),
    predict(b"\x00\x01\x02binary", "binary content", "in.txt: binary content"),
    predict("Anna visited Berlin.\n".encode("utf-16"), "UTF-16", "in.txt: not UTF-8 text but UTF-16"),
    predict("word " * 220_000, "a line of 1 MB", "in.txt:1: a line of 1,100,000 characters"),
    Case("drml predict input", "--text from a terminal that is not UTF-8 (Latin-1's é)", {"model/config.json": "{}"},
         ("predict", "{dir}/model", "--text", "Caf\udce9 Paris"),
         ("--text: a byte that is not UTF-8 (0xe9) at character 4",)),
    Case("paths", "drml data convert to a .json name (CoNLL columns under it would mislead)", {"in.conll": GOOD},
         ("data", "convert", "{dir}/in.conll", "{dir}/out.json"),
         ("{dir}/out.json: drml writes corpora as Parquet (.parquet) or CoNLL columns",)),
    Case("paths", "drml predict --output to a .parquet.gz name", {"model/config.json": "{}"},
         ("predict", "{dir}/model", "--text", "Anna", "--output", "{dir}/preds.parquet.gz"),
         ("preds.parquet.gz: Parquet compresses its own columns; name it {dir}/preds.parquet",)),
    Case("paths", "drml data convert to a .parquet.gz name (gzip-compressed Parquet)", {"in.conll": GOOD},
         ("data", "convert", "{dir}/in.conll", "{dir}/out.parquet.gz"),
         ("not compressed Parquet (Parquet compresses its own columns: name it .parquet)",)),
    Case("paths", "--split with one corpus file to drml evaluate", {"model/config.json": "{}", "in.conll": GOOD},
         ("evaluate", "{dir}/model", "{dir}/in.conll", "--split", "dev", "-o", "{dir}/out"),
         ("in.conll is one file, scored whole",)),
    Case("drml predict input", "--format conll with --text", {"model/config.json": "{}"},
         ("predict", "{dir}/model", "--text", "Anna met Bob .", "--format", "conll"),
         ("--format conll reads a file to tag",)),
    Case("model folders", "a truncated model.safetensors", {"model/config.json": '{"model_type": "bert"}',
         "model/model.safetensors": b"\x00\x01"}, ("evaluate", "{dir}/model", "generated", "-o", "{dir}/out"),
         ("model: the model folder does not load",)),
    Case("model folders", "a built-in backbone named as the trained model", {},
         ("predict", "minilm", "--text", "Anna met Bob ."), ("minilm: no such model folder or run directory (a "
                                                            "backbone to fine-tune: drml finetune trains",)),
    Case("model folders", "not a model folder", {"model/readme.txt": "hi"},
         ("evaluate", "{dir}/model", "generated", "-o", "{dir}/out"), ("model: neither a model folder",)),
    Case("paths", "a model folder as drml evaluate's data (the two swapped)", {"m/config.json": "{}"},
         ("evaluate", "{dir}/m", "{dir}/m", "-o", "{dir}/out"), ("m: a model folder, not data: drml evaluate",)),
    Case("paths", "a fine-tuning run as drml evaluate's output folder (its test report would be replaced)",
         {"run/best": tiny_model(), "run/.drml-run": "finetune", "run/config.yaml": "name: x\n",
          "run/report_test.txt": "mine"}, ("evaluate", "{dir}/run", "generated", "-o", "{dir}/run"),
         ("{dir}/run holds a run of drml finetune, not of drml evaluate; pass --output-dir another folder",)),
    Case("paths", "--overwrite of the run whose model drml evaluate scores",
         {"run/best": tiny_model(), "run/.drml-run": "finetune", "run/config.yaml": "name: x\n"},
         ("evaluate", "{dir}/run", "generated", "-o", "{dir}/run", "--overwrite"),
         ("{dir}/run: --overwrite would delete {dir}/run/best, which this command reads: nothing was deleted",)),
    Case("paths", "a meta-learning experiment as drml evaluate's data", {"exp.yaml": "name: x\nmeta: {}\n",
                                                                          "m": tiny_model()},
         ("evaluate", "{dir}/m", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml: an experiment of drml meta-train, drml meta-eval; drml evaluate reads the data section of a",)),
    evaluate(tiny_model(tokenizer=False), "a missing tokenizer", "model: no tokenizer vocabulary"),
    Case("model folders", "a run directory as the backbone", {"run/best/config.json": "{}", "exp.yaml": "model: "
         "{backbone: '{dir}/run'}\n"}, ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: model.backbone: {dir}/run: a run directory; its model is {dir}/run/best",)),
    Case("model folders", "a folder holding no model as the backbone", {"m/notes.txt": "x", "exp.yaml": "model: "
         "{backbone: '{dir}/m'}\n"}, ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: model.backbone: {dir}/m: neither a model folder (config.json) nor a run directory",)),
    Case("model folders", "a PEFT adapter folder (no config.json) to drml predict",
         {"lora/adapter_config.json": '{"base_model_name_or_path": "bert-base-cased", "peft_type": "LORA"}',
          "lora/adapter_model.safetensors": b""}, ("predict", "{dir}/lora", "--text", "Anna met Bob ."),
         ("lora: PEFT adapter weights over 'bert-base-cased', not a whole model; merge them into it and save that",)),
    Case("model folders", "a meta-learning run directory to drml predict (its models are inside it)",
         {"run/reptile": tiny_model(), "run/meta_train.json": "{}"},
         ("predict", "{dir}/run", "--text", "Anna met Bob ."),
         ("run: neither a model folder (config.json) nor a run directory with best/config.json; 1 model folder "
          "inside: {dir}/run/reptile",)),
    Case("model folders", "a vision model's folder as the backbone", {"vit": foreign_backbone("vision"), "exp.yaml":
         "model: {backbone: '{dir}/vit'}\n"}, ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: model.backbone '{dir}/vit': a vit model (ViTConfig), which transformers has no token-",)),
    Case("model folders", "a decoder's folder (GPT-2: no CLS, SEP or PAD token) as the backbone",
         {"gpt": foreign_backbone("decoder"), "exp.yaml": "model: {backbone: '{dir}/gpt'}\n"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: model.backbone '{dir}/gpt': GPT2Tokenizer has no CLS/SEP/PAD token",)),
    Case("model folders", "word shapes on a backbone with no token types (DistilBERT)", {"distil":
         foreign_backbone("distil"), "exp.yaml": "model: {backbone: '{dir}/distil', casing: shape}\n"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: model.casing: shape needs token-type embeddings, and the backbone's DistilBertConfig has",)),
    Case("model folders", "a backbone folder that is not there", {"exp.yaml": "model: {backbone: '{dir}/nope/best'}\n"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: model.backbone: {dir}/nope/best: no such folder, nor a Hub id (ORG/NAME)",)),
    evaluate(tiny_model(labels=7), "a label map that disagrees with the head",
             "model: its weights do not fit its config.json"),
    evaluate(tiny_model(rows=100), "a tokenizer of another model (more tokens than the model embeds)",
             "model: its tokenizer has 30,522 tokens but the model embeds 100"),
    Case("model folders", "a tokenizer of another model, to drml predict (read without transformers)",
         {"model": tiny_model(rows=100)}, ("predict", "{dir}/model", "--text", "Anna met Bob ."),
         ("model: its tokenizer has 30,522 tokens but the model embeds 100",)),
    Case("model folders", "a head of labels transformers named (LABEL_0, ...: trained without names)",
         {"model": tiny_model(names="LABEL_{}")}, ("predict", "{dir}/model", "--text", "Anna met Bob ."),
         ("model: its head's labels are LABEL_0, LABEL_1, LABEL_2, ... (config.json's id2label), the names",)),
    Case("model folders", "a label map that disagrees with the head, to drml predict (read without transformers)",
         {"model": tiny_model(labels=7)}, ("predict", "{dir}/model", "--text", "Anna met Bob ."),
         ("model: its weights do not fit its config.json",)),
    ft("model: {backbone: tiny-random-bert, strategy: top, top_layers: 5}\n", "top_layers above the model's depth",
       "exp.yaml:2: model.top_layers=5 but the encoder has 2 layers", category="model folders"),
    ft("model: {backbone: tiny-random-bert, max_length: 1024}\n", "a window longer than the backbone's positions",
       "exp.yaml:2: model.max_length 1024: the backbone has 512 positions", category="model folders"),
    ft("model: {backbone: tiny-random-bert, strategy: lora, lora: {target_modules: [qkv]}}\n",
       "LoRA on modules the backbone lacks", "exp.yaml:2: model.lora.target_modules ['qkv']: "
       "BertForTokenClassification has no linear layer 'qkv'; its linear layers are called dense, key, query, value",
       category="model folders"),
    Case("config values", "an inverse-RL file given to drml finetune", {"exp.yaml": "env: {family: nav2d}\nirl: {}\n"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml: an experiment of drml rl expert, drml rl irl, drml rl meta-irl (it has irl:), not of this",)),
    Case("config values", "a meta-learning task that does not exist", {"exp.yaml": "meta: {train_tasks: [conll2003, "
         "nosuch]}\n"}, ("meta-train", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: meta.train_tasks.1: unknown task 'nosuch'",)),
    Case("config values", "a meta-learning task too small for an episode",
         {"exp.yaml": "model: {backbone: tiny-random-bert}\nmeta: {train_tasks: ['{dir}/small'], shots: 8, query: 8, "
          "heldout_tasks: ['{dir}/held']}\n", **{f"{task}/{split}.conll": GOOD for task in ("small", "held")
                                                 for split in ("train", "dev", "test")}},  # (no corpus to fetch)
         ("meta-train", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("an episode needs meta.shots + meta.query = 8 + 8 sentences, and its train split has",)),
    Case("tune search spaces", "a meta-learning search over a task too small for an episode",
         {"exp.yaml": "model: {backbone: tiny-random-bert}\nmeta: {train_tasks: ['{dir}/small'], shots: 8, query: 8, "
          "heldout_tasks: ['{dir}/held'], algorithms: [reptile]}\n"
          "tune: {space: {meta.meta_lr: {uniform: [0.5, 1.0]}}}\n",
          **{f"{task}/{split}.conll": GOOD for task in ("small", "held") for split in ("train", "dev", "test")}},
         ("tune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("an episode needs meta.shots + meta.query = 8 + 8 sentences, and its train split has",)),
    Case("tune search spaces", "a meta-learning search whose largest shots would not fill an episode",
         {"exp.yaml": "model: {backbone: tiny-random-bert}\nmeta: {train_tasks: ['{dir}/small'], shots: 1, query: 1, "
          "heldout_tasks: ['{dir}/held'], algorithms: [reptile]}\ntune: {space: {meta.shots: {choice: [1, 8]}}}\n",
          **{f"{task}/{split}.conll": GOOD for task in ("small", "held") for split in ("train", "dev", "test")}},
         ("tune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("tune.space.meta.shots 8: task", "an episode needs meta.shots + meta.query = 8 + 1 sentences")),
    Case("config values", "a method given twice (each cell would run twice)",
         {"exp.yaml": "env: {family: nav2d}\nirl: {methods: [gail, airl, gail]}\n"},
         ("rl", "irl", "{dir}/exp.yaml", "-o", "{dir}/out"), ("exp.yaml:2: irl.methods: gail given twice",)),
    Case("config values", "a task folder without a dev file",
         {"exp.yaml": "meta: {heldout_tasks: ['{dir}/clinical']}\n", "clinical/train.conll": GOOD,
          "clinical/test.conll": GOOD}, ("meta-train", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: meta.heldout_tasks.0: task '{dir}/clinical': no dev file",)),
    Case("config values", "a task folder with two train files",
         {"exp.yaml": "continual: {experiences: ['{dir}/t']}\n", "t/train.conll": GOOD, "t/train.parquet": b"",
          "t/dev.conll": GOOD, "t/test.conll": GOOD}, ("continual", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: continual.experiences.0: task '{dir}/t': 2 train files (train.conll, train.parquet)",)),
    Case("config values", "a task folder that is not there",
         {"exp.yaml": "continual: {experiences: [conll2003, ./x/y]}\n"}, ("continual", "{dir}/exp.yaml", "-o",
          "{dir}/out"), ("exp.yaml:1: continual.experiences.1: task './x/y': no such folder",)),
    Case("config values", "meta-learning that would not move every weight", {"exp.yaml": "meta: {}\nmodel: "
         "{strategy: lora}\n"}, ("meta-train", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: model: strategy must be full for meta-learning",)),
    Case("config values", "a transfer task with a pole of length 0", {"exp.yaml": "env: {family: cartpole}\n"
         "transfer: {source: {length: 0.0}, target: {length: 1.0}}\n"}, ("rl", "transfer", "{dir}/exp.yaml", "-o",
         "{dir}/out"), ("exp.yaml:2: transfer.source: TaskCartPole: task parameters length=0.0 must be finite and "
                        "above 0",)),
    Case("config values", "a transfer mapping of more observations than the target has", {"exp.yaml": "env: "
         "{family: nav2d}\ntransfer:\n  source: {}\n  target: {}\n  target_family: pendulum\n  mapping:\n"
         "    observation: [0, 1, null, null]\n    action: [0, 1]\n"}, ("rl", "transfer", "{dir}/exp.yaml", "-o",
         "{dir}/out"), ("exp.yaml:7: transfer.mapping.observation has 4 entries; the target has 3 observation "
                        "dimensions",)),
    Case("config values", "an inverse-RL transfer task with a misspelt parameter", {"exp.yaml": "irl:\n  families:\n"
         "    nav2d: {transfer_task: {goal_x: 0.3, action_scal_y: -1}}\n"}, ("rl", "irl", "{dir}/exp.yaml", "-o",
         "{dir}/out"), ("exp.yaml:2: irl.families: nav2d.transfer_task: Nav2D: unknown task parameters "
         "['action_scal_y']",)),
    Case("config values", "an inverse-RL transfer length without a transfer task", {"exp.yaml": "irl:\n  families:\n"
         "    pendulum: {iters: 3, transfer_iters: 5}\n"}, ("rl", "irl", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:3: irl.families.pendulum: transfer_iters is set without a transfer_task",)),
    Case("model folders", "policy weights of another task family (--init)", {"exp.yaml": "env: {family: nav2d}\n"
         "eval: {methods: [meta]}\n", "w": policy("cartpole")}, ("rl", "meta-eval", "{dir}/exp.yaml", "-o",
         "{dir}/out", "--init", "{dir}/w"), ("w/weights.pt: a policy for cartpole tasks; this experiment's env.family "
         "is nav2d",)),
    Case("paths", "an --init folder without policy weights",
         {"exp.yaml": "env: {family: nav2d}\neval: {methods: [meta]}\n"},
         ("rl", "meta-eval", "{dir}/exp.yaml", "-o", "{dir}/out", "--init", "{dir}/nope"),
         ("--init {dir}/nope: no weights.pt there",)),
    Case("paths", "--init of meta-eval naming a method that is not one", {"exp.yaml": "meta: {}\n"},
         ("meta-eval", "{dir}/exp.yaml", "-o", "{dir}/out", "--init", "bogus=x"),
         ("--init bogus=x: 'bogus' is not a meta-learning method (reptile, fomaml)",)),
    Case("paths", "--init of meta-eval naming a method without its folder", {"exp.yaml": "meta: {}\n"},
         ("meta-eval", "{dir}/exp.yaml", "-o", "{dir}/out", "--init", "reptile"),
         ("--init reptile: a method needs its folder: --init reptile=FOLDER",)),
    Case("config values", "a continual strategy that does not exist", {"exp.yaml": "continual: {strategies: [naive, "
         "gem]}\n"}, ("continual", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:1: continual.strategies.1: Input should be 'naive', 'replay', 'ewc', 'lwf', 'joint', 'ewc+replay' "
          "or 'lwf+replay' (got 'gem')",)),
    Case("config values", "a class-incremental type order missing a type", {"exp.yaml": "model: {backbone: "
         "tiny-random-bert}\ncontinual: {protocol: class, corpus: 'generated:PER,LOC', type_order: [LOC]}\n"},
         ("continual", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: continual.type_order must list every type of generated:PER,LOC once: LOC, PER (got LOC)",)),
    Case("model folders", "a meta-learned start that is not there", {"exp.yaml": "model: {backbone: "
         "tiny-random-bert}\ncontinual: {experiences: ['generated:PER'], meta_init: '{dir}/reptile'}\n"},
         ("continual", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: continual.meta_init: {dir}/reptile: no such file or folder",)),
    Case("model folders", "a meta-learning run as the meta-learned start (its models are inside it)",
         {"exp.yaml": "model: {backbone: tiny-random-bert}\ncontinual: {experiences: ['generated:PER'], meta_init: "
          "'{dir}/meta'}\n", "meta/reptile": tiny_model(), "meta/meta_train.json": "{}"},
         ("continual", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: continual.meta_init: {dir}/meta: neither a model folder (config.json) nor a run directory "
          "with best/config.json; 1 model folder inside: {dir}/meta/reptile",)),
    Case("paths", "continual extend of a folder with no finished run", {"new.conll": GOOD},
         ("continual", "extend", "{dir}", "{dir}/new.conll"), ("no finished continual run there (continual.json)",)),
    ft("model: {backbone: ./nowhere}\n", "a backbone path that names nothing here",
       "exp.yaml:2: model.backbone: ./nowhere: no such folder, nor a Hub id (ORG/NAME)", category="model folders"),
    ft("tune:\n  space:\n    train.lr: {loguniform: [1.0e-3, 1.0e-5]}\n", "a search range upside down",
       "exp.yaml:4: tune.space.train.lr: loguniform takes [low, high] with low < high",
       category="tune search spaces"),
    ft("tune:\n  space:\n    train.lr: {loguniform: [1.0e-5, 1.0e-3], choice: [1.0e-4]}\n",
       "two kinds in one parameter", "exp.yaml:4: tune.space.train.lr: write exactly one of",
       category="tune search spaces"),
    ft("tune:\n  space:\n    train.epochs: {choice: [1, 0]}\n", "a value no trial could run",
       "exp.yaml:4: tune.space.train.epochs: train.epochs: Input should be greater than or equal to 1",
       category="tune search spaces"),
    ft("tune:\n  space:\n    train.lr: {grid: [1.0e-4, 3.0e-4, 1.0e-4]}\n", "a grid value given twice",
       "exp.yaml:4: tune.space.train.lr: 0.0001 given twice", category="tune search spaces"),
    ft("train: {lr: 1.0e-3}\ntune:\n  space:\n    train: {choice: [{epochs: 1}, {epochs: 2}]}\n",
       "a whole section searched (its other keys would go back to their defaults)",
       "exp.yaml:5: tune.space.train: a section: each value would replace all of it", category="tune search spaces"),
    Case("tune search spaces", "a search over corpus files, one of them not there",
         {"exp.yaml": "data: {train: '{dir}/train.conll', dev: '{dir}/train.conll', test: '{dir}/train.conll'}\n"
          "tune:\n  space:\n    data.train: {grid: ['{dir}/train.conll', '{dir}/other.conll']}\n", "train.conll": GOOD},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:4: tune.space.data.train: {dir}/other.conll: no such file or folder",)),
    Case("paths", "a request log folder below a file", {"model/config.json": "{}", "notes.txt": "mine"},
         ("serve", "{dir}/model", "--log-requests", "{dir}/notes.txt", "--build", "{dir}/serve.yaml"),
         ("--log-requests {dir}/notes.txt: {dir}/notes.txt is a file; name a folder for the request logs",)),
    ft("tune:\n  space:\n    tune.num_samples: {choice: [1, 2]}\n", "the search's own settings searched",
       "exp.yaml:4: tune.space.tune.num_samples: the search's own settings are not searched",
       category="tune search spaces"),
    Case("tune search spaces", "trials in Ray Train's local mode",
         {"exp.yaml": "data: {corpus: generated}\nscaling: {num_workers: 0}\ntune:\n  space:\n"
                      "    train.lr: {choice: [1.0e-4]}\n"},
         ("tune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("exp.yaml:2: scaling.num_workers: 0 (Ray Train's local mode) is for a run of its own",)),
    Case("config values", "a --set value that is not YAML", {"exp.yaml": "data: {corpus: generated}\n"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out", "--set", "train.epochs=[1"),
         ("--set train.epochs: '[1' is not a YAML value",)),
    Case("config values", "a --set value from a terminal that is not UTF-8 (Latin-1 bytes)",
         {"exp.yaml": "data: {corpus: generated}\n"},
         ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out", "--set", "data.train=caf\udce9.conll"),
         ("--set data.train: a byte that is not UTF-8 (0xe9) at character 4",)),
    Case("paths", "a run directory whose config.yaml holds no config", {"exp.yaml": "data: {corpus: generated}\n",
         "out/config.yaml": "train: [1\n", "out/.drml-run": ""}, ("finetune", "{dir}/exp.yaml", "-o", "{dir}/out"),
         ("{dir}/out/config.yaml is not the config of a run",)),
    Case("paths", "a run's results.json that no longer parses", {"out/config.yaml": "data: {corpus: generated}\n",
         "out/results.json": '{"test": '}, ("report", "{dir}/out"),
         ("{dir}/out/results.json: damaged, not the JSON drml wrote",)),
    Case("paths", "a run's results.json with a score edited into text",
         {"out/config.yaml": "data: {corpus: generated}\n",
          "out/results.json": '{"dev": {"entity": {"micro": {"f1": "high", "precision": 1, "recall": 1}, '
                              '"per_type": {}}}}'}, ("report", "{dir}/out"),
         ("{dir}/out/results.json: damaged, not the JSON drml wrote (at dev.entity.micro.f1: Input should be a valid "
          "number)",)),
    Case("Parquet files", "a token CoNLL columns cannot hold, converted to CoNLL",
         {"in.parquet": parquet(pa.table({"tokens": [["New York"]], "tags": [["B-LOC"]]}))},
         ("data", "convert", "{dir}/in.parquet", "{dir}/out.conll"),
         ("out.conll: cannot write sentence 1, word 1 as CoNLL columns",)),
    Case("demonstrations", "an episode with a step missing", {"demos.parquet": parquet(pa.table(
         {"episode": [0, 0], "t": [0, 2], "obs": [[0.0], [1.0]], "actions": [[1], [0]], "rewards": [1.0, 1.0],
          "new_obs": [[1.0], [2.0]], "terminated": [False, True], "truncated": [False, False]}))},
         ("data", "inspect", "{dir}/demos.parquet"), ("demos.parquet: episode 0 has no step 1",)),
    Case("demonstrations", "a NaN observation", {"demos.parquet": parquet(pa.table(
         {"episode": [0], "t": [0], "obs": [[float("nan")]], "actions": [[1]], "rewards": [1.0],
          "new_obs": [[1.0]], "terminated": [True], "truncated": [False]}))},
         ("data", "inspect", "{dir}/demos.parquet"), ("demos.parquet: row 1: obs is not a finite number",)),
]
# fmt: on


def write_case(case: Case, folder: Path) -> None:
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{dir}", str(folder)), encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}: {c.what}" for c in CASES])
def test_a_malformed_input_exits_2_with_one_message_and_writes_nothing(case, tmp_path):
    write_case(case, tmp_path)
    before = files_and_times(tmp_path)
    result = CliRunner().invoke(app, [arg.replace("{dir}", str(tmp_path)) for arg in case.command])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("drml: error:") == 1
    for expected in case.expected:
        assert expected.replace("{dir}", str(tmp_path)) in result.output, result.output
    assert files_and_times(tmp_path) == before  # nothing written, nothing removed


def files_and_times(folder: Path) -> dict[Path, int | None]:
    """Every path under ``folder``, with its file's time of change (a folder's own time changes when an entry comes
    and goes: the lock a command holds on its run directory)."""
    return {p: p.stat().st_mtime_ns if p.is_file() else None for p in folder.rglob("*")}


def test_an_output_directory_that_takes_no_files_exits_2(tmp_path):
    """Made immutable (``chattr +i``): not even root can write into it, as a normal user cannot into a folder
    without write permission."""
    out = tmp_path / "out"
    out.mkdir()
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not allowed here (it needs CAP_LINUX_IMMUTABLE and ext4 or similar)")
    try:
        result = CliRunner().invoke(app, ["finetune", "ner/smoke", "-o", str(out)])
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{out}: cannot write into the run directory (Operation not permitted)" in result.output
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("variant", ["crlf", "bom", "crlf+bom"])
def test_crlf_and_a_byte_order_mark_are_read_as_the_clean_file(variant, tmp_path):
    text = GOOD.replace("\n", "\r\n") if "crlf" in variant else GOOD
    data = ("\ufeff" + text).encode() if "bom" in variant else text.encode()
    (tmp_path / "x.conll").write_bytes(data)
    (tmp_path / "clean.conll").write_text(GOOD)
    assert read_conll(tmp_path / "x.conll") == read_conll(tmp_path / "clean.conll")


def test_a_5000_word_sentence_and_a_10000_character_token_are_read(tmp_path):
    (tmp_path / "long.conll").write_text("Berlin\tB-LOC\n" * 5_000 + "\n" + "a" * 10_000 + "\tO\n")
    long, huge = read_conll(tmp_path / "long.conll")
    assert len(long.tokens) == 5_000 and len(huge.tokens[0]) == 10_000


def catalogue() -> str:
    rows = [f"| {c.category} | {c.what} | `drml {' '.join(c.command[:1])}` | {c.expected[0].replace('|', '/')} |"
            for c in CASES]  # fmt: skip
    return ("# Malformed inputs\n\nGenerated by `python -m tests.test_malformed` from the cases of "
            "`tests/test_malformed.py`: each stops `drml` with exit status 2, one message (part of it below; "
            f"`{{dir}}` is the case's folder) and nothing written. {len(CASES)} inputs.\n\n"
            "| category | input | command | message |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")  # fmt: skip


def test_the_catalogue_in_docs_is_current():
    assert DOC.read_text(encoding="utf-8") == catalogue(), "regenerate it: python -m tests.test_malformed"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(catalogue(), encoding="utf-8")
    sys.stdout.write(f"{DOC}: {len(CASES)} inputs\n")
