"""A training step on whole-document windows (``data.context_train: document``): packed rows' block-diagonal 4-D
mask against a plain 2-D padding mask, when every row holds one window (two windows of ~100 sub-tokens never share
a row of 128), so both compute the same logits.

    python benchmarks/packed_mask.py [--steps 35] [--rounds 2] [--batch 3] [--threads 2]

The product's own batching (:func:`drml_ray.ner.batching.pack_rows`, :func:`~drml_ray.ner.batching.collate_packed`
and :func:`~drml_ray.ner.batching.collate`) and model (the packaged MiniLM with a 9-label head, word shapes as token
types), AdamW; random windows of 90-128 sub-tokens, as CoNLL's document windows are. Prints ms a step per round and
contender, then ``RESULT packed_ms=... padded_ms=... max_logit_diff=...``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402

from drml_ray.config import ModelConfig  # noqa: E402
from drml_ray.ner.batching import collate, collate_packed, model_inputs, pack_rows  # noqa: E402
from drml_ray.ner.features import Window  # noqa: E402
from drml_ray.ner.modeling import build_model, quiet_transformers  # noqa: E402

LABELS = ["O"] + [f"{p}-{k}" for k in ("LOC", "MISC", "ORG", "PER") for p in ("B", "I")]


def window(rng: random.Random, n: int) -> Window:
    ids = [101, *(rng.randrange(1000, 20000) for _ in range(n - 2)), 102]
    labels = [-100, *(rng.randrange(len(LABELS)) for _ in range(n - 2)), -100]
    return Window(0, 0, ids, labels, list(range(1, n - 1)), [rng.randrange(2) for _ in range(n)])


def packed(batch: list[Window]) -> dict[str, torch.Tensor]:
    return collate_packed(batch, pack_rows(range(len(batch)), [len(w.input_ids) for w in batch], 128), 0)


def padded(batch: list[Window]) -> dict[str, torch.Tensor]:
    rows = pack_rows(range(len(batch)), [len(w.input_ids) for w in batch], 128)
    assert all(len(row) == 1 for row in rows), "a row holds two windows: the masks would differ"
    return collate([batch[row[0]] for row in rows], 0)


def time_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list, make) -> float:
    """ms a step over ``batches`` (after 3 unmeasured steps)."""
    model.train()
    for i, batch in enumerate(batches):
        if i == 3:
            started = time.perf_counter()
        model(**make(batch)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return (time.perf_counter() - started) / (len(batches) - 3) * 1000


def max_logit_diff(model: torch.nn.Module, batch: list[Window]) -> float:
    model.eval()
    with torch.no_grad():
        a, b = (model(**model_inputs(make(batch))).logits for make in (packed, padded))
    rows = pack_rows(range(len(batch)), [len(w.input_ids) for w in batch], 128)
    lengths = [len(batch[row[0]].input_ids) for row in rows]
    return max((a[i, :n] - b[i, :n]).abs().max().item() for i, n in enumerate(lengths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=35)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=3, help="windows a step (conll2003_context.yaml: 3)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    batches = [[window(rng, rng.randrange(90, 129)) for _ in range(args.batch)] for _ in range(args.steps + 3)]
    with quiet_transformers():
        model = build_model(ModelConfig(backbone="minilm", casing="shape"), LABELS, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times: dict[str, list[float]] = {"packed": [], "padded": []}
    for round_ in range(1, args.rounds + 1):
        for name, make in (("packed", packed), ("padded", padded)):
            times[name].append(time_steps(model, optimizer, batches, make))
            print(f"round {round_} {name:6} {times[name][-1]:.1f} ms/step", flush=True)
    diff, median = max_logit_diff(model, batches[0]), {k: statistics.median(v) for k, v in times.items()}
    print(f"RESULT packed_ms={median['packed']:.1f} padded_ms={median['padded']:.1f} max_logit_diff={diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
