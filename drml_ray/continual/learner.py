"""The plain-torch side of a continual run (no Ray): what each experience trains on, the loss terms the Ray
Train workers add (EWC, distillation), the EWC state after an experience, and a model's row of R.

Models are Hugging Face folders: experience ``i`` starts from the folder experience ``i - 1`` exported,
its classifier grown by :func:`~drml_ray.ner.modeling.build_model` (a label seen before keeps its saved row,
bit for bit; a new one gets a fresh seeded row, or one from the label's name under a meta-learned start).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from drml_ray.continual.config import ContinualExperiment, uses
from drml_ray.continual.protocols import Experience
from drml_ray.continual.strategies import diagonal_fisher, distillation_sum, ewc_penalty, online_fisher
from drml_ray.data.conll import Sentence
from drml_ray.data.tags import entity_types
from drml_ray.meta.tasks import keep_types
from drml_ray.ner.batching import collate, model_inputs
from drml_ray.ner.features import IGNORE, encode
from drml_ray.ner.inference import predict_words
from drml_ray.ner.metrics import entity_report
from drml_ray.ner.modeling import build_model, load_tokenizer
from drml_ray.ner.optimization import ExtraLoss, label_count, token_loss_sum
from drml_ray.runtime.runfiles import with_umask

EWC_FILE = "ewc.safetensors"


def merge_gold(tag_lists: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """One sentence's tags from several experiences' (disjoint types): the first non-``O`` tag at each word.

    >>> merge_gold([("B-LOC", "O"), ("O", "B-PER")])
    ('B-LOC', 'B-PER')
    """
    return tuple(next((t for t in column if t != "O"), "O") for column in zip(*tag_lists, strict=True))


def only_types(tags: Sequence[Sequence[str]], types: Sequence[str]) -> list[tuple[str, ...]]:
    """Predicted tags with every entity outside ``types`` turned into ``O``."""
    return [s.tags for s in keep_types([Sentence(tuple(t), tuple(t)) for t in tags], set(types))]


def shared_split(seen: Sequence[Experience], split: str) -> list[Sentence]:
    """The ``dev`` or ``test`` sentences of experiences that share them (class-incremental), every seen
    type labelled."""
    parts = [getattr(e, split) for e in seen]
    return [Sentence(group[0].tokens, merge_gold([s.tags for s in group])) for group in zip(*parts, strict=True)]


def training_data(
    strategy: str, seen: Sequence[Experience], replay: list[Sentence], labels: Sequence[str]
) -> list[Sentence]:
    """The current experience; with replay (alone or combined), plus the buffer; joint: every experience seen,
    each sentence labelled with every type seen so far."""
    if strategy == "joint":
        types = set(entity_types(labels))
        return [s for exp in seen for s in keep_types(exp.full_train, types)]
    return list(seen[-1].train) + (replay if uses(strategy, "replay") else [])


def dev_split(seen: Sequence[Experience]) -> list[Sentence]:
    """What picks an experience's best checkpoint: the dev sentences of every experience seen (experiences
    sharing theirs: once, with all their types)."""
    groups: dict[str, list[Experience]] = {}
    for e in seen:
        groups.setdefault(e.test_key, []).append(e)
    return [s for group in groups.values() for s in shared_split(group, "dev")]


def load_model(cfg: ContinualExperiment, source: str, labels: Sequence[str]) -> tuple[torch.nn.Module, Any]:
    model = build_model(cfg.model.model_copy(update={"backbone": source}), list(labels), seed=cfg.seed)
    return model.eval(), load_tokenizer(source)


def score(cfg: ContinualExperiment, source: str, labels: Sequence[str], found: Sequence[Experience],
          trained: int) -> dict[str, Any]:  # fmt: skip
    """A row of R: test entity micro F1 on each experience (its types only); the mean dev F1 over the
    ``trained`` experiences (what a search optimises); and, where the experiences share one test set
    (class-incremental), micro and macro F1 over every type trained on."""
    model, tokenizer = load_model(cfg, source, labels)
    predicted: dict[tuple[str, str], list[list[str]]] = {}

    def f1(exp: Experience, split: str) -> float:
        key = (exp.test_key, split)
        sentences = getattr(exp, split)
        if key not in predicted:
            windows = {"max_length": cfg.model.max_length, "overlap": cfg.model.window_overlap,
                       "decoding": cfg.model.decoding, "casing": cfg.model.shapes}  # fmt: skip
            predicted[key] = predict_words(model, tokenizer, [s.tokens for s in sentences], **windows)[0]
        gold = [s.tags for s in sentences]
        return float(entity_report(gold, only_types(predicted[key], exp.types))["micro"]["f1"])

    row = {"R": [f1(exp, "test") for exp in found], "seen": None}
    row["dev_f1"] = sum(f1(exp, "dev") for exp in found[:trained]) / max(1, trained)
    if len({e.test_key for e in found}) == 1 and trained:
        seen = found[:trained]
        gold = [s.tags for s in shared_split(seen, "test")]
        report = entity_report(
            gold, only_types(predicted[(seen[0].test_key, "test")], [t for e in seen for t in e.types])
        )
        row["seen"] = {"micro_f1": float(report["micro"]["f1"]), "macro_f1": float(report["macro"]["f1"])}
    return row


def save_ewc_state(cfg: ContinualExperiment, source: str, labels: Sequence[str], exp: Experience,
                   previous: str | None, out: str) -> None:  # fmt: skip
    """After an experience: the diagonal Fisher of its loss at the trained model ``source``, added to the
    decayed one of ``previous`` (online EWC), and the anchor theta*, written to ``out`` (safetensors)."""
    model, tokenizer = load_model(cfg, source, labels)
    s = cfg.continual
    windows = encode(tokenizer, [x.tokens for x in exp.train], [x.tags for x in exp.train],
                     {label: i for i, label in enumerate(labels)}, max_length=cfg.model.max_length,
                     overlap=cfg.model.window_overlap, casing=cfg.model.shapes)  # fmt: skip
    order = random.Random(cfg.seed).sample(range(len(windows)), len(windows))
    size = cfg.train.batch_size
    batches = [[windows[j] for j in order[k : k + size]] for k in range(0, len(order), size)][: s.fisher_batches]
    params = dict(model.named_parameters())

    def loss_of(batch: list) -> torch.Tensor:
        inputs = collate(batch, tokenizer.pad_token_id)  # (with token_type_ids when the windows carry shapes)
        logits = model(**model_inputs(inputs)).logits
        return token_loss_sum(logits, inputs["labels"]) / max(1, label_count([w.labels for w in batch]))

    fisher = diagonal_fisher(params, (lambda b=b: loss_of(b) for b in batches))
    if previous is not None:
        fisher = online_fisher(read_ewc_state(previous)[0], fisher, s.ewc_gamma)
    state = {f"fisher/{n}": f.contiguous() for n, f in fisher.items()}
    state |= {f"anchor/{n}": p.detach().contiguous() for n, p in params.items()}
    tmp = f"{out}.tmp"
    save_file(state, tmp)
    with_umask(tmp)  # (safetensors writes 0600)
    os.replace(tmp, out)


def read_ewc_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The Fisher and the anchor saved by :func:`save_ewc_state` (safetensors: nothing is unpickled)."""
    state = load_file(str(path))
    part = lambda prefix: {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}  # noqa: E731
    return part("fisher/"), part("anchor/")


