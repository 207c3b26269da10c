"""``drml predict``: entities with character offsets from raw text or CoNLL files.

Each input line becomes one JSON object::

    {"text": "...", "entities": [{"type": "PER", "start": 0, "end": 11, "text": "Angela Merkel", "score": 0.98}]}

``start``/``end`` are character offsets into ``text`` (``text[start:end] == entity["text"]``);
``score`` is the mean probability of the entity's word tags. Plain text is split into words as
CoNLL-2003 splits English (:data:`WORD`: punctuation and clitics apart, ``Germany 's``, ``do n't``;
initialisms, common abbreviations and numbers whole, ``U.S.``, ``Inc.``, ``3.5``); a CoNLL file's tokens
are used as they are, joined by single spaces. Large inputs run as Ray Data batch inference: ``map_batches`` over
a pool of actors, each holding one copy of the model, so the same command scales to a cluster.

What is read from which file is :mod:`drml_ray.ner.inputs`'s. Documents: a CoNLL file's ``-DOCSTART-`` lines and
a text file's blank lines separate documents.
A model trained with document context (``data.context``) sees each sentence with its neighbours
in the document, as in training; any other model tags every line on its own.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from drml_ray.data.formats import PARQUET_NAMES
from drml_ray.data.parquet import log_row, write_log
from drml_ray.data.tags import split_tag
from drml_ray.errors import user_error_in
from drml_ray.ner.decoding import check_head
from drml_ray.ner.evaluate import SavedModel, load_saved_model, predict_tags
from drml_ray.text import json_line

ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Mt", "Jr", "Sr", "Gen", "Col", "Lt", "Sgt", "Capt", "Gov",
                 "Sen", "Rep", "Inc", "Corp", "Co", "Ltd", "Bros", "vs", "etc", "Jan", "Feb", "Mar", "Apr", "Jun",
                 "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec")  # fmt: skip
"""Words whose period is theirs, not the sentence's (English, as CoNLL-2003 and OntoNotes tokenise them)."""
CLITIC = r"(?i:['’](?:s|re|ve|ll|d|m)|n['’]t)\b"
UPPER = "A-ZÀ-ÖØ-Þ"
CJK = ("\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ceaf"
       "\U0002f800-\U0002fa1f")  # fmt: skip
"""CJK ideographs (BERT's ``_is_chinese_char``), each a word of its own, as Chinese NER corpora write them (and
BERT's own pre-tokeniser cuts them): a run of them has no spaces to cut at."""
WORD = re.compile(
    r"(?:[^\W\d_]\.){2,}"  # initialisms: U.S., F.C., a.m.
    rf"|\b(?:{'|'.join(ABBREVIATIONS)})\.(?!\w)"  # Mr., Inc., St.
    rf"|[{UPPER}]\.(?=\s+[{UPPER}])"  # an initial before a name: J. Smith
    r"|\d+(?:[.,:/]\d+)+"  # numbers: 3.5, 1,000, 10:30, 5/12/96
    r"|\.{2,}"  # an ellipsis
    rf"|{CLITIC}"  # clitics, as their own words: 's, 're, n't
    rf"|[^\W{CJK}]+(?:[-'’][^\W{CJK}]+)*?(?={CLITIC})"  # the word before one: Germany of Germany's, do of don't
    rf"|[^\W{CJK}]+(?:[-'’][^\W{CJK}]+)*"  # words, with their hyphens and inner apostrophes: well-known, O'Brien
    rf"|[{CJK}]"  # an ideograph
    r"|[^\w\s]"  # any other character that is not a space: punctuation
)
"""How ``drml predict`` cuts raw text into words: as CoNLL-2003 and the Penn Treebank tokenise English, so that
the words a model reads are the kind it was trained on (``benchmarks/raw_text_f1.py``)."""
RAY_THRESHOLD = 2000
"""``--engine auto`` switches to Ray Data batch inference from this many inputs."""
LIGHT_THRESHOLD = 1000
"""Below this many inputs the model is loaded without ``transformers`` where it can be
(:mod:`drml_ray.ner.light`): for a few sentences, importing ``transformers`` is most of the wait."""

Span = tuple[int, int]


