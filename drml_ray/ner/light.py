"""A BERT token classifier without ``transformers``: what ``drml predict`` runs on a few sentences.

Importing ``transformers``' model classes takes seconds (they pull in ``torch.distributed``, dynamo and
image utilities), longer than tagging a sentence. A saved BERT-family folder (``model.safetensors``,
``tokenizer.json``, ``config.json``) holds all that inference needs: this module reads it with
``safetensors`` and ``tokenizers`` alone and runs the same forward pass in plain torch (embeddings, then per
layer self-attention and a GELU feed-forward block, each with a residual and LayerNorm, then the
classifier). Its logits equal ``BertForTokenClassification``'s (tested); any folder it cannot read the same
way is left to ``transformers`` (:func:`light_reason` says why).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

LAYER = "bert.encoder.layer.{}."
LAYER_WEIGHTS = (
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm",
)  # fmt: skip
SPECIAL = ("cls_token", "sep_token", "pad_token", "unk_token")
UNBOUNDED = int(1e30)
"""transformers' ``model_max_length`` when tokenizer_config.json gives none."""
SHAPED = ("classifier", "bert.embeddings.position_embeddings")
"""Weights whose rows config.json fixes: one per label, one per position of a window."""


def light_reason(folder: Path) -> str | None:
    """Why ``folder`` needs ``transformers`` (``None``: this module reads it)."""
    config = read_json(folder / "config.json")
    if not (folder / "model.safetensors").is_file() or not (folder / "tokenizer.json").is_file():
        return "no single model.safetensors and tokenizer.json"
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        return f"model_type {config.get('model_type')!r} with {config.get('hidden_act')!r} is not plain BERT"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return "relative position embeddings"
    if None in special_tokens(tokenizer_files(folder)).values():
        return "special tokens not named in tokenizer_config.json"
    if not isinstance(config.get("id2label"), dict) or not isinstance(config.get("num_hidden_layers"), int):
        return "config.json lacks id2label or num_hidden_layers"
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(folder / "model.safetensors", "pt") as f:
            names = set(f.keys())
            missing = sorted(set(weight_names(config["num_hidden_layers"])) - names)
            if missing:
                return f"weights {', '.join(missing[:3])} missing"
            labels, positions = (f.get_slice(f"{name}.weight").get_shape()[0] for name in SHAPED)
    except (OSError, SafetensorError) as err:
        return f"model.safetensors does not open ({err})"
    if labels != len(config["id2label"]) or int((config.get("drml") or {}).get("max_length", 0)) > positions:
        return "weights sized otherwise than config.json says"
    return None


def weight_names(layers: int) -> list[str]:
    """The tensors the forward pass reads."""
    tables = [f"bert.embeddings.{n}_embeddings.weight" for n in ("word", "position", "token_type")]
    blocks = (LAYER.format(i) + w for i in range(layers) for w in LAYER_WEIGHTS)
    affine = ["bert.embeddings.LayerNorm", *blocks, "classifier"]
    return tables + [f"{name}.{p}" for name in affine for p in ("weight", "bias")]


