"""Typed experiment configs: validated, immutable pydantic models, one section per concern.

Config flows one way: a YAML file is parsed, ``--set key.sub=value`` overrides are applied to it
(values parsed as YAML, keys checked against the model first), and the result is validated in
strict mode (:mod:`drml_ray.config_files` reads the files and names the file, line and key of every
error). Every field has a one-line doc and its range as a constraint, so an error points at its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from drml_ray.config_hints import NAME_CHARACTERS

Count = Annotated[int, Field(ge=1)]
"""At least 1 (epochs, sizes, workers, steps)."""
NonNegative = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(gt=0)]
"""A learning rate or step size: above 0."""
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
Discount = Annotated[float, Field(ge=0, le=1)]
Seed = Annotated[int, Field(ge=0, lt=2**31)]
"""A seed: numpy's generators refuse a negative one, and RLlib's (``np.random.seed``) one past 2**32 - 1, so
seeds plus the offsets added to them stay below it."""
WindowLength = Annotated[int, Field(ge=8, le=8192)]
"""Sub-tokens per window: room for the special tokens and some words."""
T = TypeVar("T")
NonEmpty = Annotated[list[T], Field(min_length=1)]
"""A list with at least one value (methods, seeds, tasks to compare)."""


def distinct(values: list[T]) -> list[T]:
    """``values`` where none is given twice (each would be run, trained or scored again for nothing)."""
    twice = sorted({str(v) for i, v in enumerate(values) if v in values[:i]})
    if twice:
        raise ValueError(f"{', '.join(twice)} given twice")
    return values


Distinct = Annotated[list[T], Field(min_length=1), AfterValidator(distinct)]
"""A list of at least one value, none given twice: what a command runs one by one (methods, seeds, shots)."""


def absolute_path(path: str) -> str:
    """A local file or folder made absolute against the working folder drml was started in: Ray's actors and
    Tune's trials (which Tune moves into their own trial folders) may run in another one, where the relative path
    names nothing or something else."""
    return str(Path(path).expanduser().resolve())


LocalPath = Annotated[str, Field(min_length=1), AfterValidator(absolute_path)]
"""A local file or folder, relative to the working folder; kept (and written to ``config.yaml``) absolute."""

ModelPath = Annotated[LocalPath, "model folder"]
"""A :data:`LocalPath` that must hold a saved model (``config.json``): not a run directory, not a folder of models."""


class Section(BaseModel):
    """Base of every config section: unknown keys forbidden, no type coercion, immutable."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True, allow_inf_nan=False
    )  # (an infinite rate or weight is a typo, never a setting)

    def check(self) -> None:
        """Rules across this section's fields: raise ``ValueError`` naming them (a section overrides it)."""

    @model_validator(mode="after")
    def _checked(self) -> Self:
        self.check()
        return self


class GeneratedData(Section):
    train: Count = 400
    """Sentences in the generated training split."""
    dev: Count = 100
    """Sentences in the generated dev split."""
    test: Count = 100
    """Sentences in the generated test split."""
    seed: Seed = 13
    """Seed of the generator (each split uses its own stream)."""


def column_pair(columns: list[int | str]) -> list[int | str]:
    """Two columns, the word's then the tag's: both counted from 1, or both named, and not the same one."""
    numbered = all(isinstance(c, int) and c >= 1 for c in columns)
    named = all(isinstance(c, str) and c for c in columns)
    if len(columns) != 2 or not (numbered or named) or columns[0] == columns[1]:
        raise ValueError("give the word's column and the tag's: counted from 1 in CoNLL files ([2, 3]), or named in "
                         "Parquet, Arrow or JSON lines files ([tokens, fine_ner_tags])")  # fmt: skip
    return columns


ColumnPair = Annotated[list[int | str], AfterValidator(column_pair)]
"""The word's column and the tag's: counted from 1 (CoNLL files) or named (Parquet, Arrow, JSON lines)."""


def reader_columns(columns: list[int | str]) -> tuple[int, int] | tuple[str, str]:
    """A :data:`ColumnPair` as the readers take it: a CoNLL file's counted from 0, a Parquet file's names."""
    word, tag = columns
    return (word - 1, tag - 1) if isinstance(word, int) and isinstance(tag, int) else (str(word), str(tag))


