"""Entity F1 of one saved model under both decodings (``model.decoding``), from one forward pass per split.

    DRML_DATA_MIRROR=../shared/data python benchmarks/decoding.py runs/conll2003/best conll2003

The model's own windows (and document context, if it was trained with it) as ``drml evaluate`` uses them;
each split's word probabilities are computed once and decoded twice: each word's most probable tag
(``argmax``) and the most probable valid IOB2 sequence (``constrained``). Reported per split: entity micro
F1 of each, and how many sentences argmax tagged with an ``I-X`` that continues nothing (what strict scoring
drops). Last line: ``RESULT split=F1_argmax/F1_constrained ...``.
"""

from __future__ import annotations

import argparse

import torch

from drml_ray.config import DataConfig
from drml_ray.data.load import load_corpus
from drml_ray.ner.batching import eval_batches
from drml_ray.ner.decoding import DECODINGS
from drml_ray.ner.evaluate import load_saved_model
from drml_ray.ner.features import encode
from drml_ray.ner.inference import merge_outputs, predict_windows
from drml_ray.ner.metrics import entity_micro, strict_entities


def dangling(tags: list[str]) -> bool:
    """Whether ``tags`` holds an ``I-X`` that strict IOB2 reads as no entity."""
    inside = {i for start, end, _ in strict_entities(tags) for i in range(start, end)}
    return any(t.startswith("I-") and i not in inside for i, t in enumerate(tags))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("corpus", help="a registered corpus name (conll2003, crossner_politics, ...)")
    parser.add_argument("--splits", default="dev,test")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    saved = load_saved_model(args.model_dir)
    corpus = load_corpus(DataConfig(corpus=args.corpus))
    id2label = dict(enumerate(saved.labels))
    results = []
    for split in args.splits.split(","):
        sentences = corpus.splits[split]
        documents = [s.doc for s in sentences] if saved.context else None
        windows = encode(saved.tokenizer, [s.tokens for s in sentences], None, {}, max_length=saved.max_length,
                         overlap=saved.overlap, documents=documents)  # fmt: skip
        outputs = predict_windows(saved.model, windows, eval_batches([len(w.input_ids) for w in windows],
                                  args.batch_size), pad_id=saved.tokenizer.pad_token_id, device=torch.device("cpu"),
                                  progress=f"scoring {split}")  # fmt: skip
        gold, n_words = [s.tags for s in sentences], [len(s.tokens) for s in sentences]
        f1 = {}
        for decoding in DECODINGS:
            pred, _ = merge_outputs(windows, outputs, n_words, id2label, decoding)
            f1[decoding] = entity_micro(gold, pred)["f1"]
            if decoding == "argmax":
                print(f"{split}: {sum(map(dangling, pred)):,} of {len(pred):,} sentences with a dangling I- tag")
        print(f"{split}: entity F1 argmax {100 * f1['argmax']:.2f}, constrained {100 * f1['constrained']:.2f}")
        results.append(f"{split}={f1['argmax']:.4f}/{f1['constrained']:.4f}")
    print("RESULT " + " ".join(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