class LightBert(torch.nn.Module):
    """``BertForTokenClassification``'s forward pass in evaluation mode, from a saved folder's weights."""

    def __init__(self, folder: Path):
        super().__init__()
        from safetensors.torch import load_file  # (a tensor file, never unpickled)

        config = read_json(folder / "config.json")
        id2label = {int(k): v for k, v in config["id2label"].items()}
        self.config = SimpleNamespace(id2label=id2label, drml=config.get("drml"), model_type="bert")
        self.heads, self.layers = config["num_attention_heads"], config["num_hidden_layers"]
        self.eps = config.get("layer_norm_eps", 1e-12)
        for name, tensor in load_file(folder / "model.safetensors").items():
            self.register_parameter(name.replace(".", "__"), torch.nn.Parameter(tensor, requires_grad=False))

    def w(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "__"))

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w(f"{name}.weight"), self.w(f"{name}.bias"))

    def norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w(f"{name}.weight"), self.w(f"{name}.bias"), self.eps)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> SimpleNamespace:
        """``attention_mask``: (batch, width) over keys, or (batch, 1, width, width) as packed rows have it
        (:func:`~drml_ray.ner.batching.collate_packed`, with their ``position_ids``); ``token_type_ids``: word
        shapes (:mod:`~drml_ray.ner.casing`), type 0 without."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device) if position_ids is None else position_ids
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        e = "bert.embeddings."
        x = self.w(e + "word_embeddings.weight")[input_ids] + self.w(e + "position_embeddings.weight")[positions]
        x = self.norm(e + "LayerNorm", x + self.w(e + "token_type_embeddings.weight")[types])
        mask = attention_mask.bool() if attention_mask.dim() == 4 else attention_mask.bool()[:, None, None, :]
        for i in range(self.layers):
            x = self.layer(LAYER.format(i), x, mask)
        return SimpleNamespace(logits=self.linear("classifier", x))

    def layer(self, p: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, width, hidden = x.shape

        def heads(name: str) -> torch.Tensor:
            return self.linear(p + name, x).view(batch, width, self.heads, -1).transpose(1, 2)

        q, k, v = heads("attention.self.query"), heads("attention.self.key"), heads("attention.self.value")
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(batch, width, hidden)
        x = self.norm(p + "attention.output.LayerNorm", self.linear(p + "attention.output.dense", context) + x)
        inner = F.gelu(self.linear(p + "intermediate.dense", x))
        return self.norm(p + "output.LayerNorm", self.linear(p + "output.dense", inner) + x)


class LightTokenizer:
    """The folder's fast tokenizer (``tokenizer.json``) with the calls :func:`~drml_ray.ner.features.encode`
    makes: words in, sub-token ids and their word ids out, no special tokens added."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.backend.no_truncation()
        self.backend.no_padding()
        files = tokenizer_files(folder)
        ids = {name: self.backend.token_to_id(token) for name, token in special_tokens(files).items()}
        self.cls_token_id, self.sep_token_id = ids["cls_token"], ids["sep_token"]
        self.pad_token_id, self.unk_token_id = ids["pad_token"], ids["unk_token"]
        self.model_max_length = int(files[0].get("model_max_length", UNBOUNDED))  # (as transformers reads it)

    def __len__(self) -> int:
        return self.backend.get_vocab_size()

    def __call__(self, words: list[list[str]], *, is_split_into_words: bool, add_special_tokens: bool,
                 verbose: bool = True) -> Any:  # fmt: skip
        encodings = self.backend.encode_batch(words, is_pretokenized=is_split_into_words,
                                              add_special_tokens=add_special_tokens)  # fmt: skip
        return _Encoded([e.ids for e in encodings], [e.word_ids for e in encodings])


class _Encoded(dict):
    """``encoded["input_ids"][i]`` and ``encoded.word_ids(i)``, as a ``transformers`` batch encoding has."""

    def __init__(self, input_ids: list[list[int]], word_ids: list[list[int | None]]):
        super().__init__(input_ids=input_ids)
        self._word_ids = word_ids

    def word_ids(self, i: int) -> list[int | None]:
        return self._word_ids[i]


def tokenizer_files(folder: Path) -> list[dict]:
    """tokenizer_config.json and special_tokens_map.json (``{}`` where absent)."""
    return [read_json(folder / name) for name in ("tokenizer_config.json", "special_tokens_map.json")]


def special_tokens(files: list[dict]) -> dict[str, str | None]:
    """The text of each of :data:`SPECIAL` from the first of :func:`tokenizer_files` that names it (``None``:
    neither does)."""
    return {name: next((t for f in files if isinstance(t := _content(f.get(name)), str)), None) for name in SPECIAL}


def _content(token: Any) -> Any:
    return token.get("content") if isinstance(token, dict) else token


def read_json(path: Path) -> dict:
    """A JSON object file as a dict; ``{}`` when it is missing, unreadable or not an object (the caller then
    finds what it needs absent, and says so or leaves the folder to ``transformers``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
