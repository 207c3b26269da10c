"""Seconds per optimizer step of drml's training step against a Hugging Face ``Trainer``-style step, in one
process and on the same sentences, to separate the step itself from Ray Train's share.

    DRML_DATA_MIRROR=../shared/data python benchmarks/step_time.py --bf16

Every contender takes the same global batches of ``--batch`` CoNLL-2003 training sentences (drml's epoch plan,
seed 42) through the packaged MiniLM under one AdamW (fused) with the gradient norm clipped at 1.0:

- ``packed``  -- drml's default: ``train_step`` on random batches packed end to end into rows of ``--row`` (128)
  (``pack_rows`` / ``collate_packed``: a block-diagonal 4-D mask, positions restarting per sentence);
- ``split``   -- drml with ``train.pack_sequences: false``: random batches cut into length-sorted micro-batches;
- ``grouped`` -- what ``Trainer(group_by_length=True)`` runs: batches drawn from length-sorted spans, padded to
  their longest sentence, ``model(**batch).loss`` (a per-batch mean), ``backward``, clip, step.

Prints each contender's milliseconds per step and sub-tokens per second (the first ``--warmup`` steps not
timed), alternating contenders over ``--rounds`` rounds so that a noisy neighbour hits all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from drml_ray.config import DataConfig, ModelConfig
from drml_ray.data.load import load_corpus
from drml_ray.ner import batching
from drml_ray.ner.features import encode
from drml_ray.ner.modeling import load_tokenizer, packaged_minilm_dir, quiet_transformers
from drml_ray.ner.optimization import label_count, make_optimizer, train_step

CONTENDERS = ("packed", "split", "grouped")


def timed_steps(name: str, windows: list, tokenizer, labels: list[str], args: argparse.Namespace) -> float:
    """Seconds per step of ``name`` over ``args.steps`` steps after ``args.warmup`` untimed ones."""
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    with quiet_transformers():
        model = AutoModelForTokenClassification.from_pretrained(str(packaged_minilm_dir()), num_labels=len(labels))
    optimizer = make_optimizer(model, 1e-4, 0.01, fused=True)
    scaler = torch.amp.GradScaler(enabled=False)
    dtype = torch.bfloat16 if args.bf16 else None
    lengths = [len(w.input_ids) for w in windows]
    batches = batching.epoch_batches(len(windows), batch_size=args.batch, shards=1, seed=42, epoch=0,
                                     lengths=lengths if name == "grouped" else None)  # fmt: skip
    pad = tokenizer.pad_token_id
    model.train()
    times = []
    for k, batch in enumerate(batches[: args.warmup + args.steps]):
        started = time.perf_counter()
        if name == "grouped":
            inputs = batching.collate([windows[i] for i in batch], pad)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        else:
            pieces = (
                [batching.collate_packed(windows, batching.pack_rows(batch, lengths, args.row), pad)]
                if name == "packed"
                else [batching.collate([windows[i] for i in p], pad) for p in batching.split_by_length(batch, lengths)]
            )
            train_step(model, pieces, optimizer=optimizer, scaler=scaler, max_grad_norm=1.0, autocast_dtype=dtype,
                       global_labels=sum(label_count([windows[i].labels]) for i in batch))  # fmt: skip
        if k >= args.warmup:
            times.append(time.perf_counter() - started)
    return sum(times) / len(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=4000, help="first N training sentences [4000]")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (fp32 otherwise)")
    parser.add_argument("--row", type=int, default=128, help="packed: row width in sub-tokens [128, drml's]")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = load_corpus(DataConfig(corpus="conll2003"))
    train = corpus.splits["train"][: args.sentences]
    tokenizer = load_tokenizer("minilm")
    label2id = {label: i for i, label in enumerate(corpus.labels)}
    windows = encode(
        tokenizer,
        [s.tokens for s in train],
        [s.tags for s in train],
        label2id,
        max_length=128,
        overlap=ModelConfig().window_overlap,
    )
    tokens_per_step = args.batch * statistics.mean(len(w.input_ids) for w in windows)
    seconds: dict[str, list[float]] = {name: [] for name in args.contenders.split(",")}
    for round_ in range(args.rounds):
        for name in seconds:
            seconds[name].append(timed_steps(name, windows, tokenizer, corpus.labels, args))
            print(f"round {round_ + 1} {name:8} {1000 * seconds[name][-1]:6.1f} ms/step", flush=True)
    for name, values in seconds.items():
        best = min(values)
        print(f"RESULT contender={name} ms_per_step={1000 * best:.1f} tokens_per_s={tokens_per_step / best:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
