"""Turn a ``data:`` config section into train/dev/test sentences and a label list."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from drml_ray.config import DataConfig, is_task_folder
from drml_ray.data.conll import (
    CorpusFormatError,
    Scheme,
    Sentence,
    as_iob2,
    discover_labels,
    first_line_with,
)
from drml_ray.data.fetch import FetchError, fetch
from drml_ray.data.formats import table_files, unsharded
from drml_ray.data.generated import generated_splits
from drml_ray.data.inspect import LONG_SENTENCE, inspect_sentences, lookalike_types
from drml_ray.data.reader import Columns, read_corpus_file
from drml_ray.data.registry import CORPORA, SPLITS, get_spec, unknown_corpus
from drml_ray.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NerCorpus:
    """The three splits of a corpus, its IOB2 label list, and where it came from."""

    name: str
    splits: dict[str, list[Sentence]]
    labels: list[str]
    generated: bool
    sources: dict[str, str]
    """split -> file it was read from (``"generated"`` for generated splits)."""

    def digests(self) -> dict[str, str]:
        """A hash of each split's sentences, whatever file it was read from (a continued run checks them)."""
        return {f"the {split} split": digest(sentences) for split, sentences in self.splits.items()}

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in self.splits.items())
        kind = "GENERATED corpus (templates; scores say nothing about real NER)" if self.generated else "corpus"
        return f"{kind} {self.name}: {sizes} sentences, {len(self.labels)} labels"


def digest(sentences: Iterable[Sentence]) -> str:
    """A hash of the sentences' words, tags and documents, in order."""
    hashed = hashlib.sha256()
    for sentence in sentences:
        hashed.update(json.dumps([sentence.tokens, sentence.tags, sentence.doc]).encode())
    return hashed.hexdigest()[:16]


def own_corpus(cfg: DataConfig) -> NerCorpus:
    """The user's own three files (``data.train``, ``data.dev``, ``data.test``; the scheme detected unless
    ``data.scheme``). The label set is the train split's: a dev or test tag that train never has is named with its
    file and line (the model cannot predict it, so its entities count as misses)."""
    paths = {split: getattr(cfg, split) for split in SPLITS}
    splits = dict(zip(paths, read_files(list(paths.values()), cfg.scheme, cfg.read_columns), strict=True))
    labels = discover_labels(splits["train"])
    if labels == ["O"]:
        raise CorpusFormatError(paths["train"], None, "no entities: every tag of the train split is O, so there is "
                                "nothing to learn (the tag is a line's last column: data.columns names another)"
                                )  # fmt: skip
    _warn_of_splits(paths, splits, labels)
    if cfg.max_train_sentences is not None:
        splits["train"] = splits["train"][: cfg.max_train_sentences]
    train = Path(paths["train"]).resolve()
    name = train.parent.name if train.stem in SPLITS or train.stem.startswith("train") else train.stem
    return NerCorpus(name, splits, labels, False, {k: str(v) for k, v in paths.items()})


def _warn_of_splits(paths: dict[str, str], splits: dict[str, list[Sentence]], labels: list[str]) -> None:
    """Warn, naming the file, of what trains or scores without error but not as the user means: entity types that
    look alike, a sentence so long that blank lines between sentences seem missing, a dev or test split without
    entities (its F1 is 0 whatever the model does), a dev or test tag that train never has (the model cannot
    predict it, so its entities count as misses)."""
    for problem in lookalike_types({label[2:] for label in labels if label != "O"}):
        log.warning("%s: %s; each is a label of its own", paths["train"], problem)
    for split, sentences in splits.items():
        if (longest := max(len(s.tokens) for s in sentences)) > LONG_SENTENCE:
            log.warning("%s: a sentence of %s words: a blank line ends each sentence (are some missing?)",
                        paths[split], f"{longest:,}")  # fmt: skip
    for split in ("dev", "test"):
        found = discover_labels(splits[split])
        if found == ["O"]:
            choose = ", so the best checkpoint and early stopping choose nothing" if split == "dev" else ""
            log.warning("%s: no entities, every tag is O: its entity F1 is 0 whatever the model does%s", paths[split],
                        choose)  # fmt: skip
        unseen = sorted(set(found) - set(labels))
        if unseen:
            line = first_line_with(paths[split], unseen)  # (None: a folder of files)
            log.warning("%s%s: %s never occur in the train split (%s): the model cannot predict them, so their "
                        "entities count as misses", paths[split], f":{line}" if line else "", ", ".join(unseen),
                        paths["train"])  # fmt: skip


SPLIT_STEMS = {"train": ("train",), "dev": ("dev", "valid", "validation", "val"), "test": ("test",)}
"""The names (before the first dot) a task folder's split files go by."""


