"""The corpora drml-ray knows by name: where each lives, its files' sha256, its tag scheme.

A mirror (``DRML_DATA_MIRROR`` or ``--source``) holds the same files under ``<mirror>/<folder>/``:
``conll2003/eng.train`` …, ``crossner/politics/train.txt`` … (the layout of ``shared/data``).
"""

from __future__ import annotations

from dataclasses import dataclass

from drml_ray.data.conll import Scheme
from drml_ray.errors import UserError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a corpus: its name inside the corpus folder and its sha256."""

    name: str
    sha256: str


@dataclass(frozen=True)
class CorpusSpec:
    """A named corpus: split -> file, where to fetch it from, and how to read it."""

    name: str
    folder: str
    files: dict[str, RemoteFile]
    scheme: Scheme
    licence: str
    base_url: str | None
    """Public home the files are downloaded from; ``None`` when redistribution is forbidden."""
    description: str
    hub_id: str | None = None
    """The corpus's Hugging Face dataset id (what a model card's ``datasets`` names)."""


CROSSNER_URL = "https://raw.githubusercontent.com/zliucr/CrossNER/main/ner_data"
CROSSNER_SHA256 = {
    "ai": (
        "484217a660f52927bd5157507c22fc103b36306364329f62f80fc8acb897b187",
        "b47ffda6de5901a454a873feac1bebe782e54ce7edf9deb729cab3d769212eee",
        "7595ad386e0a98067100fe47f86811b38867a236011fee97cfaa90f778c37bcf",
    ),
    "literature": (
        "0647e403a85040742c2f4041cf002146a81aa2e13adda19d0e82a8bcd493c18b",
        "99281a51943cf7e3c2a58b3dc45c0e5ab6d329624ebf2ba6b4801c428396162f",
        "77267f8b3e8afe993865c64cfc605f65671f6a0ac9cba65de970f12180fed20e",
    ),
    "music": (
        "3774c38e0ebbeb4b98dbfae137071e4911e8764cdb7f247599009841f68d9fb5",
        "e256f1949df52a61a3bb60095a0f41c1060843f1014b0f3d22d8371611b72e78",
        "c66e345f959ac65593f76c6b1bd8c6d75f2a6f0bc197389b2e6700d101fd094c",
    ),
    "politics": (
        "1d8be31abb58463349496fe21b13d70114cf015294a9ff9cce77af9b83e8aa84",
        "4f1f30eb832f4c5fe474f67ca45e875d863bddf0bbe432262d272ef13639fa8f",
        "05cadc5e129d394f7f92b4a052cf4b6ea4c60878d32a833e500cf046c297455f",
    ),
    "science": (
        "8f6a26096cc7be6790b5790bf5f5b5c8928d8b73d4632e7d45dc8bffad0504ac",
        "87ec141c7b41b3b52ec861737c4030d65c6e53954ed3d8106baca8603bbf8f24",
        "3616d59d4d2b9dbf4c1126f8d8ba47ff97886223c95f93649bfd527343e64ced",
    ),
}
CROSSNER_DOMAINS = tuple(CROSSNER_SHA256)


def _crossner(domain: str) -> CorpusSpec:
    sums = CROSSNER_SHA256[domain]
    return CorpusSpec(
        name=f"crossner_{domain}",
        folder=f"crossner/{domain}",
        files={split: RemoteFile(f"{split}.txt", sha) for split, sha in zip(SPLITS, sums, strict=True)},
        scheme="iob2",
        licence="MIT",
        base_url=f"{CROSSNER_URL}/{domain}",
        description=f"CrossNER {domain} (Liu et al., AAAI 2021)",
        hub_id="DFKI-SLT/cross_ner",
    )


CONLL2003 = CorpusSpec(
    name="conll2003",
    folder="conll2003",
    files={
        "train": RemoteFile("eng.train", "eac0822f501353f265383ddf1edb0dcd42a1b6eefd3e383d7074db98c38eb41c"),
        "dev": RemoteFile("eng.testa", "aedc4ccbd1ae9795feaa0e86fe72d195b0258abed9d705b630d1c889276fac1e"),
        "test": RemoteFile("eng.testb", "0632f32c090ef31c223135b7fee3187a7cf8e65c4015c7866bb7783428cdd9a6"),
    },
    scheme="iob1",
    licence="Reuters text, research use only: not redistributable",
    base_url=None,
    description="CoNLL-2003 English (original IOB1 files)",
    hub_id="eriktks/conll2003",
)

CORPORA: dict[str, CorpusSpec] = {CONLL2003.name: CONLL2003} | {f"crossner_{d}": _crossner(d) for d in CROSSNER_DOMAINS}


def get_spec(name: str) -> CorpusSpec:
    """The registered corpus ``name``; the error lists the known names."""
    try:
        return CORPORA[name]
    except KeyError:
        raise UserError(unknown_corpus(name)) from None


def unknown_corpus(name: str) -> str:
    """The message for a corpus name that is not registered: the known names, and the nearest if there is one.

    >>> unknown_corpus("CoNLL2003")
    "unknown corpus 'CoNLL2003' (did you mean conll2003?); known corpora: conll2003, crossner_ai, ..."
    >>> [unknown_corpus(name).split(";")[0] for name in ("politics", "crossner_sport")]
    ["unknown corpus 'politics' (did you mean crossner_politics?)", "unknown corpus 'crossner_sport'"]
    """
    import difflib

    known, lowered = [*CORPORA, "generated"], name.lower()
    near = [c for c in known if c.endswith(f"_{lowered}")] or difflib.get_close_matches(lowered, known, 1, 0.8)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return f"unknown corpus {name!r}{hint}; known corpora: {', '.join(sorted(CORPORA))}, or 'generated'"
