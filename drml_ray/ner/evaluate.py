"""Load a saved NER model folder and score it on labelled sentences."""

from __future__ import annotations

import logging
import pickle  # (its error class: a pytorch_model.bin that torch's weights_only reader refuses)
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from drml_ray.data.conll import Sentence
from drml_ray.data.tags import split_tag
from drml_ray.errors import UserError, first_line
from drml_ray.ner.decoding import head_tags
from drml_ray.ner.features import check_vocabulary, window_positions
from drml_ray.ner.inference import predict_words
from drml_ray.runtime.rundir import model_folder

if TYPE_CHECKING:
    from drml_ray.ner.metrics import Report

# transformers, seqeval and scikit-learn are imported where they are used: `drml predict` on a few
# sentences needs none of them (drml_ray.ner.light) and would spend seconds importing them.

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = 16


@dataclass(frozen=True)
class SavedModel:
    """A token-classification model loaded from a Hugging Face folder, with its windowing settings."""

    model: torch.nn.Module
    tokenizer: object
    max_length: int
    overlap: int
    autocast: torch.dtype | None = None
    """Forward passes under ``torch.autocast`` at this dtype (``drml serve --dtype bf16``); ``None``: float32."""
    context: bool = False
    """Trained with document context (``data.context``): sentences whose documents are known are predicted in
    windows filled with their neighbours, as in training."""
    decoding: str = "constrained"
    """``model.decoding`` of the run that trained it (:mod:`~drml_ray.ner.decoding`); constrained for a folder
    that does not say (one from the Hub, or from drml-ray before the setting)."""
    casing: bool = False
    """Whether it was trained with word shapes as token types (``model.casing: shape``)."""

    @property
    def labels(self) -> list[str]:
        """The head's labels as the IOB2 tags its predictions are given in (:func:`head_tags`)."""
        return head_tags([self.model.config.id2label[i] for i in range(len(self.model.config.id2label))])


def load_saved_model(
    model_dir: str | Path, device: str = "cpu", *, light: bool = False, autocast: torch.dtype | None = None
) -> SavedModel:
    """Load ``model_dir`` (written by ``drml finetune`` or any HF token-classification folder); ``light``: without
    ``transformers`` where the folder allows it (:mod:`drml_ray.ner.light`, seconds sooner on a CPU);
    ``autocast``: forward passes under autocast at that dtype."""
    folder = model_folder(model_dir)
    if light:
        from drml_ray.ner.light import LightBert, LightTokenizer, light_reason

        if light_reason(folder) is None:
            model, tokenizer = LightBert(folder).to(device).eval(), LightTokenizer(folder)
            check_vocabulary(tokenizer, len(model.w("bert.embeddings.word_embeddings.weight")), str(folder))
            return _with_windows(model, tokenizer, autocast, folder)
    from drml_ray.ner.modeling import check_tokenizer, open_tokenizer

    model = _load_weights(folder).to(device).eval()
    try:
        tokenizer = open_tokenizer(folder)
    except (OSError, ValueError) as err:
        raise UserError(f"{folder}: its tokenizer does not load: {first_line(err)}") from None
    check_tokenizer(tokenizer, str(folder))
    check_vocabulary(tokenizer, model.get_input_embeddings().num_embeddings, str(folder))
    return _with_windows(model, tokenizer, autocast, folder)


def _with_windows(model: torch.nn.Module, tokenizer: Any, autocast: torch.dtype | None, folder: Path) -> SavedModel:
    """The model with the windowing it was trained with (``config.json``'s ``drml`` section; else windows as long
    as the tokenizer and the model's positions allow, at most 512)."""
    head_tags(list(model.config.id2label.values()), str(folder))  # (a head that names no type is refused here)
    drml = getattr(model.config, "drml", None) or {}
    longest = min(tokenizer.model_max_length, 512, window_positions(model.config) or 512)
    max_length = int(drml.get("max_length", longest))
    overlap = int(drml.get("window_overlap", DEFAULT_OVERLAP))
    return SavedModel(model, tokenizer, max_length, overlap, autocast, context=bool(drml.get("context", False)),
                      decoding=str(drml.get("decoding", "constrained")),
                      casing=drml.get("casing") == "shape")  # fmt: skip


def _load_weights(folder: Path) -> torch.nn.Module:
    """The folder's model with every weight read from it: what transformers would log as a load report (a
    truncated file, weights sized otherwise than config.json says, weights missing) is the error instead."""
    from safetensors import SafetensorError
    from transformers import AutoModelForTokenClassification

    from drml_ray.ner.modeling import not_only_tensors, quiet_transformers

    try:
        with quiet_transformers():
            model, info = AutoModelForTokenClassification.from_pretrained(folder, output_loading_info=True)
    except pickle.UnpicklingError as err:  # (a pytorch_model.bin: read by torch's weights_only reader)
        raise UserError(not_only_tensors(folder / "pytorch_model.bin", err)) from None
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        if "mismatch" in str(err).lower():  # e.g. config.json's id2label sized otherwise than the classifier head
            raise UserError(f"{folder}: its weights do not fit its config.json (does id2label have as many labels "
                            "as the classifier head has outputs?)") from None  # fmt: skip
        raise UserError(f"{folder}: the model folder does not load: {first_line(err)}") from None
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise UserError(f"{folder}: its weights lack {len(missing)} tensors ({', '.join(missing[:3])}, ...): a "
                        "partial model.safetensors?")  # fmt: skip
    return model


def predict_tags(
    saved: SavedModel,
    sentences: Sequence[Sequence[str]],
    batch_size: int = 64,
    progress: str | None = None,
    documents: Sequence[int | None] | None = None,
):
    """IOB2 tags and their probabilities for word lists (``documents``: each one's document, used by a model
    trained with document context and ignored by any other)."""
    return predict_words(
        saved.model, saved.tokenizer, sentences, max_length=saved.max_length, overlap=saved.overlap,
        batch_size=batch_size, progress=progress, autocast_dtype=saved.autocast,
        documents=documents if saved.context else None, decoding=saved.decoding, casing=saved.casing,
    )  # fmt: skip


def predict_and_score(
    saved: SavedModel, sentences: Sequence[Sentence], batch_size: int = 64, progress: str | None = "scoring"
) -> tuple[dict[str, Report], list[list[str]]]:
    """Entity- and token-level reports of ``saved`` on ``sentences`` (with a progress bar by default), and the
    predicted tags they were computed from."""
    known = {kind for label in saved.labels if (kind := split_tag(label)[1])}
    unknown = sorted({k for s in sentences for t in s.tags if (k := split_tag(t)[1]) and k not in known})
    if unknown:
        log.warning("entity types in the data that the model cannot predict: %s", ", ".join(unknown))
    from drml_ray.ner.metrics import score_split

    pred, _ = predict_tags(saved, [s.tokens for s in sentences], batch_size, progress, [s.doc for s in sentences])
    return score_split([s.tags for s in sentences], pred), pred