def split_words(text: str) -> list[Span]:
    """Character spans of the words of raw text (:data:`WORD`): ``"Hi, Bob"`` -> ``[(0, 2), (2, 3), (4, 7)]``.

    >>> text = "Mr. O'Brien didn't see the U.S. team's 3.5 goals... J. Smith did."
    >>> [text[start:end] for start, end in split_words(text)]  # doctest: +NORMALIZE_WHITESPACE
    ['Mr.', "O'Brien", 'did', "n't", 'see', 'the', 'U.S.', 'team', "'s", '3.5', 'goals', '...', 'J.', 'Smith',
     'did', '.']
    """
    spans: list[Span] = []
    for start, end in (m.span() for m in WORD.finditer(text)):
        if spans and spans[-1][1] == start and _inside_a_word(text[spans[-1][0] : start], text[start]):
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return [(start, end) for start, end in spans if not _invisible(text[start:end])]


def _invisible(word: str) -> bool:
    """Whether a word is only format or control characters (a zero-width space, a byte-order mark, the marks of text
    direction, a joiner with nothing to join) or marks with no letter to sit on (a combining accent or a variation
    selector after a space). Web text holds them; they are no word (Unicode's word boundaries attach them to the
    space before; BERT's pre-tokeniser drops them, an uncased one the accents too, and the word would be tagged as
    ``[UNK]``, splitting the entity around it).

    >>> [_invisible(w) for w in ["\u200b", "\ufeff\u200f", "\x85", "\u200d", "a\u200b", "\u0600", ".", "\u0301",
    ...                          "\ufe0f", "\u20dd", "e\u0301", "\U0001f3fb"]]
    [True, True, True, True, False, True, False, True, True, True, False, False]
    """
    return all(unicodedata.category(char) in ("Cf", "Cc", "Mn", "Me") for char in word)


GLUE = "\u00ad\u200c\u200d\u2060"
"""Characters that make one word of what is on each side of them: the soft hyphen, the zero-width non-joiner
(Persian's half-space) and joiner (emoji sequences), the word joiner."""


def _inside_a_word(word: str, after: str) -> bool:
    """Whether ``after``, touching the end of ``word``, is in that word though :data:`WORD` split them: a letter and
    its accent or vowel sign (``re``'s ``\\w`` holds no combining mark: decomposed accents, Devanagari's and Tamil's
    vowel signs, Arabic's harakat), an emoji and its skin tone, what a joiner joins, a flag's second regional
    indicator or its tag characters.

    >>> import unicodedata
    >>> def words(text): return [unicodedata.normalize("NFC", text[a:b]) for a, b in split_words(text)]
    >>> words("हिन्दी भाषा"), words(unicodedata.normalize("NFD", "José Müller's")), words("مُحَمَّد")
    (['हिन्दी', 'भाषा'], ['José', 'Müller', "'s"], ['مُحَمَّد'])
    >>> [len(word) for word in words("👍🏽 👩\\u200d👧 می\\u200cروم.")]  # (the joiners in the words)
    [2, 3, 6, 1]
    >>> [len(word) for word in words("Biden 🇺🇸🇬🇧 \U0001f3f4\U000e0067\U000e0062\U000e007f")]  # (the flags)
    [5, 2, 2, 4]
    >>> words("\ufeffAngela\u200b Merkel \u200f(\u200eCDU\u200e)")  # (invisible marks: no words)
    ['Angela', 'Merkel', '(', 'CDU', ')']
    """
    before = word[-1]
    if before in GLUE or after in GLUE or "\U0001f3fb" <= after <= "\U0001f3ff":  # (the skin tones)
        return True
    if "\U000e0020" <= after <= "\U000e007f" or (_regional(after) and _regional(before) and len(word) % 2):  # (a flag)
        return True
    return unicodedata.category(after)[0] == "M" or (unicodedata.category(before)[0] == "M" and after.isalnum())


def _regional(char: str) -> bool:
    """Whether ``char`` is a regional indicator (two make a country's flag: 🇺🇸)."""
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def space_spans(text: str) -> list[Span]:
    """Spans of the single-space-separated tokens of pre-tokenised text."""
    spans, start = [], 0
    for token in text.split(" "):
        spans.append((start, start + len(token)))
        start += len(token) + 1
    return spans


def text_spans(text: str, pretokenized: bool) -> list[Span]:
    """The words of a text to tag: tokens joined by single spaces (pre-tokenised), or split as a person wrote it."""
    return space_spans(text) if pretokenized else split_words(text)


