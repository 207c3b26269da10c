"""The continual-learning experiment file (``drml continual``): a ``continual:`` section."""

from __future__ import annotations

from typing import Annotated, Literal

from drml_ray.config import (
    Count,
    Discount,
    Distinct,
    Experiment,
    FinetuneConfig,
    ModelConfig,
    ModelPath,
    NonEmpty,
    NonNegative,
    NonNegativeFloat,
    Rate,
    ScalingSettings,
    Section,
    TaskData,
    TaskSpec,
    TrainConfig,
    check_train_scaling,
    full_model,
)

Strategy = Literal["naive", "replay", "ewc", "lwf", "joint", "ewc+replay", "lwf+replay"]
STRATEGIES = ("naive", "replay", "ewc", "lwf", "joint")
"""What ``continual.strategies`` runs by default (the combinations are asked for by name)."""


def uses(strategy: str, part: str) -> bool:
    """Whether ``strategy`` (a name, or two joined by ``+``) includes ``part``.

    >>> uses("lwf+replay", "replay"), uses("lwf+replay", "ewc"), uses("replay", "replay")
    (True, False, True)
    """
    return part in strategy.split("+")


class ContinualSettings(Section):
    """The experiences, the strategies compared on them, and each strategy's settings."""

    protocol: Literal["domain", "class"] = "domain"
    """``domain``: the ``experiences`` tasks one after the other, the label space growing (``PER`` of CoNLL
    is CrossNER's ``person``, ...). ``class``: the entity types of ``corpus`` arrive a few at a time; each
    step's sentences label only its own types (the others are ``O``)."""
    experiences: NonEmpty[TaskSpec] = [
        "conll2003", "crossner_politics", "crossner_science", "crossner_music", "crossner_literature", "crossner_ai"
    ]  # fmt: skip
    """Domain-incremental: the tasks in the order they arrive (corpora, ``generated:TYPES``, or folders of your own
    ``train.*``, ``dev.*`` and ``test.*`` files)."""
    corpus: TaskSpec = "conll2003"
    """Class-incremental: the corpus whose types arrive in steps."""
    type_order: list[str] | None = None
    """Class-incremental: the order the types arrive in; default: alphabetical (CoNLL: LOC, MISC, ORG, PER, as in
    CFNER's code)."""
    first_types: Count = 1
    """Class-incremental: types of the first step (FG-1-PG-1: 1; FG-2-PG-1: 2)."""
    types_per_step: Count = 1
    """Class-incremental: types added by every later step."""
    strategies: Distinct[Strategy] = list(STRATEGIES)
    """``naive`` (plain sequential fine-tuning), ``replay``, ``ewc`` (online), ``lwf`` (distillation on the old
    types' logits) and ``joint`` (everything seen so far, the upper bound); ``lwf+replay`` and ``ewc+replay`` add
    the replay buffer to the training data of the other's loss."""
    meta_init: ModelPath | None = None
    """A meta-learned model folder (``drml meta-train``'s ``<run>/reptile``): the ``meta_init_strategies`` run
    again from it, as ``NAME@meta``, to compare their R with the plain start's."""
    meta_init_strategies: list[Strategy] = ["naive"]
    replay_size: Count = 50
    """Replay: sentences kept per past experience."""
    replay_selection: Literal["reservoir", "coverage"] = "coverage"
    """Replay: a uniform sample (``reservoir``), or one covering every entity type first (``coverage``)."""
    ewc_lambda: NonNegativeFloat = 5000.0
    """EWC: weight of the penalty ``lambda/2 * sum F (theta - theta*)^2``. The Fisher of a batch-mean loss is
    small (MiniLM on CoNLL: entries ~1e-8 on average), so a weight that holds the model is large; search it
    (``configs/tune/continual_fg1_ewc.yaml``)."""
    ewc_gamma: Discount = 1.0
    """Online EWC: decay of the running Fisher at each new experience (1: plain sum)."""
    fisher_batches: Count = 32
    """EWC: batches of ``train.batch_size`` sentences of the experience that estimate its diagonal Fisher."""
    distill_temperature: Rate = 2.0
    """LwF: softmax temperature of the distillation."""
    distill_weight: NonNegativeFloat = 1.0
    """LwF: weight of the distillation loss (on the words labelled ``O``) against the cross-entropy on the new
    types' words."""
    min_train_sentences: NonNegative = 0
    """An experience with fewer training sentences trains more epochs than ``train.epochs``, until it has seen
    this many (a 200-sentence domain at 3,000: 15 epochs), so that a small experience gets the optimizer steps a
    large one has; 0: ``train.epochs`` for every experience."""
    dev_sentences: Count | None = 200
    """Dev sentences per experience (the first N) that pick each experience's best checkpoint and score a
    search; ``None``: the whole split."""
    parallel: Count | None = None
    """Strategies run side by side (each its own sequence of Ray Train runs); default: as many as the cluster's
    CPUs (GPUs) hold at ``scaling``'s size."""
    test_sentences: Count | None = None
    """Test sentences scored per experience (the first N); ``None``: the whole split."""

    def check(self) -> None:
        if self.protocol == "domain" and len(set(self.experiences)) < len(self.experiences):
            raise ValueError("continual.experiences: a task appears twice")
        if self.type_order is not None and len(set(self.type_order)) < len(self.type_order):
            raise ValueError("continual.type_order: a type appears twice")


class ContinualExperiment(Experiment):
    """One continual-learning experiment: what ``drml continual`` runs. Each experience is one Ray Train run
    with ``train`` and ``scaling`` (as ``drml finetune``'s), from the model the previous experience left."""

    model: Annotated[ModelConfig, full_model("continual learning", "EWC and distillation cover every weight",
                                             shapes=True)] = ModelConfig()  # fmt: skip
    """Backbone, windowing and word shapes (``strategy`` must be ``full``)."""
    data: TaskData = TaskData()
    train: TrainConfig = TrainConfig(epochs=2, patience=0)
    scaling: ScalingSettings = ScalingSettings()
    continual: ContinualSettings = ContinualSettings()

    def check(self) -> None:
        check_train_scaling(self.train, self.scaling)

    def experience_config(self, backbone: str, sentences: int | None = None) -> FinetuneConfig:
        """The fine-tuning run of one experience of ``sentences`` training sentences, from ``backbone`` (the
        previous experience's model); ``continual.min_train_sentences`` may raise its epochs.

        >>> cfg = ContinualExperiment.model_validate({"name": "c", "continual": {"min_train_sentences": 3000}})
        >>> [cfg.experience_config("minilm", n).train.epochs for n in (200, 1000, 7000)]
        [15, 3, 2]
        """
        model = self.model.model_copy(update={"backbone": backbone})
        wanted = -(-self.continual.min_train_sentences // max(1, sentences)) if sentences is not None else 0
        epochs = max(self.train.epochs, wanted)
        train = self.train.model_copy(update={"epochs": epochs})
        return FinetuneConfig(name=self.name, seed=self.seed, model=model, train=train, scaling=self.scaling)
