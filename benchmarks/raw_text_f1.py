"""Entity F1 of ``drml predict`` on raw text, against the same model on the corpus's own tokens.

A user pastes text, not CoNLL tokens: ``Germany's``, ``U.S.``, ``don't``. This turns a labelled split back into the
text it came from (no space before punctuation and clitics, none inside quotes and brackets), lets ``drml
predict``'s word splitter (``drml_ray.ner.predict.split_words``) cut it into words again, and scores the entities'
character spans against the gold ones. The second row is the same model given the gold tokens (what ``drml
evaluate`` scores). Both read each sentence with its document, as ``drml predict`` does::

    DRML_DATA_MIRROR=../shared/data python benchmarks/raw_text_f1.py runs/fast/best --corpus conll2003

Without a model, ``--agreement`` says how many of a corpus's sentences the splitter cuts back into exactly the
corpus's tokens, against the splitter before session 33 (:data:`BEFORE`)::

    DRML_DATA_MIRROR=../shared/data python benchmarks/raw_text_f1.py --agreement --corpus crossner_ai
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence

from drml_ray.config import DataConfig
from drml_ray.data.conll import Sentence
from drml_ray.data.load import load_corpus
from drml_ray.ner.evaluate import SavedModel, load_saved_model
from drml_ray.ner.predict import entities_from_tags, predict_records, space_spans, split_words

CLITICS = {"'s", "'re", "'ve", "'ll", "'d", "'m", "n't", "'"}
GLUED_LEFT = {",", ".", ";", ":", "!", "?", "%", ")", "]", "}", "...", *CLITICS}
GLUED_RIGHT = {"(", "[", "{", "$"}

BEFORE = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")
"""``drml predict``'s word splitter until session 33: runs of letters and digits, every other mark alone."""

Span = tuple[int, int]
Entity = tuple[int, str, int, int]  # sentence, type, start, end


def detokenize(tokens: Sequence[str]) -> tuple[str, list[Span]]:
    """The text the tokens were cut from, as a person writes it, and each token's character span in it.

    >>> detokenize(["Germany", "'s", "chancellor", "(", "CDU", ")", "said", '"', "no", '"', "."])[0]
    'Germany\\'s chancellor (CDU) said "no".'
    """
    text, spans, open_quote, glue_next = "", [], False, True
    for token in tokens:
        quote = token == '"'
        glued = glue_next or token.lower() in GLUED_LEFT or (quote and open_quote)
        text += "" if glued else " "
        spans.append((len(text), len(text) + len(token)))
        text += token
        glue_next = token in GLUED_RIGHT or (quote and not open_quote)
        open_quote = open_quote != quote
    return text, spans


def scores(gold: set[Entity], predicted: set[Entity]) -> tuple[float, float, float]:
    hits = len(gold & predicted)
    precision, recall = hits / max(1, len(predicted)), hits / max(1, len(gold))
    return precision, recall, 2 * precision * recall / max(1e-12, precision + recall)


def entities(records: Sequence[dict]) -> set[Entity]:
    """The entities of ``drml predict``'s records, each as (sentence, type, start, end)."""
    return {(i, e["type"], e["start"], e["end"]) for i, record in enumerate(records) for e in record["entities"]}


def run(saved: SavedModel, sentences: list[Sentence], given: list[tuple[str, list[Span]]], pretokenized: bool
        ) -> tuple[set[Entity], set[Entity]]:  # fmt: skip
    """Gold and predicted entities of ``sentences`` given to the model as ``given`` texts (each with its tokens'
    spans); the gold ones are grouped by the rule predictions are."""
    texts = [text for text, _ in given]
    gold = [{"entities": entities_from_tags(t, sp, s.tags, [1.0] * len(sp))}
            for (t, sp), s in zip(given, sentences, strict=True)]  # fmt: skip
    predicted = predict_records(saved, texts, pretokenized=pretokenized, documents=[s.doc for s in sentences])
    return entities(gold), entities(predicted)


def agreement(sentences: list[Sentence]) -> dict[str, float]:
    """The share of ``sentences`` each splitter cuts, written out as text, back into exactly their tokens."""
    cutters = {"now": split_words, "before": lambda text: [m.span() for m in BEFORE.finditer(text)]}
    texts = [detokenize(s.tokens)[0] for s in sentences]
    return {name: sum([t[a:b] for a, b in cut(t)] == list(s.tokens) for t, s in zip(texts, sentences, strict=True))
            / len(sentences) for name, cut in cutters.items()}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="?", help="a model folder (not needed with --agreement)")
    parser.add_argument("--agreement", action="store_true", help="only compare the splitters' words with the corpus's")
    parser.add_argument("--corpus", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--misses", type=int, default=15, help="print this many raw-text misses, most common first")
    args = parser.parse_args()
    sentences = list(load_corpus(DataConfig(corpus=args.corpus)).splits[args.split])
    if args.agreement or not args.model_dir:
        shares = agreement(sentences)
        print(f"RESULT corpus={args.corpus} sentences={len(sentences)} cut_as_the_corpus_now={shares['now']:.3f} "
              f"before={shares['before']:.3f}")  # fmt: skip
        return 0
    saved, written = load_saved_model(args.model_dir), [detokenize(s.tokens) for s in sentences]
    spaced = [(text, space_spans(text)) for text in (" ".join(s.tokens) for s in sentences)]
    results = {}
    for name, given, pretokenized in (("raw text", written, False), ("gold tokens", spaced, True)):
        gold, predicted = results[name] = run(saved, sentences, given, pretokenized)
        p, r, f = scores(gold, predicted)
        print(f"RESULT input={name.replace(' ', '_')} precision={p:.4f} recall={r:.4f} f1={f:.4f} gold={len(gold)}")
    gold, predicted = results["raw text"]
    missed = Counter(written[i][0][a:b] for i, _, a, b in gold - predicted)
    wrong = Counter(written[i][0][a:b] for i, _, a, b in predicted - gold)
    print("most missed gold entities (raw text):", missed.most_common(args.misses))
    print("most common wrong predictions (raw text):", wrong.most_common(args.misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
