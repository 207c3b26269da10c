"""Prediction speed: ``drml predict``'s path against ``transformers.pipeline`` on the same model.

    DRML_DATA_MIRROR=../shared/data python benchmarks/predict_throughput.py runs/conll2003/best

Both tag every sentence of CoNLL-2003 eng.testb (tokens joined by spaces) in this process with all
cores: drml batches windows sorted by length (little padding) and scores first sub-tokens only;
the pipeline is ``pipeline("token-classification", aggregation_strategy="first")`` with the same
batch size. Reported: sentences/s of each, the ratio, and how many entities (type + character
span) the two agree on. Last line: ``RESULT predict_ratio=X entity_agreement=Y``.

``--dtype bfloat16``: drml's forward passes under bf16 autocast (``drml predict --dtype bfloat16``) and
the pipeline's model loaded in bf16 (``pipeline(..., dtype=torch.bfloat16)``, its own way).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from drml_ray.data.conll import read_conll
from drml_ray.ner.evaluate import load_saved_model
from drml_ray.ner.predict import predict_records


def main() -> int:
    mirror = os.environ.get("DRML_DATA_MIRROR", "../shared/data")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--data", default=f"{mirror}/conll2003/eng.testb")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="only the first N sentences")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()

    texts = [" ".join(s.tokens) for s in read_conll(args.data, scheme="iob1")]
    texts = texts[: args.limit] if args.limit else texts
    print(f"{len(texts)} sentences, batch {args.batch_size}, {args.dtype}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip

    bf16 = args.dtype == "bfloat16"
    saved = load_saved_model(args.model_dir, autocast=torch.bfloat16 if bf16 else None)
    started = time.perf_counter()
    drml = predict_records(saved, texts, pretokenized=True, batch_size=args.batch_size)
    drml_s = time.perf_counter() - started

    from transformers import pipeline

    ner = pipeline("token-classification", model=args.model_dir, aggregation_strategy="first", device="cpu",
                   dtype=torch.bfloat16 if bf16 else torch.float32)  # fmt: skip
    started = time.perf_counter()
    hf = ner(texts, batch_size=args.batch_size)
    hf_s = time.perf_counter() - started

    ours = {(i, e["type"], e["start"], e["end"]) for i, r in enumerate(drml) for e in r["entities"]}
    theirs = {(i, e["entity_group"], e["start"], e["end"]) for i, r in enumerate(hf) for e in r}
    agreement = len(ours & theirs) / max(1, len(ours | theirs))
    print(f"drml predict : {len(texts) / drml_s:8.1f} sentences/s ({drml_s:.1f} s), {len(ours)} entities")
    print(f"hf pipeline  : {len(texts) / hf_s:8.1f} sentences/s ({hf_s:.1f} s), {len(theirs)} entities")
    print(f"entities in both / in either: {len(ours & theirs)} / {len(ours | theirs)}")
    print(f"RESULT predict_ratio={hf_s / drml_s:.2f} entity_agreement={agreement:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
