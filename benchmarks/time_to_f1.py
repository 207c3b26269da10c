"""Time to quality: the wall-clock time until dev entity F1 reaches each threshold, drml against the seed
pipeline and Hugging Face.

    DRML_DATA_MIRROR=../shared/data python benchmarks/time_to_f1.py --corpus crossner_politics --thresholds 0.45
    DRML_DATA_MIRROR=../shared/data python benchmarks/time_to_f1.py --corpus conll2003 --epochs 3 \\
        --thresholds 0.85,0.88 --eval-every 100 --max-minutes 40
    # each contender's best recipe on CoNLL (BENCHMARKS.md, session 31): drml's conll2003_fast.yaml in local mode
    DRML_DATA_MIRROR=../shared/data python benchmarks/time_to_f1.py --corpus conll2003 --epochs 3 \\
        --thresholds 0.85,0.88,0.90 --eval-every 100 --max-minutes 15 --head-lr 3e-3 \\
        --contenders seed,hf-trainer,drml-0 --drml-config configs/ner/conll2003_fast.yaml

Choose the thresholds before running. Every contender fine-tunes the same model (the packaged MiniLM) on
the corpus' train split with the same recipe (AdamW at ``--lr``, weight decay 0.01, batches of ``--batch``
sentences, 10% warm-up then linear decay over ``--epochs``, gradient norm clipped at 1.0) and is scored
the same way: dev entity F1 by drml's scorer (seqeval, strict IOB2, on words) after every
``--eval-every`` optimizer steps and at each epoch's end. The plain loops draw each epoch's sentences in
the order drml's epoch plan draws them (same seed). The clock starts before a contender loads its model
and its data; evaluation time is taken out of it for all; Ray's start (once, before the drml
contenders) is reported on its own. Contenders:

1. ``seed``  -- sentences truncated and padded to 128 sub-tokens, ``model(**batch).loss`` in a plain loop;
2. ``hf``    -- ``DataCollatorForTokenClassification`` dynamic padding in the same loop;
3. ``hf-trainer`` -- ``transformers.Trainer`` with length grouping (``train_sampling_strategy=
   "group_by_length"``, transformers 5's ``group_by_length=True``);
4. ``drml-1`` / ``drml-2`` -- ``drml finetune``'s Ray Train path with its defaults (packed rows), on one
   worker with every core / two workers; ``drml-0``: Ray Train's local mode (``scaling.num_workers: 0``), the same
   loop in the benchmark's process with every core, no worker group and no Ray started.

``--bf16`` trains every contender under bf16 autocast (the Trainer with ``bf16=True``), fp32 otherwise.
``--head-lr`` gives every contender's classification head its own rate without warm-up (drml's ``train.head_lr``;
the Trainer is handed that optimizer and schedule). ``--warmup-ratio`` is the share of the schedule over which
every contender's rate warms up (0.1 by default; a ``--drml-config`` keeps its own ``train.warmup_ratio`` unless
``--drml-set`` changes it).
``--drml-config configs/ner/conll2003_context.yaml`` runs the drml contenders with that file's recipe instead
(its epochs, batch, rates, document context, word shapes, averaging and decoding; the benchmark sets only the seed,
corpus, evaluation interval and workers, and ``--drml-set KEY=VALUE`` what it is told): each contender's best
recipe rather than a common one.

A contender stops when it has reached every threshold, after ``--max-minutes`` on its clock, or after
``--epochs``. Last lines, one per threshold:
``RESULT threshold=T speedup_vs_hf_trainer=X speedup_vs_seed=Y`` (the faster drml contender's time
against theirs; ``nan`` where one of them never got there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from finetune_throughput import collate_fixed, hf_features

from drml_ray.config import DataConfig, FinetuneConfig
from drml_ray.config_files import load_config
from drml_ray.data.load import NerCorpus, load_corpus
from drml_ray.ner.batching import epoch_batches
from drml_ray.ner.inference import predict_words
from drml_ray.ner.metrics import entity_report
from drml_ray.ner.modeling import load_tokenizer, packaged_minilm_dir, quiet_transformers
from drml_ray.ner.optimization import group_schedule, param_groups
from drml_ray.ray_env import ensure_ray


@dataclass
class Curve:
    """A contender's evaluations: (optimizer step, seconds on its clock, dev entity F1)."""

    name: str
    points: list[tuple[int, float, float]] = field(default_factory=list)

    def time_to(self, threshold: float) -> float | None:
        return next((seconds for _, seconds, f1 in self.points if f1 >= threshold), None)


