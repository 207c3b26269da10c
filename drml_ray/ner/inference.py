"""Forward passes for evaluation and prediction: windows in, word-level tags and scores out."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from drml_ray.ner.batching import collate, eval_batches
from drml_ray.ner.features import Window, encode, merge_windows

WindowOutput = tuple[np.ndarray, np.ndarray]
"""Per word of a window: predicted label id, probability of that label."""


@torch.inference_mode()
def predict_windows(
    model: torch.nn.Module,
    windows: Sequence[Window],
    batches: Sequence[Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    progress: str | None = None,
) -> dict[int, WindowOutput]:
    """Run ``model`` over the given batches of window indices; returns window index -> output.

    ``progress``, when given, is the label of a tqdm bar over the batches (on stderr).
    """
    was_training = model.training
    model.eval()
    out: dict[int, WindowOutput] = {}
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    # disable=None: a bar on a terminal, nothing in log files.
    for batch in tqdm(batches, desc=progress, unit="batch", disable=True if progress is None else None, leave=False):
        inputs = collate([windows[i] for i in batch], pad_id)
        with amp:
            logits = model(
                input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device)
            ).logits
        probs = logits.float().softmax(-1).cpu()
        for row, i in enumerate(batch):
            best = probs[row, windows[i].word_starts].max(-1)
            out[i] = (best.indices.numpy(), best.values.numpy())
    model.train(was_training)
    return out


def merge_outputs(
    windows: Sequence[Window], outputs: dict[int, WindowOutput], n_words: Sequence[int], id2label: dict[int, str]
) -> tuple[list[list[str]], list[list[float]]]:
    """Per-sentence tags and scores from the outputs of every window."""
    preds, scores = merge_windows(
        windows, [outputs[i][0] for i in range(len(windows))], [outputs[i][1] for i in range(len(windows))], n_words
    )
    return [[id2label[int(p)] for p in sent] for sent in preds], [s.tolist() for s in scores]


def predict_words(
    model: torch.nn.Module,
    tokenizer,
    sentences: Sequence[Sequence[str]],
    *,
    max_length: int,
    overlap: int,
    batch_size: int = 64,
    device: torch.device | None = None,
    progress: str | None = None,
    autocast_dtype: torch.dtype | None = None,
    documents: Sequence[int | None] | None = None,
) -> tuple[list[list[str]], list[list[float]]]:
    """Tag word lists in one process: IOB2 tags and the probability of each tag (``autocast_dtype``: e.g.
    ``torch.bfloat16``, the forward passes under autocast; ``documents``: windows filled with document context,
    :func:`~drml_ray.ner.features.encode`)."""
    device = device or next(model.parameters()).device
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    windows = encode(tokenizer, sentences, None, {}, max_length=max_length, overlap=overlap, documents=documents)
    batches = eval_batches([len(w.input_ids) for w in windows], batch_size)
    outputs = predict_windows(model, windows, batches, pad_id=tokenizer.pad_token_id, device=device, progress=progress,
                              autocast_dtype=autocast_dtype)  # fmt: skip
    return merge_outputs(windows, outputs, [len(s) for s in sentences], id2label)