def folder_splits(folder: str | os.PathLike[str]) -> dict[str, str]:
    """A task folder's three split files: ``train.*``, ``dev.*`` (or ``valid.*``, ``validation.*``, ``val.*``)
    and ``test.*``, CoNLL or Parquet; ``ValueError`` naming what is missing or ambiguous. As the Hugging Face Hub
    lays a dataset's Parquet out, a split's shards (``train-00000-of-00002.parquet``, ``train-00001-of-00002...``:
    the first names the split, read with the others) or a folder of its files (``train/0000.parquet``) are the
    split too."""
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"task {str(folder)!r}: no such folder")
    files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and (p.is_file() or table_files(p)))
    found: dict[str, str] = {}
    for split, stems in SPLIT_STEMS.items():
        bases = {p.name: unsharded(p.name) for p in files}
        matches = [name for name, base in bases.items() if (base or name).split(".")[0].lower() in stems]
        if len({bases[m] for m in matches}) == 1 and bases[matches[0]] is not None:
            matches = matches[:1]  # a split's shards: the first is read with the others
        if len(matches) != 1:
            which = f"{len(matches)} {split} files ({', '.join(matches)})" if matches else f"no {split} file"
            raise ValueError(f"task {str(folder)!r}: {which}; a task folder holds one train.*, dev.* (or valid.*) "
                             "and test.* file each, CoNLL or Parquet")  # fmt: skip
        found[split] = str(path / matches[0])
    return found


def read_files(paths: list[str], scheme: Scheme | None = None, columns: Columns | None = None,
               ) -> list[list[Sentence]]:  # fmt: skip
    """Each corpus file read once, as IOB2 sentences (``columns``: as :func:`read_conll`). With no ``scheme``,
    IOB2 unless a file's entities start with ``I-`` (IOB1): read as IOB2 those would drop out of the gold standard,
    so then every file is read as IOB1, and said so."""
    files = [read_corpus_file(path, scheme=scheme or "iob2", columns=columns) for path in paths]
    if scheme is not None:
        return files
    for path, sentences in zip(paths, files, strict=True):
        report = inspect_sentences(path, sentences)
        if report.iob1_starts:
            log.warning("%s: %s; reading %s as IOB1 (give the scheme to decide)", path, report.scheme,
                        "it" if len(paths) == 1 else f"all {len(paths)} files")  # fmt: skip
            return [[as_iob2(s) for s in sentences] for sentences in files]
    return files


def load_corpus(cfg: DataConfig, *, progress: bool = True) -> NerCorpus:
    """Read the corpus named by ``cfg`` (fetching it if needed), apply per-split file overrides.

    With ``fallback_to_generated``, a registered corpus that cannot be fetched is replaced by the
    generated corpus, with a warning; otherwise the fetch error propagates. With ``data.context``, a split that
    marks no documents is warned of: its sentences get no context.
    """
    corpus = _read_corpus(cfg, progress)
    alone = {corpus.sources[split]: 1 for split, sents in corpus.splits.items() if all(s.doc is None for s in sents)
             } if cfg.context else {}  # fmt: skip
    if alone:
        log.warning("data.context: %s mark%s no documents (-DOCSTART- lines, or a Parquet file's doc column): each "
                    "sentence there is read alone, without context", ", ".join(alone), "" if len(alone) > 1 else "s"
                    )  # fmt: skip
    return corpus


def _read_corpus(cfg: DataConfig, progress: bool) -> NerCorpus:
    """:func:`load_corpus` without its warning about documents."""
    if cfg.corpus is not None and is_task_folder(cfg.corpus):  # the user's own files: data.train, ... replace them
        given = {split: path for split in SPLITS if (path := getattr(cfg, split)) is not None}
        return own_corpus(cfg.model_copy(update={"corpus": None} | folder_splits(cfg.corpus) | given))
    if cfg.own_files:
        if cfg.corpus is not None:
            log.warning("data.corpus %s is not read: data.train, data.dev and data.test replace all its splits",
                        cfg.corpus)  # fmt: skip
        return own_corpus(cfg)
    name = cfg.corpus or "generated"
    generated = name == "generated"
    splits: dict[str, list[Sentence]] = {}
    sources: dict[str, str] = {}
    if generated:
        g = cfg.generated
        splits = generated_splits(g.train, g.dev, g.test, g.seed)
        sources = dict.fromkeys(SPLITS, "generated")
    else:
        spec = get_spec(name)
        try:
            paths = fetch(spec, progress=progress)
        except FetchError as err:
            if not cfg.fallback_to_generated:
                raise
            log.warning("%s is not reachable, using the GENERATED corpus instead:\n%s", name, err)
            fallback = _read_corpus(cfg.model_copy(update={"corpus": "generated"}), progress)
            return NerCorpus(
                f"generated (fallback for {name})", fallback.splits, fallback.labels, True, fallback.sources
            )
        for split, path in paths.items():
            splits[split] = read_corpus_file(path, scheme=spec.scheme)
            sources[split] = str(path)
    overrides = {split: getattr(cfg, split) for split in SPLITS if getattr(cfg, split) is not None}
    splits |= dict(zip(overrides, read_files(list(overrides.values()), cfg.scheme, cfg.read_columns), strict=True))
    sources |= overrides
    if cfg.max_train_sentences is not None:
        splits["train"] = splits["train"][: cfg.max_train_sentences]
    labels = discover_labels(*splits.values())
    return NerCorpus(name, splits, labels, generated, sources)