def words_and_tags(record: dict, pretokenized: bool) -> tuple[list[str], list[str]]:
    """A record's words, its text split as it was tagged, and their IOB2 tags, read back from its entities (each
    covers whole words: :func:`entities_from_tags`)."""
    text, tags = record["text"], []
    starts, inside = {entity["start"]: entity for entity in record["entities"]}, None
    spans = text_spans(text, pretokenized)
    for start, end in spans:
        entity = starts.get(start)
        inside = entity or (inside if inside is not None and end <= inside["end"] else None)
        tags.append("O" if inside is None else f"{'B' if entity else 'I'}-{inside['type']}")
    return [text[start:end] for start, end in spans], tags


def entities_from_tags(text: str, spans: Sequence[Span], tags: Sequence[str], scores: Sequence[float]) -> list[dict]:
    """Group IOB2 word tags into entities (an ``I-X`` that does not continue an ``X`` starts one)."""
    entities: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    word_scores: list[float] = []

    def close() -> None:
        if current is not None:
            current["text"] = text[current["start"] : current["end"]]
            current["score"] = round(sum(word_scores) / len(word_scores), 4)
            entities.append(current)

    for (start, end), tag, score in zip(spans, tags, scores, strict=True):
        prefix, kind = split_tag(tag)
        if kind is not None and prefix == "I" and current is not None and current["type"] == kind:
            current["end"] = end
            word_scores.append(score)
            continue
        close()
        current, word_scores = None, []
        if kind is not None:
            current, word_scores = {"type": kind, "start": start, "end": end}, [score]
    close()
    return entities


Documents = Sequence[int | None] | None
"""Each text's document (consecutive texts of one document), or ``None``: every text on its own."""


def predict_records(
    saved: SavedModel, texts: Sequence[str], pretokenized: bool, batch_size: int = 64, progress: str | None = None,
    documents: Documents = None,
) -> list[dict]:  # fmt: skip
    """Entities of every text, in one process."""
    return [record for record, _, _ in tag_texts(saved, texts, pretokenized, batch_size, progress, documents)]


def tag_texts(
    saved: SavedModel, texts: Sequence[str], pretokenized: bool, batch_size: int = 64, progress: str | None = None,
    documents: Documents = None,
) -> list[tuple[dict, list[str], list[str]]]:  # fmt: skip
    """Each text's record (``{"text", "entities"}``) with the words the model saw and their predicted tags."""
    spans = [text_spans(t, pretokenized) for t in texts]
    words = [[t[s:e] for s, e in sp] for t, sp in zip(texts, spans, strict=True)]
    keep = [i for i, w in enumerate(words) if w]  # an empty line has no words and no entities
    docs = [documents[i] for i in keep] if documents is not None else None
    tags, scores = predict_tags(saved, [words[i] for i in keep], batch_size, progress, docs) if keep else ([], [])
    out: list[tuple[dict, list[str], list[str]]] = [
        ({"text": t, "entities": []}, w, []) for t, w in zip(texts, words, strict=True)
    ]
    for i, t, s in zip(keep, tags, scores, strict=True):
        out[i] = ({"text": texts[i], "entities": entities_from_tags(texts[i], spans[i], t, s)}, words[i], list(t))
    return out


def document_groups(n_texts: int, documents: Documents) -> list[range]:
    """Consecutive texts of one document, as ranges of text indices (a text without a document: alone).

    >>> document_groups(5, [0, 0, None, 1, 1])
    [range(0, 2), range(2, 3), range(3, 5)]
    """
    if documents is None:
        return [range(i, i + 1) for i in range(n_texts)]
    groups: list[range] = []
    for i, doc in enumerate(documents):
        if groups and doc is not None and documents[groups[-1].start] == doc:
            groups[-1] = range(groups[-1].start, i + 1)
        else:
            groups.append(range(i, i + 1))
    return groups


def trained_with_context(model_dir: str | Path) -> bool:
    """Whether the model folder was trained with document context (read from its config.json, no weights; a
    folder that does not load is named when the actors load it)."""
    from drml_ray.ner.light import read_json

    drml = read_json(Path(model_dir) / "config.json").get("drml")
    return isinstance(drml, dict) and bool(drml.get("context"))