def _corpus_spec(spec: str) -> str:
    """A task folder made absolute (:func:`absolute_path`); a corpus name as it is."""
    return absolute_path(spec) if is_task_folder(spec) else spec


class DataConfig(Section):
    corpus: Annotated[str, AfterValidator(_corpus_spec)] | None = None
    """A registered corpus (``drml data list``: conll2003, crossner_politics, ...), ``generated``, or a folder of
    your own ``train.*``, ``dev.*`` and ``test.*`` files (a path: ``./clinical``); leave it out to train on your own
    files (``train``, ``dev`` and ``test``, all three); with neither: ``generated``."""
    train: LocalPath | None = None
    """A CoNLL or Parquet file: your corpus' train split, or one replacing the corpus' (relative to the
    working folder). The label set is the train split's."""
    dev: LocalPath | None = None
    """A CoNLL or Parquet file replacing the corpus' dev split."""
    test: LocalPath | None = None
    """A CoNLL or Parquet file replacing the corpus' test split."""
    columns: ColumnPair | None = None
    """The word's column and the tag's in your own files: a CoNLL file's counted from 1 (``[2, 3]``: GermEval's
    outer entities), a Parquet, Arrow or JSON lines file's by name (``[tokens, fine_ner_tags]``: Few-NERD's fine
    types); default: the first column and the last (or the layout a file shows, said so), ``tokens`` and ``tags``
    or ``ner_tags``."""
    scheme: Literal["iob1", "iob2"] | None = None
    """Tag scheme of files given by path; default: IOB1 where a file's entities start with ``I-``, else IOB2."""
    fallback_to_generated: bool = False
    """If the corpus cannot be reached, use the generated corpus instead (and say so) rather than fail."""
    generated: GeneratedData = GeneratedData()
    """Sizes and seed of the generated corpus."""
    max_train_sentences: Count | None = None
    """Keep only the first N training sentences (quick runs on real corpora)."""
    context: bool = False
    """Document context: a sentence's window is filled with the words around it in its document (a CoNLL file's
    ``-DOCSTART-`` lines mark documents; a file without them has none). Only the sentence's own words get loss
    and predictions; the saved model keeps the setting, so evaluation and ``drml predict`` use the same
    windows. Costs compute: every window is about ``model.max_length`` sub-tokens long (see ``context_train``)."""
    context_train: Literal["sentence", "document"] = "sentence"
    """How training windows are cut with ``context`` on. ``sentence``: each sentence in a window of its own,
    filled with its neighbours, loss on its own words only (the windows evaluation and prediction use).
    ``document``: each document cut into windows of whole consecutive sentences, every word labelled: a sentence
    still trains beside its neighbours (on one side only at a window's edge) at about the compute of training
    without context. ``train.batch_size`` counts windows, and such a window holds several sentences."""

    def check(self) -> None:
        from drml_ray.data.registry import CORPORA, unknown_corpus

        if self.corpus is not None and is_task_folder(self.corpus):
            from drml_ray.data.load import folder_splits

            try:
                folder_splits(self.corpus)
            except ValueError as err:
                file = "; a file is data.train, with data.dev and data.test" if Path(self.corpus).is_file() else ""
                raise ValueError(f"data.corpus: {err}{file}{beside_config(self.corpus)}") from None
        elif self.corpus is not None and self.corpus != "generated" and self.corpus not in CORPORA:
            raise ValueError(f"data.corpus: {unknown_corpus(self.corpus)}; or a folder of your own train.*, dev.* and "
                             "test.* files (a path: ./clinical)")  # fmt: skip
        given = [split for split in ("train", "dev", "test") if getattr(self, split) is not None]
        if self.corpus is None and given and len(given) < 3:
            missing = ", ".join(f"data.{s}" for s in ("train", "dev", "test") if s not in given)
            raise ValueError(f"your own corpus needs all three splits: add {missing} (or name a data.corpus)")
        if self.columns is not None and not given and not (self.corpus and is_task_folder(self.corpus)):
            named = self.corpus or "generated"
            raise ValueError(f"data.columns: picks columns of your own files (data.train, data.dev, data.test, or a "
                             f"folder as data.corpus); {named} is read as it is laid out")  # fmt: skip
        if self.context_train == "document" and not self.context:
            raise ValueError("data.context_train: document cuts training windows from documents: it needs "
                             "data.context: true")  # fmt: skip

    @property
    def read_columns(self) -> tuple[int, int] | tuple[str, str] | None:
        """``columns`` as the readers take them (:func:`reader_columns`)."""
        return None if self.columns is None else reader_columns(self.columns)

    @property
    def own_files(self) -> bool:
        """A corpus of the user's own files: no corpus named, or all three of its splits replaced."""
        return self.train is not None and (self.corpus is None or None not in (self.dev, self.test))


