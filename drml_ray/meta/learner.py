"""The NER side of meta-learning, in plain torch: one process's episodes, adaptations and exports.

A :class:`NerLearner` holds one token-classification model whose classifier is rebuilt for each
task's label set by the label-name head (:mod:`drml_ray.meta.label_head`). The *meta-parameters*
theta are the encoder's weights (``encoder.*``) and the head generator's (``head.*``); a task's
classifier rows are built from them and its label names, adapted with the encoder in the inner
loop, and their meta-gradient is pulled back to the generator through the chain rule (the
label-name embeddings held fixed). The Ray actors of :mod:`drml_ray.meta.driver` each own one learner.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from drml_ray.config import ModelConfig, TaskData
from drml_ray.data.conll import Sentence, discover_labels
from drml_ray.data.tags import entity_types
from drml_ray.meta.config import AdaptSettings, MetaSettings
from drml_ray.meta.label_head import LabelNameHead, save_generator, type_embeddings, type_name
from drml_ray.meta.tasks import Task, load_task, sample_episode, sample_shots
from drml_ray.metagrad import Algorithm, Params, adapt, fomaml_gradient, inner_optimizer, reptile_gradient
from drml_ray.ner.batching import collate, epoch_batches, split_by_length
from drml_ray.ner.features import Window, encode
from drml_ray.ner.inference import predict_words
from drml_ray.ner.metrics import score_split
from drml_ray.ner.modeling import build_model, load_tokenizer, save_hf_folder
from drml_ray.ner.optimization import label_count, lr_factor, make_optimizer, token_loss_sum, train_step
from drml_ray.runtime.runfiles import replace_dir

ENCODER, HEAD = "encoder.", "head."


def adaptation_steps(n_sentences: int, settings: AdaptSettings) -> int:
    """The adaptation budget of a cell: ``epochs`` passes over the shots, clamped to [min_steps, max_steps].

    >>> from drml_ray.meta.config import AdaptSettings
    >>> [adaptation_steps(n, AdaptSettings()) for n in (10, 50, 200, 1000)]
    [40, 80, 260, 400]
    """
    steps = settings.epochs * math.ceil(n_sentences / settings.batch_size)
    return max(settings.min_steps, min(settings.max_steps, steps))


class NerLearner:
    """One model, rebuilt per task: episodes (meta-gradients), adaptations, scoring, exports."""

    def __init__(self, model_cfg: ModelConfig, data: TaskData, seed: int, device: str = "cpu"):
        self.model_cfg = model_cfg.model_copy(update={"strategy": "full"})
        self.data = data
        self.device = torch.device(device)
        self.tokenizer = load_tokenizer(model_cfg.backbone)
        self.model = build_model(self.model_cfg, ["O"], seed=seed, vocab_size=len(self.tokenizer)).to(self.device)
        self.generator = LabelNameHead(self.model.config.hidden_size).to(self.device)
        # On a GPU with bf16, forward passes run under bf16 autocast (weights and optimizer stay fp32).
        self._bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.tasks: dict[str, Task] = {}

    # --- tasks and batches ---------------------------------------------------------------------

    def task(self, spec: str, max_train_sentences: int | None = None) -> Task:
        if spec not in self.tasks:
            self.tasks[spec] = load_task(spec, self.data, max_train_sentences=max_train_sentences)
        return self.tasks[spec]

    def windows(self, sentences: Sequence[Sentence], labels: Sequence[str]) -> list[Window]:
        label2id = {label: i for i, label in enumerate(labels)}
        return encode(
            self.tokenizer, [s.tokens for s in sentences], [s.tags for s in sentences], label2id,
            max_length=self.model_cfg.max_length, overlap=self.model_cfg.window_overlap,
            label_all_tokens=self.model_cfg.label_all_tokens,
        )  # fmt: skip

    def _collate(self, windows: Sequence[Window]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in collate(windows, self.tokenizer.pad_token_id).items()}

    def _mean_loss(self, windows: Sequence[Window]) -> torch.Tensor:
        """Mean token loss of a batch, computed in length-sorted pieces (same value, less padding)."""
        lengths = [len(w.input_ids) for w in windows]
        total = torch.zeros((), device=self.device)
        for piece in split_by_length(range(len(windows)), lengths):
            batch = self._collate([windows[i] for i in piece])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._bf16):
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            total = total + token_loss_sum(logits, batch["labels"])
        return total / max(1, label_count([w.labels for w in windows]))

    # --- meta-parameters -----------------------------------------------------------------------

    def meta_parameters(self) -> dict[str, torch.nn.Parameter]:
        """theta: the encoder's weights and the head generator's, by name."""
        named = {ENCODER + n: p for n, p in self.model.named_parameters() if not n.startswith("classifier.")}
        return named | {HEAD + n: p for n, p in self.generator.named_parameters()}

    def meta_state(self) -> Params:
        return {n: p.detach().cpu().clone() for n, p in self.meta_parameters().items()}

    @torch.no_grad()
    def load_meta(self, theta: Params) -> None:
        params = self.meta_parameters()
        missing = set(params) - set(theta)
        if missing:
            raise KeyError(f"meta-parameters missing from the broadcast state: {sorted(missing)[:3]} ...")
        for name, p in params.items():
            p.copy_(theta[name])

    def _set_head(self, labels: Sequence[str], weight: torch.Tensor, bias: torch.Tensor) -> None:
        head = torch.nn.Linear(weight.shape[1], weight.shape[0], device=self.device)
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        self.model.classifier = head
        self.model.num_labels = len(labels)
        self.model.config.update({
            "num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        })  # fmt: skip

    def _type_embeddings(self, labels: Sequence[str]) -> dict[str, torch.Tensor]:
        """e(X) for every type of ``labels`` from the current encoder (eval mode, no gradient)."""
        kinds = entity_types(labels)
        if not kinds:
            return {}
        encoder = self.model.base_model
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            emb = type_embeddings(encoder, self.tokenizer, [type_name(k) for k in kinds])
        encoder.train(was_training)
        return {k: emb[i] for i, k in enumerate(kinds)}

    def build_head(self, labels: Sequence[str]) -> None:
        """The classifier for ``labels`` from the generator and the labels' names (no gradient)."""
        with torch.no_grad():
            weight, bias = self.generator(labels, self._type_embeddings(labels))
        self._set_head(labels, weight, bias)

    # --- one episode ---------------------------------------------------------------------------

    def episode_gradient(
        self, theta: Params, task: Task, seed: int, settings: MetaSettings, algorithm: Algorithm
    ) -> tuple[Params, dict[str, float]]:
        """Adapt theta to one episode of ``task``; return the episode's meta-gradient and its losses."""
        self.load_meta(theta)
        episode = sample_episode(task, settings.shots, settings.query, random.Random(seed), settings.n_way)
        torch.manual_seed(seed)
        embeddings = self._type_embeddings(episode.labels)
        rows, biases = self.generator(episode.labels, embeddings)  # kept in the graph for the pull-back
        self._set_head(episode.labels, rows.detach(), biases.detach())
        support = self.windows(episode.support, episode.labels)
        query = self.windows(episode.query, episode.labels)
        self.model.train()
        optimizer = inner_optimizer(self.model.parameters(), settings.inner_optimizer, settings.inner_lr)
        losses = adapt(lambda step: self._mean_loss(support), settings.inner_steps, optimizer)
        encoder = {ENCODER + n: p for n, p in self.model.named_parameters() if not n.startswith("classifier.")}
        head = self.model.classifier
        if algorithm == "reptile":
            grad = reptile_gradient({n: theta[n] for n in encoder}, encoder)
            grad_rows, grad_bias = rows.detach() - head.weight.detach(), biases.detach() - head.bias.detach()
            with torch.no_grad():
                query_loss = float(self._mean_loss(query))
        else:
            loss = self._mean_loss(query)
            query_loss = float(loss.detach())
            named = list(encoder.items()) + [("classifier.weight", head.weight), ("classifier.bias", head.bias)]
            grad = fomaml_gradient(named, loss)
            grad_rows, grad_bias = grad.pop("classifier.weight"), grad.pop("classifier.bias")
        # The head's meta-gradient, pulled back through the generator (label-name embeddings fixed).
        pulled = torch.autograd.grad(
            [rows, biases], list(self.generator.parameters()), grad_outputs=[grad_rows, grad_bias], allow_unused=True
        )
        for (name, p), g in zip(self.generator.named_parameters(), pulled, strict=True):
            grad[HEAD + name] = (g if g is not None else torch.zeros_like(p)).detach()
        stats = {"support_loss_first": losses[0], "support_loss_last": losses[-1], "query_loss": query_loss}
        return grad, stats  # on the learner's device

    # --- adaptation and scoring ----------------------------------------------------------------

    def finetune(self, sentences: Sequence[Sentence], labels: Sequence[str], **kwargs) -> float:
        """Plain fine-tuning of the current model on ``sentences`` (see :meth:`train_mixture`)."""
        return self.train_mixture([sentences], labels, **kwargs)

    def train_mixture(
        self, groups: Sequence[Sequence[Sentence]], labels: Sequence[str], *, steps: int, lr: float,
        batch_size: int, seed: int, warmup_ratio: float = 0.1, weight_decay: float = 0.01,
        max_grad_norm: float = 1.0, progress: str | None = None,
    ) -> float:  # fmt: skip
        """Fine-tune the current model: AdamW with linear warm-up and decay; each step takes the next
        batch of one group drawn uniformly (each group shuffled per pass). Returns the last loss."""
        windows = [self.windows(g, labels) for g in groups]
        lengths = [[len(w.input_ids) for w in ws] for ws in windows]
        optimizer = make_optimizer(self.model, lr, weight_decay, fused=True)
        scaler = torch.amp.GradScaler(enabled=False)
        warmup = int(warmup_ratio * steps)
        rng = random.Random(seed)
        torch.manual_seed(seed)
        self.model.train()
        plans: list[list[list[int]]] = [[] for _ in groups]
        passes = [0] * len(groups)
        loss = torch.zeros(())
        started = time.perf_counter()
        for step in range(steps):
            g = rng.randrange(len(groups))
            if not plans[g]:
                plans[g] = epoch_batches(len(windows[g]), batch_size=batch_size, shards=1, seed=seed + g,
                                         epoch=passes[g])  # fmt: skip
                passes[g] += 1
            batch = plans[g].pop(0)
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step + 1, warmup, steps)
            pieces = [self._collate([windows[g][i] for i in piece]) for piece in split_by_length(batch, lengths[g])]
            loss = train_step(self.model, pieces, optimizer=optimizer, scaler=scaler,
                              global_labels=label_count([windows[g][i].labels for i in batch]),
                              max_grad_norm=max_grad_norm,
                              autocast_dtype=torch.bfloat16 if self._bf16 else None)  # fmt: skip
            if progress and ((step + 1) % max(1, steps // 20) == 0 or step + 1 == steps):
                rate = (step + 1) / (time.perf_counter() - started)
                print(f"[drml] {progress}: step {step + 1}/{steps}, loss {float(loss):.4f}, {rate:.2f} steps/s",
                      flush=True)  # fmt: skip
        return float(loss)

    def f1(self, sentences: Sequence[Sentence]) -> float:
        """Entity micro F1 (seqeval, strict IOB2) of the current model on ``sentences``."""
        pred, _ = predict_words(
            self.model, self.tokenizer, [s.tokens for s in sentences],
            max_length=self.model_cfg.max_length, overlap=self.model_cfg.window_overlap,
            decoding=self.model_cfg.decoding,
        )  # fmt: skip
        return float(score_split([s.tags for s in sentences], pred)["entity"]["micro"]["f1"])

    def load_start(self, start: str, labels: Sequence[str], seed: int) -> None:
        """Replace the model by a starting point for ``labels``: a backbone, or a model folder (its
        head rows carried over by label, else built from label names, else random)."""
        cfg = self.model_cfg.model_copy(update={"backbone": start})
        self.model = build_model(cfg, list(labels), seed=seed, vocab_size=len(self.tokenizer)).to(self.device)

    def adapt_and_score(
        self, start: str | Params, task: Task, shots: int | str, seed: int, settings: AdaptSettings
    ) -> dict[str, float]:
        """One cell of the protocol: from ``start`` (a folder/backbone, or theta), fine-tune on ``shots``
        train sentences drawn with ``seed``, pick the learning rate on dev, score test."""
        started = time.perf_counter()
        train = sample_shots(task.splits["train"], shots, seed)
        dev = task.splits["dev"][: settings.dev_sentences]
        test = task.splits["test"][: settings.test_sentences]
        steps = adaptation_steps(len(train), settings)
        best: tuple[float, float, dict] | None = None
        for lr in settings.lrs:
            self._start(start, task.labels, seed)
            self.finetune(train, task.labels, steps=steps, lr=lr, batch_size=settings.batch_size, seed=seed)
            dev_f1 = self.f1(dev)
            if best is None or dev_f1 > best[0]:
                best = (dev_f1, lr, {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()})
        assert best is not None
        self.model.load_state_dict(best[2])
        return {"f1": self.f1(test), "dev_f1": best[0], "lr": best[1], "steps": steps,
                "shots": len(train), "seconds": time.perf_counter() - started}  # fmt: skip

    def _start(self, start: str | Params, labels: Sequence[str], seed: int) -> None:
        if isinstance(start, str):
            self.load_start(start, labels, seed)
        else:
            self.load_meta(start)
            self.build_head(labels)

    def heldout_f1(self, theta: Params, task: Task, settings: MetaSettings, lr: float, seed: int) -> float:
        """Meta-training's yardstick: adapt theta on ``eval_shots`` of a held-out task, dev F1."""
        self._start(theta, task.labels, seed)
        train = sample_shots(task.splits["train"], settings.eval_shots, seed)
        self.finetune(train, task.labels, steps=settings.eval_steps, lr=lr, batch_size=16, seed=seed)
        return self.f1(task.splits["dev"][: settings.eval_dev_sentences])

    # --- starting points and exports ------------------------------------------------------------

    def pretrain(
        self, backbone: str, tasks: Sequence[Task], *, steps: int, lr: float, batch_size: int, seed: int,
        progress: str = "pre-training",
    ) -> list[str]:  # fmt: skip
        """Fine-tune ``backbone`` on several tasks at once, one head over the union of their labels
        (each step a batch of one task drawn uniformly). Returns that label list."""
        labels = discover_labels(*(t.splits["train"] for t in tasks))
        self.load_start(backbone, labels, seed)
        self.train_mixture([t.splits["train"] for t in tasks], labels, steps=steps, lr=lr, batch_size=batch_size,
                           seed=seed, progress=progress)  # fmt: skip
        return labels

    def save(self, folder: Path, *, with_generator: bool = False) -> None:
        """Save the current model as a Hugging Face folder (atomically), windowing settings included."""
        tmp = folder.with_name(f".{folder.name}.tmp")
        self.model.config.drml = {"max_length": self.model_cfg.max_length, "window_overlap":
                                  self.model_cfg.window_overlap, "decoding": self.model_cfg.decoding}  # fmt: skip
        save_hf_folder(self.model, self.tokenizer, tmp)
        if with_generator:
            save_generator(self.generator, tmp)
        replace_dir(tmp, folder)

    def export(self, theta: Params, labels: Sequence[str], folder: Path) -> None:
        """The meta-learned initialisation for a label set: theta's encoder, a head built from the
        labels' names, and the generator (so ``drml finetune`` can build heads for other label sets)."""
        self.load_meta(theta)
        self.build_head(labels)
        self.save(folder, with_generator=True)