class Clock:
    """Seconds since the contender started, evaluation excluded (:meth:`paused`)."""

    def __init__(self) -> None:
        self.started, self.excluded = time.perf_counter(), 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.excluded

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.excluded += time.perf_counter() - started


@dataclass
class Bench:
    args: argparse.Namespace
    corpus: NerCorpus

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.corpus.labels)}

    def dev_f1(self, model: torch.nn.Module, tokenizer) -> float:
        dev = self.corpus.splits["dev"]
        tags, _ = predict_words(model, tokenizer, [s.tokens for s in dev], max_length=128, overlap=16)
        return float(entity_report([s.tags for s in dev], tags)["micro"]["f1"])

    def done(self, curve: Curve, clock: Clock) -> bool:
        best = max((f1 for *_, f1 in curve.points), default=0.0)
        return best >= max(self.args.thresholds) or clock.seconds() > 60 * self.args.max_minutes

    def record(self, curve: Curve, clock: Clock, step: int, model: torch.nn.Module, tokenizer) -> bool:
        """Evaluate (off the clock), print and record; True when the contender is done."""
        with clock.paused():
            f1 = self.dev_f1(model, tokenizer)
        curve.points.append((step, clock.seconds(), f1))
        print(f"    {curve.name:10} step {step:5d}  {clock.seconds():7.1f} s  dev F1 {f1:.4f}", flush=True)
        return self.done(curve, clock)

    def fresh_model(self) -> torch.nn.Module:
        from transformers import AutoModelForTokenClassification

        torch.manual_seed(self.args.seed)
        labels = self.corpus.labels
        with quiet_transformers():  # (no load report of the new head)
            return AutoModelForTokenClassification.from_pretrained(
                self.args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=self.label2id
            )  # fmt: skip


def plain_loop(bench: Bench, name: str) -> Curve:
    """The loop users write (``seed``: padded to 128; ``hf``: dynamic padding), in drml's data order."""
    from transformers import DataCollatorForTokenClassification

    args, clock, curve = bench.args, Clock(), Curve(name)
    tokenizer, model = load_tokenizer(args.model), bench.fresh_model()
    train = bench.corpus.splits["train"]
    features = hf_features(tokenizer, train, bench.label2id, pad_to=128 if name == "seed" else None)
    collate = collate_fixed if name == "seed" else DataCollatorForTokenClassification(tokenizer)
    per_epoch = -(-len(train) // args.batch)
    optimizer, scheduler = optimizer_and_schedule(model, per_epoch * args.epochs, args)
    model.train()
    step = 0
    for epoch in range(args.epochs):
        for k, batch in enumerate(epoch_batches(len(features), batch_size=args.batch, shards=1, seed=args.seed,
                                                epoch=epoch)):  # fmt: skip
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(**collate([features[i] for i in batch])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            due = step % args.eval_every == 0 or k == per_epoch - 1
            if due and bench.record(curve, clock, step, model, tokenizer):
                return curve
    return curve


def optimizer_and_schedule(model: torch.nn.Module, total: int, args: argparse.Namespace, fused: bool = False):
    """AdamW with weight decay on matrices only (the head at ``--head-lr`` without warm-up when given), and the
    warm-up and linear decay of the recipe: drml's own groups and schedule."""
    optimizer = torch.optim.AdamW(param_groups(model, 0.01, args.head_lr), lr=args.lr, fused=fused)
    warmup = int(args.warmup_ratio * total)
    schedules = [group_schedule(group, warmup, total) for group in optimizer.param_groups]
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedules)


def run_trainer(bench: Bench) -> Curve:
    """``transformers.Trainer`` with length grouping; a callback evaluates at the same steps, off the clock."""
    from transformers import DataCollatorForTokenClassification, Trainer, TrainerCallback, TrainingArguments

    args, clock, curve = bench.args, Clock(), Curve("hf-trainer")
    tokenizer, model = load_tokenizer(args.model), bench.fresh_model()
    features = hf_features(tokenizer, bench.corpus.splits["train"], bench.label2id, pad_to=None)
    per_epoch = -(-len(features) // args.batch)

    class Evaluate(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            step = state.global_step
            if (step % args.eval_every == 0 or step % per_epoch == 0) and bench.record(
                curve, clock, step, kwargs["model"], tokenizer
            ):  # fmt: skip
                control.should_training_stop = True

    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch, num_train_epochs=args.epochs,
            learning_rate=args.lr, lr_scheduler_type="linear", weight_decay=0.01,
            warmup_steps=int(args.warmup_ratio * per_epoch * args.epochs),
            max_grad_norm=1.0, train_sampling_strategy="group_by_length", save_strategy="no", report_to=[],
            use_cpu=True, dataloader_num_workers=0, seed=args.seed, disable_tqdm=True, logging_strategy="no",
            bf16=args.bf16,
        )  # fmt: skip
        # (with --head-lr, the recipe's optimizer and schedule handed over: Trainer has no per-group rates;
        # fused, as Trainer's default optimizer is)
        own = optimizer_and_schedule(model, per_epoch * args.epochs, args, fused=True) if args.head_lr else (None, None)
        Trainer(model=model, args=training, train_dataset=features, callbacks=[Evaluate()], optimizers=own,
                data_collator=DataCollatorForTokenClassification(tokenizer)).train()  # fmt: skip
    return curve


@dataclass
class StopAtThreshold:
    """A drml loop callback: rank 0 logs each evaluation's wall time; every rank stops the run (by early
    stopping) once the best dev F1 reaches the last threshold or the time is up."""

    log: str
    target: float
    deadline: float

    def after_checkpoint(self, state, rank: int, run_dir: Path) -> None:
        if rank == 0:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"t": time.time(), **state.history[-1]}) + "\n")
        if state.best_f1 >= self.target or time.time() > self.deadline:
            state.evals_since_best = 10**9  # (patience is 10**6: worker.stopped() turns true)