class LoraSettings(Section):
    r: Count = 16
    """LoRA rank."""
    alpha: Count = 32
    """LoRA scaling numerator (effective scale alpha / r)."""
    dropout: Fraction = 0.1
    """Dropout on the LoRA branch."""
    target_modules: Distinct[str] = ["query", "value"]
    """Linear layers that get adapters (last names, or dotted ends of names); ``query``, ``key``, ``value``: the
    attention projections, whatever the backbone calls them (DistilBERT ``q_lin``, ModernBERT ``Wqkv``)."""


BUILT_IN_BACKBONES = ("minilm", "tiny-random-bert")


def absolute_backbone(name: str) -> str:
    """A backbone folder here made absolute (:func:`absolute_path`); a built-in name or a Hub id unchanged."""
    return absolute_path(name) if name not in BUILT_IN_BACKBONES and Path(name).expanduser().exists() else name


class ModelConfig(Section):
    backbone: Annotated[str, Field(min_length=1), AfterValidator(absolute_backbone)] = "minilm"
    """``minilm`` (the packaged all-MiniLM-L6-v2), ``tiny-random-bert`` (tests), a local folder or a Hub id."""
    strategy: Literal["full", "top", "lora"] = "full"
    """What trains: every weight, the last ``top_layers`` encoder layers + head, or LoRA adapters + head."""
    top_layers: Count = 2
    """Encoder layers trained by the ``top`` strategy (counted from the top)."""
    lora: LoraSettings = LoraSettings()
    """Adapter settings of the ``lora`` strategy."""
    max_length: WindowLength = 128
    """Sub-tokens per window, special tokens included; longer sentences are split into windows."""
    window_overlap: NonNegative = 16
    """Words shared by consecutive windows of a long sentence (context on both sides of a cut); by default 16, or
    a quarter of ``max_length`` when that is fewer (it must stay below half of it)."""
    label_all_tokens: bool = False
    """Label every sub-token of a word (B- becomes I- after the first); default: first sub-token only."""
    dropout: Fraction | None = None
    """Override the backbone's hidden dropout probability (every dropout but attention's); ``None`` keeps the
    backbone's value."""
    attention_dropout: Fraction | None = None
    """Override the dropout on the attention probabilities (``attention_probs_dropout_prob``: BERT's family,
    ALBERT, DeBERTa; ``attention_dropout``: DistilBERT, ModernBERT);
    ``None`` keeps the backbone's (0.1 for MiniLM). At 0, training on a CPU runs PyTorch's flash-attention kernel,
    faster and without keeping every attention map for the backward pass."""
    decoding: Literal["argmax", "constrained"] = "constrained"
    """How word tags are read from the label probabilities: the most probable valid IOB2 sequence (an ``I-X`` only
    after ``B-X`` or ``I-X``, which strict scoring needs), or each word's most probable tag (``argmax``, what
    ``transformers.pipeline`` does). Used to score dev and test; travels with the exported model."""
    casing: Literal["none", "shape"] = "none"
    """``shape``: every sub-token carries its word's shape (lower case, Capitalised, ALL CAPS, mixed) as its BERT
    token type, for an uncased backbone (MiniLM) that cannot see capitals otherwise; travels with the exported
    model (``transformers.pipeline`` passes no token types, so it reads every word as lower case there). The
    ``full`` strategy only: the others freeze the embeddings the shapes live in."""

    @property
    def shapes(self) -> bool:
        """Word shapes are on (``casing: shape``): windows carry them as token types."""
        return self.casing == "shape"

    def unused(self) -> list[str]:
        """The settings given that ``strategy`` does not read (``lora`` but for LoRA, ``top_layers`` but for top):
        not refused, as a search over ``model.strategy`` gives them to every trial."""
        read_by = {"lora": "lora", "top_layers": "top"}
        return [
            f"model.{key} is not used: model.strategy is {self.strategy}, not {strategy}"
            for key, strategy in read_by.items()
            if key in self.model_fields_set and self.strategy != strategy
        ]

    @model_validator(mode="before")
    @classmethod
    def _overlap_fits(cls, data: Any) -> Any:
        """Without a ``window_overlap`` given, a short ``max_length`` gets a quarter of it as its overlap."""
        if isinstance(data, dict) and "window_overlap" not in data and isinstance(data.get("max_length"), int):
            return {**data, "window_overlap": min(16, max(0, data["max_length"] // 4))}
        return data

    def check(self) -> None:
        if self.window_overlap >= self.max_length // 2:
            raise ValueError(f"window_overlap ({self.window_overlap}) must be below half of max_length "
                             f"({self.max_length}): each window must move on")  # fmt: skip
        if self.casing != "none" and self.strategy != "full":
            raise ValueError(f"casing: {self.casing} needs strategy: full ({self.strategy} freezes the token-type "
                             "embeddings that hold the word shapes)")  # fmt: skip


class TrainConfig(Section):
    epochs: Count = 3
    """Passes over the training set (upper bound: early stopping may end sooner)."""
    batch_size: Count = 16
    """Sentences (windows) per optimizer step, summed over all workers and accumulation steps."""
    grad_accum: Count = 1
    """Micro-batches per optimizer step on each worker (no gradient sync until the last)."""
    pack_sequences: bool = True
    """Pack each micro-batch's windows end to end into rows with a block-diagonal attention mask (same
    gradient, ~1% padding); BERT-family backbones only, others fall back to ``split_by_length``."""
    split_by_length: bool = True
    """Run each batch as length-sorted micro-batches where that saves padding (same gradient, less compute)."""
    group_by_length: bool = False
    """Batch windows of similar length together (2x less padding again, but slower early convergence)."""
    lr: Rate = 5e-5
    """Peak learning rate of AdamW."""
    head_lr: Rate | None = None
    """The classification head's own peak learning rate, reached without warm-up and decayed with the rest (a
    fresh head has no pretrained weights to protect; e.g. 30x ``lr`` on a small corpus); unset: ``lr``."""
    weight_decay: NonNegativeFloat = 0.01
    """AdamW weight decay (never applied to biases and LayerNorm weights)."""
    warmup_ratio: Fraction = 0.1
    """Fraction of all optimizer steps spent warming the learning rate up linearly from 0."""
    max_grad_norm: NonNegativeFloat = 1.0
    """Gradient clipping by global norm; 0 disables."""
    ema_decay: Annotated[float, Field(gt=0, lt=1)] | None = None
    """Keep an exponential moving average of the weights, updated after every step with this decay (e.g.
    ``0.999``: roughly the last 1,000 steps; a warm-up makes it follow the weights closely at first). Evaluation,
    the checkpoint choice and the exported ``best/`` use the averaged weights; training is unchanged. Unset: off."""
    fused_adamw: bool = True
    """Use torch's fused AdamW kernel (one pass over the weights; ~8x faster steps on CPU)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast dtype; ``auto`` is bf16 on a GPU that supports it, else fp32; ``bf16`` autocasts on a CPU too
    (fast on CPUs with AMX or AVX512-BF16, e.g. 1.6x the fp32 training step with MiniLM); ``fp16``: GPUs only."""
    patience: NonNegative = 3
    """Evaluations without a better dev entity F1 before stopping early; 0 never stops early. Evaluations during
    warm-up do not count: a start that already scores (a meta-learned one, a continual experience's previous
    model) can dip while the learning rate is still rising."""
    eval_every_steps: NonNegative = 0
    """Evaluate (and checkpoint) every N optimizer steps as well as at each epoch's end; 0: epochs only."""
    eval_test: bool = False
    """Also score the test split at each evaluation: a ``test_f1`` curve in ``results.json``'s history and
    TensorBoard, for studying convergence. Never used to pick the checkpoint; costs one test pass per evaluation."""
    eval_batch_size: Count = 64
    """Windows per evaluation batch (sorted by length, so padding stays small)."""
    log_every_steps: Count = 10
    """Progress line and TensorBoard loss every N optimizer steps."""


class ScalingSettings(Section):
    num_workers: Annotated[int, Field(ge=0)] = 2
    """Ray Train workers (one process each; DDP across them). 0: Ray Train's local mode, the loop in this process
    with no worker actors and no Ray cluster needed (checkpoints and resume as with workers; no restarts)."""
    use_gpu: bool = False
    """One GPU per worker."""
    cpus_per_worker: Count = 1
    """CPUs reserved per worker; also its torch thread count."""
    max_failures: Annotated[int, Field(ge=-1)] = 0
    """Worker-group failures to recover from (restart from the latest checkpoint); -1: unlimited."""

    @property
    def local(self) -> bool:
        """Ray Train's local mode (``num_workers: 0``): the training function runs in the calling process."""
        return self.num_workers == 0

    @property
    def processes(self) -> int:
        """Processes that train: the workers, or the calling process in local mode (what resources count)."""
        return max(1, self.num_workers)

    @property
    def cpus(self) -> int:
        """CPUs the training holds: ``cpus_per_worker`` for each process that trains."""
        return self.processes * self.cpus_per_worker

    def check(self) -> None:
        if self.local and self.max_failures:
            raise ValueError(f"max_failures: {self.max_failures} restarts a worker group, and num_workers: 0 "
                             "(local mode) has none: a failed run continues from its last checkpoint when run "
                             "again")  # fmt: skip


class Distribution(Section):
    """One searched key, written in YAML as a one-key mapping: ``{loguniform: [1e-5, 1e-3]}``."""

    loguniform: list[float] | None = None
    """``[low, high]``: sampled uniformly in log space (learning rates)."""
    uniform: list[float] | None = None
    """``[low, high]``: sampled uniformly."""
    randint: list[int] | None = None
    """``[low, high]``: an integer in ``[low, high)``."""
    choice: list[Any] | None = None
    """Values sampled uniformly (with the grid search: every value, like ``grid``)."""
    grid: list[Any] | None = None
    """Every value, each combined with every other grid key (a full grid)."""

    def check(self) -> None:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            kinds = ", ".join(type(self).model_fields)
            raise ValueError(f"write exactly one of {kinds} (got {len(given)}: {', '.join(given) or 'none'})")
        values = getattr(self, given[0])
        if given[0] in ("loguniform", "uniform", "randint"):
            if len(values) != 2 or not values[0] < values[1]:
                raise ValueError(f"{given[0]} takes [low, high] with low < high (got {values})")
            if given[0] == "loguniform" and values[0] <= 0:
                raise ValueError(f"loguniform bounds must be positive (got {values})")
            low, high = values
            if given[0] == "randint" and high == low + 1:
                raise ValueError(f"randint {values} draws only {low}: its high is left out, as Tune's randint "
                                 f"leaves it; write [{low}, {high + 1}] for {low} and {high}")  # fmt: skip
        elif not values:
            raise ValueError(f"{given[0]} needs at least one value")
        else:
            distinct(values)

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @property
    def args(self) -> list[Any]:
        return getattr(self, self.kind)


class SchedulerSettings(Section):
    type: Literal["fifo", "asha", "sha", "hyperband", "median", "pbt"] = "asha"
    """Trial scheduler: ``fifo`` runs every trial to the end; the others stop or mutate weak trials.
    ``sha`` is synchronous successive halving: trials wait at each rung for the others, then the best
    ``1/reduction_factor`` continue (exact budget; better than ``asha`` on small searches)."""
    grace_period: Count = 1
    """Epochs every trial runs before ASHA / successive halving / median stopping may stop it."""
    reduction_factor: Annotated[int, Field(ge=2)] = 2
    """ASHA / successive halving / HyperBand: keep the best 1/reduction_factor of trials at each rung."""
    max_t: Count | None = None
    """Epochs of the longest trial (ASHA / successive halving / HyperBand); default: ``train.epochs``."""
    perturbation_interval: Count = 1
    """PBT: epochs between exploit/explore steps."""
    mutations: dict[str, Distribution] = {}
    """PBT: keys it may resample when a trial copies a better one (default: the continuous keys of ``space``)."""


class TuneSettings(Section):
    """What ``drml tune`` searches and how (ignored by ``drml finetune``)."""

    space: dict[str, Distribution] = {}
    """Config keys (dotted, e.g. ``train.lr``) and the distribution each is drawn from."""
    search: Literal["random", "grid", "optuna"] = "random"
    """``random``: sample ``num_samples`` points (grid keys crossed in); ``grid``: every combination of
    ``grid``/``choice`` values once; ``optuna``: Optuna's TPE sampler."""
    num_samples: Count = 4
    """Trials to sample (``random``: per grid point; ``optuna``: in all; ignored by ``grid``)."""
    max_concurrent_trials: Count | None = None
    """Trials running at once; default: as many as the cluster's CPUs (GPUs) hold given ``scaling``."""
    metric: str = "dev_f1"
    """Reported metric the search optimises (dev entity F1 after each epoch)."""
    mode: Literal["max", "min"] = "max"
    scheduler: SchedulerSettings = SchedulerSettings()

    def check(self) -> None:
        if self.search == "grid":
            loose = [key for key, dist in self.space.items() if dist.kind not in ("grid", "choice")]
            if loose:
                raise ValueError(f"search: grid needs grid or choice for every key (not {', '.join(loose)})")
        if self.search == "optuna":
            grids = [key for key, dist in self.space.items() if dist.kind == "grid"]
            if grids:
                raise ValueError(f"search: optuna samples; write choice instead of grid for {', '.join(grids)}")
        if self.scheduler.type == "pbt" and self.search == "optuna":
            raise ValueError("the pbt scheduler does its own search: use search: random")
        if self.scheduler.type == "sha" and self.search == "optuna":
            raise ValueError("the sha scheduler needs every trial up front (search: random or grid), "
                             "not optuna, which picks each point from the results before it")  # fmt: skip


class Experiment(Section):
    """What every experiment file has: a name and, for ``drml tune``, a search over it."""

    name: Annotated[str, Field(pattern=rf"^[A-Za-z0-9][{NAME_CHARACTERS}]*$", max_length=200)]
    """Experiment name; the default run directory is ``runs/<name>`` (so a plain folder name: letters, digits,
    ``._+-``, no ``/``). Defaults to the file's stem."""
    tune: TuneSettings | None = None
    """Hyper-parameter search over this experiment (``drml tune``); the metric is one its kind reports."""
    seed: Seed = 42
    """Seed of everything random in the run: initialisation, data or task order, dropout, sampling."""


class FinetuneConfig(Experiment):
    """One NER fine-tuning experiment: what ``drml finetune`` runs."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    scaling: ScalingSettings = ScalingSettings()

    def check(self) -> None:
        check_train_scaling(self.train, self.scaling)


def check_train_scaling(train: TrainConfig, scaling: ScalingSettings) -> None:
    """A global batch splits evenly over the workers and their accumulation steps, and fp16 runs on a GPU (on a
    CPU it would silently be fp32)."""
    shards = scaling.processes * train.grad_accum
    if train.batch_size % shards:
        raise ValueError(f"train.batch_size ({train.batch_size}) must be a multiple of scaling.num_workers x "
                         f"train.grad_accum ({shards})")  # fmt: skip
    if train.precision == "fp16" and not scaling.use_gpu:
        raise ValueError("train.precision: fp16 needs scaling.use_gpu: true (a CPU has no fast fp16, and its loss "
                         "scaling is GPU-only); bf16 autocasts on a CPU too")  # fmt: skip


def full_model(kind: str, why: str, shapes: bool = False) -> AfterValidator:
    """A ``model`` section that must train every weight (``strategy: full``), as ``why`` says ``kind`` needs, and,
    unless ``shapes``, without word shapes (``casing``: its own forward passes give no token types)."""

    def check(model: ModelConfig) -> ModelConfig:
        if model.strategy != "full":
            raise ValueError(f"strategy must be full for {kind} ({why})")
        if model.casing != "none" and not shapes:
            raise ValueError(f"casing: {model.casing} is for drml finetune; {kind} gives no token types")
        return model

    return AfterValidator(check)


class TaskData(Section):
    """Where meta-learning tasks come from: registered corpora, or generated ones for tests."""

    generated: GeneratedData = GeneratedData()
    """Sizes and seed of ``generated:TYPES`` tasks (the generated corpus restricted to TYPES)."""
    max_train_sentences: Count | None = None
    """Keep only the first N training sentences of each meta-training task (quick runs)."""
    columns: ColumnPair | None = None
    """The word's column and the tag's in the files of task folders, as ``data.columns`` of ``drml finetune``
    (``[2, 3]``: GermEval's outer entities); registered corpora and generated tasks are read as they are laid out."""


GENERATED_PREFIX = "generated:"
GENERATED_TYPES = ("PER", "ORG", "LOC", "MISC")


def generated_task_types(spec: str) -> set[str]:
    """The entity types of a ``generated:TYPES`` task (some of PER, ORG, LOC, MISC).

    >>> sorted(generated_task_types("generated:PER, LOC"))
    ['LOC', 'PER']
    """
    types = {t.strip() for t in spec.removeprefix(GENERATED_PREFIX).split(",") if t.strip()}
    if not types or not types <= set(GENERATED_TYPES):
        raise ValueError(f"task {spec!r}: generated tasks keep some of {', '.join(GENERATED_TYPES)}")
    return types


def _task_spec(spec: str) -> str:
    from drml_ray.data.load import folder_splits
    from drml_ray.data.registry import CORPORA

    if spec.startswith(GENERATED_PREFIX):
        generated_task_types(spec)
    elif spec not in CORPORA:
        if not is_task_folder(spec):
            cut = ("; a type cut off a generated task? In YAML's [a, b] a comma ends an item: quote the task, "
                   '"generated:PER,ORG"') if spec in GENERATED_TYPES else ""  # fmt: skip
            raise ValueError(f"unknown task {spec!r}: a corpus ({', '.join(CORPORA)}), generated:TYPES, or a folder "
                             f"of your own train, dev and test files (a path: ./clinical){cut}")  # fmt: skip
        try:
            folder_splits(spec)
        except ValueError as err:
            raise ValueError(f"{err}{beside_config(absolute_path(spec))}") from None
        # absolute from here on: Ray's actors and Tune's trials may run in another working folder than this one
        return str(Path(spec).expanduser().resolve())
    return spec


def is_task_folder(spec: str) -> bool:
    """Whether a task names a folder of the user's own split files (a path) rather than a corpus.

    >>> [is_task_folder(s) for s in ("conll2003", "generated:PER", "./clinical", "data/ai", "/abs/x")]
    [False, False, True, True, True]
    """
    return "/" in spec or spec.startswith(".")


TaskSpec = Annotated[str, AfterValidator(_task_spec)]
"""A task: a registered corpus, ``generated:PER,LOC`` (the generated corpus, those types), or a folder of your own
``train.*``, ``dev.*`` and ``test.*`` files (CoNLL or Parquet; a path, relative to the working folder, made absolute
when the config is read: the name it goes by in results)."""


class ActorSettings(Section):
    """A pool of Ray actors, each built once and reused for every task it is given."""

    workers: Count = 2
    """Ray actors working in parallel, one task (an episode, a PPO task, a seed) each at a time."""
    cpus_per_worker: Count = 1
    """CPUs reserved per actor; also its torch thread count."""


# The file side (reading, overrides, shipped configs), importable from here as before.
from drml_ray.config_files import (  # noqa: E402, F401
    ConfigError,
    apply_override,
    at_its_line,
    config_path,
    dump_config,
    load_config,
    parse_yaml_value,
    shipped_configs,
    with_params,
)
from drml_ray.config_paths import beside_config  # noqa: E402