def evaluation_data(data: str, split: str, split_given: bool, columns: Columns | None = None,
                    ) -> tuple[list[Sentence], str]:  # fmt: skip
    """The sentences ``drml evaluate`` scores and their name (the split's where there are splits): a split of an
    experiment file's data (or a run directory's), of a named corpus or of a task folder, or one corpus file or
    folder of Parquet files whole (``columns``: of a file or a folder's, as :func:`read_files`)."""
    from drml_ray.runtime.rundir import short_name

    if split not in ("train", "dev", "test"):
        dev = " (dev is the validation split)" if split.lower() in ("validation", "valid", "val", "eval") else ""
        raise UserError(f"--split must be train, dev or test, not {split!r}{dev}")
    if (Path(data) / "config.json").is_file():
        raise UserError(f"{data}: a model folder, not data: drml evaluate MODEL_DIR DATA takes the model first")
    if (Path(data) / "config.yaml").is_file():  # a run directory: the data of its experiment
        data = str(Path(data) / "config.yaml")
    named = data.endswith((".yaml", ".yml")) or (not Path(data).exists() and (data == "generated" or data in CORPORA))
    if columns is not None and named:
        raise UserError(f"--columns picks columns of a corpus file or a task folder's; {data} is read as it is laid "
                        "out (an experiment file: its data.columns)")  # fmt: skip
    if data.endswith((".yaml", ".yml")):  # an experiment file: its data section
        name, data_cfg = experiment_data(data, "drml evaluate")
        return load_corpus(data_cfg).splits[split], f"{name}-{split}"
    if Path(data).is_file():  # (an IOB1 file is detected and read as such, with a note)
        if split_given:
            raise UserError(f"--split picks a split of a named corpus or an experiment file; {data} is one file, "
                            "scored whole")  # fmt: skip
        return read_files([data], columns=columns)[0], short_name(data)
    if Path(data).is_dir():
        return _folder_data(Path(data), split, split_given, columns)
    if data == "generated" or data in CORPORA:
        return load_corpus(DataConfig(corpus=data)).splits[split], f"{data}-{split}"
    raise UserError(f"{data}: no such file" if "/" in data or Path(data).suffix else unknown_corpus(data))


def experiment_data(path: str | os.PathLike[str], command: str) -> tuple[str, DataConfig]:
    """The name and data section of the fine-tuning experiment file ``path``, which ``command`` reads; any other
    experiment is a :class:`UserError`."""
    from drml_ray.config import FinetuneConfig, load_config
    from drml_ray.runtime.registry import kind_of

    cfg = load_config(path)
    if not isinstance(cfg, FinetuneConfig):
        commands = ", ".join(f"drml {c.name}" for c in kind_of(cfg).commands)
        raise UserError(f"{path}: an experiment of {commands}; {command} reads the data section of a fine-tuning "
                        "experiment: name a corpus, a file or a task folder instead")  # fmt: skip
    return cfg.name, cfg.data


def _folder_data(folder: Path, split: str, split_given: bool, columns: Columns | None,
                 ) -> tuple[list[Sentence], str]:  # fmt: skip
    """A task folder's split (its ``train.*``, ``dev.*``, ``test.*``), or a folder of Parquet files whole (what
    ``drml serve --log-requests`` writes)."""
    try:
        path, why = folder_splits(folder)[split], ""
    except ValueError as err:
        path, why = None, str(err)
    if path is not None:
        return read_files([path], columns=columns)[0], f"{folder.name}-{split}"
    if not table_files(folder):
        raise UserError(f"{why}; nor is it a folder of .parquet files (drml serve --log-requests)")
    if split_given:
        raise UserError(f"--split picks a split of a task folder; {folder} holds .parquet files, scored whole")
    return read_files([str(folder)], columns=columns)[0], folder.name
