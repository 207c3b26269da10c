"""The NER meta-learning experiment file (``drml meta-train`` and ``drml meta-eval``): ``meta:`` and ``eval:``
sections on top of the shared model and task-data sections."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import field_validator

from drml_ray.config import (
    ActorSettings,
    Count,
    Distinct,
    Experiment,
    ModelConfig,
    ModelPath,
    NonEmpty,
    NonNegativeFloat,
    Rate,
    Section,
    Seed,
    TaskData,
    TaskSpec,
    full_model,
)

Shots = int | Literal["all"]
METHODS = ("direct", "conll_then_finetune", "multitask_then_finetune", "reptile", "fomaml")
Method = Literal["direct", "conll_then_finetune", "multitask_then_finetune", "reptile", "fomaml"]


class MetaSettings(ActorSettings):
    """Meta-training (``drml meta-train``): Reptile / first-order MAML over a distribution of NER tasks."""

    gpus_per_worker: NonNegativeFloat = 0.0
    """GPUs reserved per actor (a fraction shares one, e.g. 0.5 for two actors); > 0 trains on CUDA with bf16. On one
    GPU, ``workers: 1`` keeps theta and the outer optimizer on the card instead of broadcasting theta every step."""
    algorithms: Distinct[Literal["reptile", "fomaml"]] = ["reptile", "fomaml"]
    """Algorithms to meta-train, one after the other; each writes ``<run>/<algorithm>/``."""
    train_tasks: NonEmpty[TaskSpec] = [
        "conll2003", "crossner_science", "crossner_music", "crossner_literature", "crossner_ai"
    ]  # fmt: skip
    """Meta-training tasks: registered corpora, ``generated:PER,LOC`` (the generated corpus, those types), or folders
    of your own ``train.*``, ``dev.*`` and ``test.*`` files (a path: ``./data/clinical``)."""
    heldout_tasks: Distinct[TaskSpec] = ["crossner_politics"]
    """Held-out tasks: only their label names are seen before adaptation; their dev set scores meta-training."""
    meta_steps: Count = 150
    """Outer updates."""
    meta_batch: Count = 4
    """Tasks (episodes) per outer update, adapted in parallel over ``workers``."""
    inner_steps: Count = 4
    """Optimizer steps on an episode's support set."""
    inner_lr: Rate = 5e-5
    """Learning rate of the inner optimizer."""
    inner_optimizer: Literal["adam", "sgd"] = "adam"
    """Inner optimizer; its state starts fresh in every episode."""
    meta_lr: Rate = 1.0
    """Reptile's outer step size epsilon (with ``meta_optimizer: sgd``, 1.0 moves to the mean adapted weights)."""
    meta_optimizer: Literal["sgd", "adam"] = "sgd"
    """Reptile's outer optimizer: ``sgd``: theta -= meta_lr * g (the paper's update); ``adam``: Adam on g."""
    fomaml_lr: Rate = 5.0e-5
    """FOMAML's outer learning rate (g is a query-loss gradient, so a fine-tuning-sized step)."""
    fomaml_optimizer: Literal["sgd", "adam"] = "adam"
    """FOMAML's outer optimizer (Adam on the meta-gradient, as in the MAML paper)."""
    meta_lr_decay: bool = True
    """Decay the outer learning rate linearly to 0 over ``meta_steps`` (as in the Reptile paper)."""
    shots: Count = 8
    """Support sentences per episode."""
    query: Count = 8
    """Query sentences per episode (FOMAML's outer loss; disjoint from the support set)."""
    n_way: Count | None = None
    """Restrict each episode to N entity types drawn at random (others become O); ``None``: all the task's types."""
    eval_every: Count = 25
    """Meta-steps between evaluations on the held-out tasks' dev sets (after adaptation) and checkpoints."""
    eval_shots: Count = 10
    """Support sentences the held-out evaluation adapts on during meta-training."""
    eval_steps: Count = 20
    """Adaptation steps of that evaluation."""
    eval_dev_sentences: Count = 200
    """Dev sentences scored by that evaluation (the first N)."""

    def check(self) -> None:
        overlap = set(self.train_tasks) & set(self.heldout_tasks)
        if overlap:
            raise ValueError(f"tasks both meta-trained and held out: {', '.join(sorted(overlap))}")


class AdaptSettings(Section):
    """The adaptation protocol of ``drml meta-eval``: every method gets the same budget on each cell."""

    methods: Distinct[Method] = list(METHODS)
    """Starting points compared (see the README's meta-learning section)."""
    shots: Distinct[Shots] = [10, 25, 50, 100, "all"]
    """Labelled target sentences adapted on (drawn per seed from the train split); ``all``: the whole split."""
    seeds: Distinct[Seed] = [1, 2, 3]
    """Seeds of the shot sample, the head initialisation and the data order."""
    lrs: Distinct[Rate] = [5e-5]
    """Learning rates tried per cell; the one with the best dev F1 is scored on test."""
    epochs: Count = 20
    """Adaptation budget: passes over the shots (steps = epochs x ceil(shots / batch_size), clamped)."""
    min_steps: Count = 40
    """Fewest adaptation steps (few shots still get a real budget)."""
    max_steps: Count = 400
    """Most adaptation steps."""
    batch_size: Count = 16
    """Sentences per adaptation step."""
    dev_sentences: Count | None = 200
    """Dev sentences used to pick the learning rate (the first N); ``None``: all."""
    test_sentences: Count | None = None
    """Test sentences scored (the first N); ``None``: the whole test split."""
    pretrain_steps: Count = 900
    """Steps that train the ``conll_then_finetune`` and ``multitask_then_finetune`` starting points."""
    pretrain_lr: Rate = 5e-5
    """Learning rate of that pre-training."""
    conll_task: TaskSpec = "conll2003"
    """The task the ``conll_then_finetune`` start is pre-trained on (tests use a generated one)."""
    conll_model: ModelPath | None = None
    """An existing CoNLL-2003 model folder (e.g. ``runs/conll2003/best``) used instead of pre-training one."""
    workers: Count = 2
    """Ray actors adapting cells in parallel."""

    @field_validator("shots", mode="before")
    @classmethod
    def _positive_shots(cls, shots: Any) -> Any:
        """One message for any wrong item (pydantic's would be one per member of ``int | 'all'``)."""
        if not isinstance(shots, list):
            return shots
        if not all(k == "all" or (str(k).isdigit() and int(k) >= 1) for k in shots):
            raise ValueError("shots are positive integers or 'all'")
        return [k if k == "all" else int(k) for k in shots]


class MetaExperiment(Experiment):
    """One meta-learning experiment: what ``drml meta-train`` and ``drml meta-eval`` run."""

    model: Annotated[ModelConfig, full_model("meta-learning", "the inner loop moves every weight")] = ModelConfig()
    """Backbone and windowing (``strategy`` must be ``full``: meta-learning moves every weight)."""
    data: TaskData = TaskData()
    meta: MetaSettings = MetaSettings()
    eval: AdaptSettings = AdaptSettings()