def ewc_loss(model: torch.nn.Module, device: torch.device, path: str, weight: float) -> ExtraLoss:
    """The EWC term of a Ray Train worker: ``weight/2 * sum F (theta - theta*)^2``, each micro-batch its share."""
    fisher, anchor = ({k: v.to(device) for k, v in d.items()} for d in read_ewc_state(path))
    params = dict(model.named_parameters())

    def term(batch: dict[str, torch.Tensor], logits: torch.Tensor, scale: float) -> torch.Tensor:
        share = (batch["labels"] != IGNORE).sum() * scale  # (summed over micro-batches and workers: 1)
        return weight / 2 * ewc_penalty(params, fisher, anchor) * share

    return term


def lwf_loss(model: torch.nn.Module, device: torch.device, teacher: str, labels: list[str], temperature: float,
             weight: float, cfg: dict) -> ExtraLoss:  # fmt: skip
    """ExtendNER's loss on a Ray Train worker: a word labelled with a new type keeps its cross-entropy; a word
    labelled ``O`` (which may be an old type the new data does not label) learns instead from the previous
    experience's model (``teacher``, its ``labels``): distillation on the old rows. The training loop adds
    the cross-entropy of every labelled word, so this term takes back the ``O`` words' share of it (the same
    value from the same logits: its gradient cancels exactly)."""
    old, _ = load_model(ContinualExperiment.model_validate(cfg), teacher, labels)
    old.to(device)
    outside = labels.index("O")

    def term(batch: dict[str, torch.Tensor], logits: torch.Tensor, scale: float) -> torch.Tensor:
        with torch.no_grad():
            target = old(**model_inputs(batch)).logits
        o_words = batch["labels"] == outside
        o_only = torch.where(o_words, batch["labels"], torch.full_like(batch["labels"], IGNORE))
        distilled = weight * distillation_sum(logits, target, o_words, temperature)
        return (distilled - token_loss_sum(logits, o_only)) * scale

    return term
