"""Word shapes for uncased backbones (``model.casing: shape``).

An uncased tokenizer (the packaged MiniLM's) lower-cases every word, so the model cannot tell "Bush" from "bush"
or "US" from "us", where capitals are among NER's strongest cues. With ``shape``, every sub-token carries its
word's shape as a BERT token type: the token-type table becomes :data:`SHAPES` rows, each a copy of the
pretrained row 0 (the one single sentences use), so the model computes exactly what the pretrained one does
until training moves the rows apart. The model stays a plain Hugging Face BERT; the shapes
are computed by drml's own prediction (``drml evaluate``, ``predict``, ``serve``), so ``transformers.pipeline``,
which passes no token types, reads every word as lower case.
"""

from __future__ import annotations

import torch

from drml_ray.errors import UserError

SHAPES = 4
"""0: no capital letter (lower case, digits, punctuation); 1: capitalised, or a single capital; 2: all capitals;
3: a capital elsewhere (``iPhone``, ``McDonald``)."""


def word_shape(word: str) -> int:
    """The word's shape, from its letters' case.

    >>> [word_shape(w) for w in ["the", "1996", "Anna", "A", "Jan.", "EU", "U.S.", "iPhone", "McDonald"]]
    [0, 0, 1, 1, 1, 2, 2, 3, 3]
    """
    upper = [c.isupper() for c in word if c.isalpha()]
    if not any(upper):
        return 0
    if all(upper):
        return 2 if len(upper) > 1 else 1
    return 1 if upper[0] and not any(upper[1:]) else 3


def no_token_types(model: str) -> str:
    """The refusal of word shapes for a ``model`` with no token-type embeddings (DistilBERT, DeBERTa-v3)."""
    return f"model.casing: shape needs token-type embeddings, and {model} has none: set model.casing: none"


def grow_token_types(model: torch.nn.Module) -> None:
    """Give ``model`` a token-type table of :data:`SHAPES` rows, each a copy of its row 0, so that it computes
    what it computed for single sentences whatever the shapes, until training moves the rows apart. A model
    already trained with shapes (``config.json``'s ``drml.casing``: a run's ``best/`` fine-tuned further) keeps
    its rows."""
    embeddings = getattr(model.base_model, "embeddings", None)
    table = getattr(embeddings, "token_type_embeddings", None)
    if not isinstance(table, torch.nn.Embedding):
        raise UserError(no_token_types(type(model).__name__))
    trained = (getattr(model.config, "drml", None) or {}).get("casing") == "shape"
    if trained and table.num_embeddings == SHAPES:
        return
    grown = torch.nn.Embedding(SHAPES, table.embedding_dim, dtype=table.weight.dtype, device=table.weight.device)
    with torch.no_grad():
        grown.weight.copy_(table.weight[0].expand(SHAPES, -1))
    embeddings.token_type_embeddings = grown
    model.config.type_vocab_size = SHAPES
