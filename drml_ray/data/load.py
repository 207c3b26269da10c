"""Turn a ``data:`` config section into train/dev/test sentences and a label list."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drml_ray.config import DataConfig
from drml_ray.data.conll import Sentence, discover_labels, read_corpus_file
from drml_ray.data.fetch import FetchError, fetch
from drml_ray.data.generated import generated_splits
from drml_ray.data.registry import SPLITS, get_spec

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

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in self.splits.items())
        kind = "GENERATED corpus (templates; scores say nothing about real NER)" if self.generated else "corpus"
        return f"{kind} {self.name}: {sizes} sentences, {len(self.labels)} labels"


def load_corpus(cfg: DataConfig, *, progress: bool = True) -> NerCorpus:
    """Read the corpus named by ``cfg`` (fetching it if needed), apply per-split file overrides.

    With ``fallback_to_generated``, a registered corpus that cannot be fetched is replaced by the
    generated corpus, with a warning; otherwise the fetch error propagates.
    """
    name = cfg.corpus
    generated = name == "generated"
    splits: dict[str, list[Sentence]] = {}
    sources: dict[str, str] = {}
    scheme = cfg.scheme or "iob2"
    if generated:
        g = cfg.generated
        splits = generated_splits(g.train, g.dev, g.test, g.seed)
        sources = dict.fromkeys(SPLITS, "generated")
    else:
        spec = get_spec(name)
        scheme = cfg.scheme or spec.scheme
        try:
            paths = fetch(spec, progress=progress)
        except FetchError as err:
            if not cfg.fallback_to_generated:
                raise
            log.warning("%s is not reachable, using the GENERATED corpus instead:\n%s", name, err)
            fallback = load_corpus(DataConfig(corpus="generated", generated=cfg.generated), progress=progress)
            return NerCorpus(
                f"generated (fallback for {name})", fallback.splits, fallback.labels, True, fallback.sources
            )
        for split, path in paths.items():
            splits[split] = read_corpus_file(path, scheme=spec.scheme)
            sources[split] = str(path)
    for split in SPLITS:
        override = getattr(cfg, split)
        if override is not None:
            splits[split] = read_corpus_file(override, scheme=scheme)
            sources[split] = override
    if cfg.max_train_sentences is not None:
        splits["train"] = splits["train"][: cfg.max_train_sentences]
    labels = discover_labels(*splits.values())
    return NerCorpus(name, splits, labels, generated, sources)
