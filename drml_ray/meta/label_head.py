"""A classifier head built from the names of the labels, so a new label set starts meaningful.

Each entity type X has a name ("political party" for ``politicalparty``); the encoder embeds it
(mean of its last hidden states over the name's sub-tokens, unit length) as e(X). The head's rows are

    W[B-X] = s_B * e(X) + v_B,   W[I-X] = s_I * e(X) + v_I,   W[O] = w_O,
    b[O] = c_O,  b[B-X] = c_B,  b[I-X] = c_I

with ``(s, v, w_O, c)`` — the *generator*, a few hundred numbers — shared by every label set. A
token whose representation points towards a type's name scores high for that type, before any
training on the new label set. Meta-learning learns the generator together with the encoder; the
held-out task's label names are all it needs to build its head. The generator travels in a model
folder as ``drml_label_head.pt``; ``drml finetune`` uses it for every label the folder's own head
does not already have.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from drml_ray.checkpoints import load_state, save_state
from drml_ray.data.tags import split_tag

GENERATOR_FILE = "drml_label_head.pt"

TYPE_NAMES = {
    "PER": "person", "ORG": "organisation", "LOC": "location", "MISC": "miscellaneous", "misc": "miscellaneous",
    "politicalparty": "political party", "astronomicalobject": "astronomical object",
    "chemicalcompound": "chemical compound", "chemicalelement": "chemical element",
    "academicjournal": "academic journal", "musicgenre": "music genre", "musicalartist": "musical artist",
    "musicalinstrument": "musical instrument", "literarygenre": "literary genre",
    "programlang": "programming language", "metrics": "metric",
}  # fmt: skip
"""Natural-language names of entity types whose tag is an abbreviation or a run-together compound."""


def type_name(kind: str) -> str:
    """The words a label-name head embeds for entity type ``kind``.

    >>> type_name("politicalparty"), type_name("PER"), type_name("song")
    ('political party', 'person', 'song')
    """
    return TYPE_NAMES.get(kind, kind.lower())


def type_embeddings(encoder: torch.nn.Module, tokenizer, names: Sequence[str]) -> torch.Tensor:
    """Unit-length embeddings of type names: mean last hidden state over each name's sub-tokens."""
    device = next(encoder.parameters()).device
    batch = tokenizer(list(names), padding=True, return_tensors="pt", return_special_tokens_mask=True)
    special = batch.pop("special_tokens_mask")
    batch.pop("token_type_ids", None)
    hidden = encoder(**{k: v.to(device) for k, v in batch.items()}).last_hidden_state
    keep = (batch["attention_mask"].to(device) * (1 - special.to(device))).unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * keep).sum(1) / keep.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


class LabelNameHead(torch.nn.Module):
    """The generator ``(s, v, w_O, c)``: label names' embeddings in, classifier rows out."""

    def __init__(self, hidden: int):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(2))  # s_B, s_I
        self.offset = torch.nn.Parameter(torch.zeros(2, hidden))  # v_B, v_I
        self.outside = torch.nn.Parameter(torch.zeros(hidden))  # w_O
        self.bias = torch.nn.Parameter(torch.tensor([1.0, 0.0, 0.0]))  # c_O, c_B, c_I: O is likeliest at first

    def forward(self, labels: Sequence[str], embeddings: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and biases for ``labels`` (IOB2); ``embeddings`` maps each entity type to e(X)."""
        rows, biases = [], []
        for label in labels:
            prefix, kind = split_tag(label)
            if kind is None:
                rows.append(self.outside)
                biases.append(self.bias[0])
            else:
                k = 0 if prefix == "B" else 1
                rows.append(self.scale[k] * embeddings[kind] + self.offset[k])
                biases.append(self.bias[1 + k])
        return torch.stack(rows), torch.stack(biases)


def head_rows(
    generator: LabelNameHead, encoder: torch.nn.Module, tokenizer, labels: Sequence[str], names: dict[str, str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier weight and bias for ``labels``; ``names`` maps entity type -> its words (no gradient)."""
    kinds = sorted({k for label in labels if (k := split_tag(label)[1]) is not None})
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        emb = type_embeddings(encoder, tokenizer, [names[k] for k in kinds]) if kinds else None
        weight, bias = generator(labels, {k: emb[i] for i, k in enumerate(kinds)} if emb is not None else {})
    encoder.train(was_training)
    return weight.detach().clone(), bias.detach().clone()


def save_generator(generator: LabelNameHead, folder: Path) -> None:
    save_state(Path(folder) / GENERATOR_FILE, generator.state_dict())


def load_generator(folder: str | Path, hidden: int) -> LabelNameHead | None:
    """The generator saved in a model folder, or ``None`` if the folder has none."""
    path = Path(folder) / GENERATOR_FILE
    if not path.is_file():
        return None
    generator = LabelNameHead(hidden)
    generator.load_state_dict(load_state(path))
    return generator
