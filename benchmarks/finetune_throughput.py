"""Fine-tuning throughput: drml-ray's Ray Train path against the seed pipeline and Hugging Face.

    DRML_DATA_MIRROR=../shared/data python benchmarks/finetune_throughput.py [--steps 30] [--model DIR]

Every contender trains the same model on the same CoNLL-2003 training sentences (a seeded sample of
``steps x batch`` sentences), for the same number of optimizer steps with the same sentences per
step, AdamW at the same learning rate with the same linear decay, one after another in this process:

1. ``seed``   — every sentence padded to 128 tokens, ``model(**batch).loss`` in a plain loop;
2. ``hf``     — ``DataCollatorForTokenClassification`` dynamic padding in the same plain loop;
3. ``hf-trainer`` — ``transformers.Trainer`` with ``train_sampling_strategy="group_by_length"``
   (transformers 5's name for ``group_by_length=True``);
4. ``drml-1`` / ``drml-2`` — ``drml finetune``'s training path on 1 Ray Train worker (all cores) / 2,
   with its defaults (windows packed into rows; ``--no-pack`` for length-split micro-batches).

Reported per contender: real (non-pad) tokens/s over the training steps, padding efficiency (real /
padded tokens), peak RSS of this process and everything it started (Ray included) while the
contender ran, and the loss curve (mean per block of steps; compare at equal sentences seen).
The last line is machine-readable: ``RESULT ratio_vs_seed=X ratio_vs_hf=Y scaling_2w=Z``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

from drml_ray.data.conll import Sentence, discover_labels, read_conll
from drml_ray.ner.modeling import load_tokenizer, packaged_minilm_dir
from drml_ray.ner.optimization import lr_factor


@dataclass
class Outcome:
    name: str
    real_tokens: int
    padded_tokens: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def efficiency(self) -> float:
        return self.real_tokens / self.padded_tokens if self.padded_tokens else float("nan")


@contextlib.contextmanager
def peak_rss() -> Iterator[list[float]]:
    """Sample the RSS of this process tree every 0.2 s; yields a one-item list holding the peak (MB)."""
    root, peak, done = psutil.Process(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            total = 0
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            peak[0] = max(peak[0], total / 2**20)
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def hf_features(tokenizer, sentences: list[Sentence], label2id: dict[str, int], pad_to: int | None) -> list[dict]:
    """Hugging Face-style features: first sub-token labelled, optional padding to a fixed length."""
    kwargs = {"padding": "max_length"} if pad_to else {}
    enc = tokenizer([list(s.tokens) for s in sentences], is_split_into_words=True, truncation=True,
                    max_length=128, **kwargs)  # fmt: skip
    features = []
    for i, s in enumerate(sentences):
        labels, previous = [], None
        for word in enc.word_ids(i):
            labels.append(-100 if word is None or word == previous else label2id[s.tags[word]])
            previous = word
        features.append(
            {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels}
        )
    return features


def plain_loop(name: str, model_dir: str, batches: list[dict], labels: list[str], lr: float) -> Outcome:
    """The loop users write: forward with labels, backward, AdamW step, linear decay."""
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=len(labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, 0, len(batches)))
    model.train()
    outcome = Outcome(name, 0, 0, 0.0)
    started = time.perf_counter()
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        outcome.losses.append(loss.item())
        outcome.real_tokens += int(batch["attention_mask"].sum())
        outcome.padded_tokens += batch["attention_mask"].numel()
    outcome.seconds = time.perf_counter() - started
    return outcome


def run_trainer(model_dir: str, features: list[dict], labels: list[str], steps: int, batch: int, lr: float):
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    tokenizer = load_tokenizer(model_dir)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=len(labels))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=lr,
            lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.01, max_grad_norm=0.0,
            train_sampling_strategy="group_by_length", logging_steps=1, save_strategy="no", report_to=[],
            use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True,
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=features,
                          data_collator=DataCollatorForTokenClassification(tokenizer))  # fmt: skip
        result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    real = sum(len(f["input_ids"]) for f in features)
    return Outcome("hf-trainer", real, 0, result.metrics["train_runtime"], losses)


def run_drml(name: str, model_dir: str, train: list[Sentence], dev: list[Sentence], workers: int, args) -> Outcome:
    """``drml finetune``'s path with its defaults: Ray Train, packed rows, fused AdamW."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from drml_ray.config import FinetuneConfig
    from drml_ray.data.load import NerCorpus
    from drml_ray.ner.finetune import run_training

    cpus = max(1, (os.cpu_count() or 2) // workers)
    cfg = FinetuneConfig.model_validate(
        {
            "name": name, "seed": 0,
            "model": {"backbone": model_dir, "max_length": 128},
            "train": {"epochs": 1, "batch_size": args.batch, "lr": args.lr, "warmup_ratio": 0.0, "weight_decay": 0.01,
                      "max_grad_norm": 0.0, "patience": 0, "log_every_steps": 1, "eval_batch_size": 64,
                      "pack_sequences": args.pack},
            "scaling": {"num_workers": workers, "cpus_per_worker": cpus},
        }
    )  # fmt: skip
    labels = discover_labels(train, dev)
    corpus = NerCorpus("bench", {"train": train, "dev": dev, "test": dev}, labels, False, {})
    with tempfile.TemporaryDirectory() as run_dir:
        result = run_training(cfg, corpus, Path(run_dir))
        loop = torch.load(Path(result.checkpoint.path) / "state.pt", map_location="cpu", weights_only=True)["loop"]
        events = EventAccumulator(str(Path(run_dir) / "tensorboard"))
        events.Reload()
        losses = [e.value for e in events.Scalars("train/loss")]
    outcome = Outcome(name, loop["train_tokens"], 0, loop["train_seconds"], losses)
    outcome.padded_tokens = padded_tokens(model_dir, train, cfg, workers)
    return outcome


def padded_tokens(model_dir: str, train: list[Sentence], cfg, workers: int) -> int:
    """Tokens drml computes on, padding included: replays the run's batch plan."""
    from drml_ray.ner.batching import epoch_batches, pack_rows, shard, split_by_length
    from drml_ray.ner.features import encode

    tokenizer = load_tokenizer(model_dir)
    l2i = {label: i for i, label in enumerate(discover_labels(train))}
    windows = encode(tokenizer, [s.tokens for s in train], [s.tags for s in train], l2i, max_length=128, overlap=16)
    lengths = [len(w.input_ids) for w in windows]
    total = 0
    for batch in epoch_batches(len(windows), batch_size=cfg.train.batch_size, shards=workers, seed=cfg.seed,
                               epoch=0, lengths=lengths if cfg.train.group_by_length else None):  # fmt: skip
        for rank in range(workers):
            for micro in shard(batch, rank=rank, world_size=workers, grad_accum=1):
                if cfg.train.pack_sequences:  # MiniLM is a BERT: the run packs
                    rows = pack_rows(micro, lengths, cfg.model.max_length)
                    total += len(rows) * max(sum(lengths[i] for i in row) for row in rows)
                    continue
                pieces = split_by_length(micro, lengths) if cfg.train.split_by_length else [micro]
                total += sum(max(lengths[i] for i in piece) * len(piece) for piece in pieces)
    return total


def collate_fixed(features: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([f[k] for f in features]) for k in ("input_ids", "attention_mask", "labels")}


def measure(name: str, fn: Callable[[], Outcome]) -> Outcome:
    print(f"--- {name} ...", flush=True)
    with peak_rss() as peak:
        outcome = fn()
    outcome.peak_rss_mb = peak[0]
    print(f"    {outcome.tokens_per_s:8.1f} real tokens/s  ({outcome.seconds:.1f} s)", flush=True)
    return outcome


def main() -> int:
    mirror = os.environ.get("DRML_DATA_MIRROR", "../shared/data")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(packaged_minilm_dir()), help="model folder [packaged MiniLM]")
    parser.add_argument("--data", default=f"{mirror}/conll2003/eng.train", help="CoNLL-2003 training file (IOB1)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--contenders", default="seed,hf,hf-trainer,drml-1,drml-2")
    parser.add_argument("--no-pack", dest="pack", action="store_false", help="drml: length-split, not packed")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    args = parser.parse_args()
    contenders = args.contenders.split(",")

    sentences = read_conll(args.data, scheme="iob1")
    random.Random(0).shuffle(sentences)
    train = sentences[: args.steps * args.batch]
    dev = sentences[-32:]
    labels = discover_labels(sentences)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = load_tokenizer(args.model)
    chunks = [list(range(i, i + args.batch)) for i in range(0, len(train), args.batch)]
    print(f"{len(train)} sentences from {args.data}, {args.steps} steps of {args.batch}, model {args.model}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")

    outcomes: dict[str, Outcome] = {}
    if "seed" in contenders:
        fixed = hf_features(tokenizer, train, label2id, pad_to=128)
        batches = [collate_fixed([fixed[i] for i in c]) for c in chunks]
        outcomes["seed"] = measure("seed", lambda: plain_loop("seed", args.model, batches, labels, args.lr))
    if "hf" in contenders or "hf-trainer" in contenders:
        from transformers import DataCollatorForTokenClassification

        dynamic = hf_features(tokenizer, train, label2id, pad_to=None)
        collator = DataCollatorForTokenClassification(tokenizer)
        if "hf" in contenders:
            batches = [collator([dynamic[i] for i in c]) for c in chunks]
            outcomes["hf"] = measure("hf", lambda: plain_loop("hf", args.model, batches, labels, args.lr))
        if "hf-trainer" in contenders:
            try:
                outcomes["hf-trainer"] = measure(
                    "hf-trainer", lambda: run_trainer(args.model, dynamic, labels, args.steps, args.batch, args.lr)
                )
            except Exception as err:  # Trainer needs optional extras on some installs: report, go on
                print(f"    hf-trainer did not run here: {type(err).__name__}: {err}")
    for workers in (1, 2):
        name = f"drml-{workers}"
        if name in contenders:
            outcomes[name] = measure(name, lambda w=workers, n=name: run_drml(n, args.model, train, dev, w, args))

    print(f"\n{'contender':12} {'real tok/s':>10} {'pad eff':>8} {'peak RSS MB':>12} {'seconds':>8}  loss per 5 steps")
    for o in outcomes.values():
        curve = " ".join(
            f"{sum(o.losses[i : i + 5]) / len(o.losses[i : i + 5]):.3f}" for i in range(0, len(o.losses), 5)
        )
        print(f"{o.name:12} {o.tokens_per_s:10.1f} {o.efficiency:8.3f} {o.peak_rss_mb:12.0f} {o.seconds:8.1f}  {curve}")
    ratio = {}
    if "drml-1" in outcomes:
        for base in ("seed", "hf"):
            if base in outcomes:
                ratio[base] = outcomes["drml-1"].tokens_per_s / outcomes[base].tokens_per_s
        if "drml-2" in outcomes:
            ratio["2w"] = outcomes["drml-2"].tokens_per_s / outcomes["drml-1"].tokens_per_s
    if args.json:
        args.json.write_text(json.dumps({k: vars(v) for k, v in outcomes.items()}, indent=2))
    print(
        f"RESULT ratio_vs_seed={ratio.get('seed', float('nan')):.2f} ratio_vs_hf={ratio.get('hf', float('nan')):.2f} "
        f"scaling_2w={ratio.get('2w', float('nan')):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
