"""Forward passes for evaluation and prediction: windows in, word-level tags and scores out."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from drml_ray.ner.batching import collate, collate_packed, eval_batches, pack_rows, supports_packing
from drml_ray.ner.decoding import decoder, head_tags, open_runs
from drml_ray.ner.features import Window, encode, merge_windows

WindowOutput = np.ndarray
"""Per word of a window (a row each): the probability of every label."""


PACKED_ROW = 128
"""Sub-tokens per row when prediction packs windows (or the longest window's, if longer)."""


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
    pack: bool = True,
) -> dict[int, WindowOutput]:
    """Run ``model`` over the given batches of window indices; returns window index -> output.

    ``pack`` (for architectures it is exact for, :func:`~drml_ray.ner.batching.supports_packing`): each batch's
    windows go end to end into rows of :data:`PACKED_ROW` sub-tokens, each attending only to itself, so a
    batch of mixed lengths (the requests ``drml serve`` batches together) spends nothing on padding: 3.0x the
    texts/s on random batches of 32 CoNLL sentences, 2-13% more on length-sorted ones (BENCHMARKS.md, "Serving").
    ``progress``, when given, labels the progress over the batches on stderr (:func:`with_progress`).
    """
    was_training = model.training
    model.eval()
    out: dict[int, WindowOutput] = {}
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    lengths, pack = [len(w.input_ids) for w in windows], pack and supports_packing(model)
    for batch in with_progress(batches, progress):
        if pack:
            rows = pack_rows(batch, lengths, max(PACKED_ROW, *(lengths[i] for i in batch)))
            inputs = collate_packed(windows, rows, pad_id)
        else:
            rows, inputs = [[i] for i in batch], collate([windows[i] for i in batch], pad_id)
        inputs.pop("labels", None)
        with amp:
            logits = model(**{key: value.to(device) for key, value in inputs.items()}).logits
        probs = logits.float().softmax(-1).cpu()
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                out[i] = probs[r, [start + p for p in windows[i].word_starts]].numpy()
                start += lengths[i]
    model.train(was_training)
    return out


def with_progress(batches: Sequence[Sequence[int]], label: str | None) -> Iterable[Sequence[int]]:
    """``batches``, with their progress on stderr when ``label`` is given: a tqdm bar on a terminal; in a log file
    (``nohup``, ``ray job submit``), where a bar is one long line, a line at each tenth of 20 batches or more."""
    if label is None:
        return batches
    if sys.stderr.isatty():
        return tqdm(batches, desc=label, unit="batch", leave=False)
    return _progress_lines(batches, label)


def _progress_lines(batches: Sequence[Sequence[int]], label: str) -> Iterator[Sequence[int]]:
    total, start, shown = len(batches), time.monotonic(), 0
    for done, batch in enumerate(batches, 1):
        yield batch  # (resumed once the batch is done)
        if total >= 20 and done < total and done * 10 // total > shown:
            shown, left = done * 10 // total, (time.monotonic() - start) * (total - done) / done
            print(f"[drml] {label}: {done:,} of {total:,} batches ({done / total:.0%}), about {left:.0f} s left",
                  file=sys.stderr, flush=True)  # fmt: skip


def merge_outputs(
    windows: Sequence[Window],
    outputs: dict[int, WindowOutput],
    n_words: Sequence[int],
    id2label: dict[int, str],
    decoding: str = "constrained",
) -> tuple[list[list[str]], list[list[float]]]:
    """Per-sentence IOB2 tags and their probabilities from the outputs of every window, decoded
    (:mod:`~drml_ray.ner.decoding`: ``argmax`` or ``constrained``) once each word has its window's probabilities;
    a head of BIOES or IO labels gives IOB2 tags too (:func:`~drml_ray.ner.decoding.head_tags`)."""
    labels = head_tags([id2label[i] for i in range(len(id2label))])
    unopened = {label for label in labels if label.startswith("I-") and f"B-{label[2:]}" not in labels}
    decode = decoder(labels, decoding)
    tags, scores = [], []
    for probs in merge_windows(windows, [outputs[i] for i in range(len(windows))], n_words):
        ids, chosen = decode(probs)
        tags.append(open_runs([labels[int(i)] for i in ids], unopened))
        scores.append(chosen.tolist())
    return tags, scores


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
    decoding: str = "constrained",
    casing: bool = False,
) -> tuple[list[list[str]], list[list[float]]]:
    """Tag word lists in one process: IOB2 tags and the probability of each tag (``autocast_dtype``: e.g.
    ``torch.bfloat16``, the forward passes under autocast; ``documents``: windows filled with document context,
    :func:`~drml_ray.ner.features.encode`; ``decoding``: :mod:`~drml_ray.ner.decoding`; ``casing``: word shapes
    as token types, :mod:`~drml_ray.ner.casing`)."""
    device = device or next(model.parameters()).device
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    windows = encode(tokenizer, sentences, None, {}, max_length=max_length, overlap=overlap, documents=documents,
                     casing=casing)  # fmt: skip
    batches = eval_batches([len(w.input_ids) for w in windows], batch_size)
    outputs = predict_windows(model, windows, batches, pad_id=tokenizer.pad_token_id, device=device, progress=progress,
                              autocast_dtype=autocast_dtype)  # fmt: skip
    return merge_outputs(windows, outputs, [len(s) for s in sentences], id2label, decoding)