class RayPredictor:
    """A Ray Data actor: loads the model once, tags batches of ``{"texts"}`` rows (a JSON list of one document's
    texts each, so a document's sentences are tagged together); each row's ``json`` is its records' JSON lines."""

    def __init__(self, model_dir: str, pretokenized: bool, batch_size: int, bfloat16: bool = False):
        torch.set_num_threads(1)
        self.saved = load_saved_model(model_dir, autocast=torch.bfloat16 if bfloat16 else None)
        self.pretokenized = pretokenized
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        groups = [json.loads(str(texts)) for texts in batch["texts"]]
        texts = [t for group in groups for t in group]
        documents = [g for g, group in enumerate(groups) for _ in group]
        records = iter(predict_records(self.saved, texts, self.pretokenized, self.batch_size, documents=documents))
        lines = ["\n".join(json_line(next(records)) for _ in group) for group in groups]
        return {"id": batch["id"], "json": lines}


def predict_with_ray(
    model_dir: str | Path, texts: Sequence[str], pretokenized: bool, *, actors: int | None = None, batch_size: int = 64,
    documents: Documents = None, bfloat16: bool = False,
) -> Iterator[str]:  # fmt: skip
    """JSON lines for ``texts`` from Ray Data batch inference, in input order."""
    import ray  # RAY
    import ray.data  # RAY

    from drml_ray.ray_env import ensure_ray

    check_head(Path(model_dir))  # (an actor would say it only as it died)
    ensure_ray()
    max_actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # RAY
    groups = document_groups(len(texts), documents if trained_with_context(model_dir) else None)
    ds = ray.data.from_items([{"id": i, "texts": json.dumps([texts[k] for k in g])} for i, g in enumerate(groups)])
    ds = ds.map_batches(  # RAY: an autoscaling pool of 1..max_actors model replicas
        RayPredictor,
        fn_constructor_kwargs={
            "model_dir": str(Path(model_dir).resolve()),
            "pretokenized": pretokenized,
            "batch_size": batch_size,
            "bfloat16": bfloat16,
        },  # fmt: skip
        batch_size=max(batch_size, 256),
        concurrency=(1, max_actors),
        num_cpus=1,
    )
    try:
        for row in ds.iter_rows():
            yield from row["json"].split("\n")  # (a JSON record holds no raw newline)
    except Exception as err:  # (the actors load the model: a folder that does not load is the user's to mend)
        refused = user_error_in(err)
        if refused is None:
            raise
        raise refused from None


def predict_lines(
    model_dir: str | Path,
    texts: Sequence[str],
    pretokenized: bool,
    *,
    engine: Literal["auto", "local", "ray"] = "auto",
    batch_size: int = 64,
    documents: Documents = None,
    bfloat16: bool = False,
) -> Iterator[str]:
    """JSON lines for ``texts``: in this process, or through Ray Data for large inputs (``bfloat16``: forward
    passes under bf16 autocast)."""
    if engine == "ray" or (engine == "auto" and len(texts) >= RAY_THRESHOLD):
        yield from predict_with_ray(model_dir, texts, pretokenized, batch_size=batch_size, documents=documents,
                                    bfloat16=bfloat16)  # fmt: skip
        return
    autocast = torch.bfloat16 if bfloat16 else None
    saved = load_saved_model(model_dir, light=len(texts) < LIGHT_THRESHOLD, autocast=autocast)
    progress = "predicting" if len(texts) > 100 else None
    for record in predict_records(saved, texts, pretokenized, batch_size, progress, documents):
        yield json_line(record)


def write_predictions(path: Path, lines: Iterable[str], pretokenized: bool, model: str, version: str,
                      documents: Documents = None) -> int:  # fmt: skip
    """``drml predict --output``: the JSON lines, or for a Parquet name (``.parquet``, ``.pq``) the predictions as
    rows of :data:`~drml_ray.data.parquet.LOG_SCHEMA` (what ``drml serve --log-requests`` writes: a corpus of the
    predicted tags, to correct or keep as pseudo-labels, each row in its document, so ``data.context`` reads them in
    theirs); atomically. Returns how many texts were written."""
    from drml_ray.runtime.runfiles import atomic_write_text

    if path.suffix.lower() not in PARQUET_NAMES:
        lines = list(lines)
        atomic_write_text(path, "".join(f"{line}\n" for line in lines))
        return len(lines)
    records = [json.loads(line) for line in lines]
    docs = documents or [None] * len(records)
    write_log(path, [log_row(*words_and_tags(r, pretokenized), r, model, version, doc)
                     for r, doc in zip(records, docs, strict=True)])  # fmt: skip
    return len(records)