def cpus_per_worker(workers: int) -> int:
    """Every core shared among the workers (local mode's one process takes them all)."""
    return max(1, (os.cpu_count() or 2) // max(1, workers))


def drml_recipe(args: argparse.Namespace, name: str, workers: int) -> FinetuneConfig:
    """drml's own recipe from a config file (``--drml-config``), with the benchmark's seed, evaluation interval,
    workers and corpus; its own epochs, batch, rates, context, word shapes and decoding."""
    cpus = cpus_per_worker(workers)
    overrides = [f"name={name}", f"seed={args.seed}", f"data.corpus={args.corpus}", "train.patience=1000000",
                 f"train.eval_every_steps={args.eval_every}", "train.eval_test=false",
                 f"scaling.num_workers={workers}", f"scaling.cpus_per_worker={cpus}", *args.drml_set]  # fmt: skip
    return load_config(args.drml_config, overrides, model=FinetuneConfig)


def run_drml(bench: Bench, workers: int) -> Curve:
    """``drml finetune``'s training path (run_training) with its defaults and the common recipe, or a config file's
    recipe (``--drml-config``); times from its evaluation log."""
    from drml_ray.ner.finetune import run_training

    args, curve = bench.args, Curve(f"drml-{workers}")
    cfg = drml_recipe(args, curve.name, workers) if args.drml_config else FinetuneConfig.model_validate({
        "name": curve.name, "seed": args.seed, "model": {"backbone": args.model, "max_length": 128},
        "train": {"epochs": args.epochs, "batch_size": args.batch, "lr": args.lr, "head_lr": args.head_lr,
                  "warmup_ratio": args.warmup_ratio, "patience": 10**6, "eval_every_steps": args.eval_every,
                  "log_every_steps": 50,
                  "precision": "bf16" if args.bf16 else "fp32", "pack_sequences": args.pack},
        "scaling": {"num_workers": workers, "cpus_per_worker": cpus_per_worker(workers)},
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as run_dir:
        log = Path(run_dir) / "evals.jsonl"
        started = time.time()
        stop = StopAtThreshold(str(log), max(args.thresholds), started + 60 * args.max_minutes)
        run_training(cfg, bench.corpus, Path(run_dir), loop_callbacks=[stop])
        for line in log.read_text().splitlines():
            event = json.loads(line)
            curve.points.append((int(event["step"]), event["t"] - started - event["eval_s"], event["dev_f1"]))
            print(f"    {curve.name:10} step {event['step']:5d}  {curve.points[-1][1]:7.1f} s  dev F1 "
                  f"{event['dev_f1']:.4f}")  # fmt: skip
    return curve


def report(curves: dict[str, Curve], thresholds: list[float]) -> None:
    print(f"\n{'contender':12}" + "".join(f"{f'to F1 {t:.2f}':>14}" for t in thresholds) + f"{'best F1':>9}")
    for curve in curves.values():
        times = [curve.time_to(t) for t in thresholds]
        cells = "".join(f"{f'{s:.1f} s' if s is not None else 'never':>14}" for s in times)
        print(f"{curve.name:12}{cells}{max((p[2] for p in curve.points), default=0.0):9.4f}")
    for t in thresholds:
        ours = [c.time_to(t) for n, c in curves.items() if n.startswith("drml")]
        best = min((s for s in ours if s is not None), default=None)
        ratios = {}
        for base in ("hf-trainer", "seed"):
            theirs = curves[base].time_to(t) if base in curves else None
            ratios[base] = theirs / best if theirs is not None and best else float("nan")
        print(f"RESULT threshold={t} speedup_vs_hf_trainer={ratios['hf-trainer']:.2f} "
              f"speedup_vs_seed={ratios['seed']:.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="crossner_politics", help="a registered corpus (drml data list)")
    parser.add_argument("--thresholds", default="0.45", help="dev entity F1 thresholds, comma-separated")
    parser.add_argument("--max-minutes", type=float, default=5.0, help="per contender, on its clock")
    parser.add_argument("--epochs", type=int, default=20, help="of the schedule (linear decay over them)")
    parser.add_argument("--eval-every", type=int, default=1000, help="optimizer steps (and each epoch's end)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.1, help="of the schedule (drml: unless its config's)")
    parser.add_argument("--head-lr", type=float, help="every contender: the head's own rate, no warm-up")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", default=str(packaged_minilm_dir()))
    parser.add_argument("--contenders", default="seed,hf,hf-trainer,drml-1,drml-2")
    parser.add_argument("--bf16", action="store_true", help="every contender trains under bf16 autocast")
    parser.add_argument("--no-pack", dest="pack", action="store_false", help="drml: length-split, not packed")
    parser.add_argument("--json", type=Path, help="also write the curves here")
    parser.add_argument("--drml-config", type=Path, help="drml contenders: this config's recipe, not the common one")
    parser.add_argument("--drml-set", action="append", default=[], metavar="KEY=VALUE",
                        help="with --drml-config: an override of that file (drml's --set), repeatable")  # fmt: skip
    args = parser.parse_args()
    args.thresholds = sorted(float(t) for t in args.thresholds.split(","))
    contenders = args.contenders.split(",")
    for name in contenders if args.drml_config else []:  # a recipe a contender cannot run fails before any runs
        if name.startswith("drml"):
            drml_recipe(args, name, int(name.split("-")[1]))
    bench = Bench(args, load_corpus(DataConfig(corpus=args.corpus)))
    print(f"{bench.corpus.describe()}; thresholds {args.thresholds}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs")  # fmt: skip
    curves: dict[str, Curve] = {}
    ray_started = False
    for name in contenders:
        print(f"--- {name}", flush=True)
        if name.startswith("drml") and name != "drml-0" and not ray_started:  # (local mode needs no Ray)
            started = time.perf_counter()
            ensure_ray()
            ray_started = True
            print(f"    Ray started in {time.perf_counter() - started:.1f} s (not on any contender's clock)")
        if name.startswith("drml"):
            curves[name] = run_drml(bench, int(name.split("-")[1]))
        elif name == "hf-trainer":
            curves[name] = run_trainer(bench)
        else:
            curves[name] = plain_loop(bench, name)
    report(curves, args.thresholds)
    if args.json:
        args.json.write_text(json.dumps({n: asdict(c) for n, c in curves.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
