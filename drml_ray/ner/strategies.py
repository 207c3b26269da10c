"""The three fine-tuning strategies, on any encoder transformers has a token-classification head for.

- ``full``: every weight trains.
- ``top``: the last ``top_layers`` transformer layers and the task head train; the embeddings and the layers
  below are frozen. The layers are the model's list of as many blocks as its config has layers
  (``encoder.layer`` in BERT, DeBERTa, XLM-R, ELECTRA; ``transformer.layer`` in DistilBERT; ``layers`` in
  ModernBERT); the head is every weight outside the base model (ModernBERT's ``head`` too, not the classifier
  alone).
- ``lora``: PEFT LoRA adapters on ``target_modules`` plus the classifier, which is listed in ``modules_to_save``
  so it is trained *and* saved (the classic PEFT pitfall, peft#310). ``query``, ``key`` and ``value`` name the
  attention projections whatever the architecture calls them (:data:`ATTENTION_NAMES`: DistilBERT's ``q_lin``,
  DeBERTa's ``query_proj``, ModernBERT's fused ``Wqkv``). The export merges the adapters, so the saved folder
  loads with plain ``transformers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from drml_ray.config import ModelConfig
from drml_ray.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

ATTENTION_NAMES = {
    "query": ("query_proj", "q_proj", "q_lin", "q", "Wqkv", "qkv", "in_proj", "query_key_value", "c_attn"),
    "key": ("key_proj", "k_proj", "k_lin", "k", "Wqkv", "qkv", "in_proj", "query_key_value", "c_attn"),
    "value": ("value_proj", "v_proj", "v_lin", "v", "Wqkv", "qkv", "in_proj", "query_key_value", "c_attn"),
}
"""Other architectures' names of BERT's ``query``, ``key`` and ``value`` projections, first found wins (a fused
projection serves all three)."""


def apply_strategy(model: PreTrainedModel, cfg: ModelConfig) -> torch.nn.Module:
    """Freeze or wrap ``model`` for ``cfg.strategy``; returns the module to train."""
    if cfg.strategy == "full":
        return model
    if cfg.strategy == "top":
        layers = transformer_layers(model)
        if not 1 <= cfg.top_layers <= len(layers):
            raise UserError(f"model.top_layers={cfg.top_layers} but the encoder has {len(layers)} layers")
        model.requires_grad_(False)
        for layer in layers[len(layers) - cfg.top_layers :]:
            layer.requires_grad_(True)
        for name, module in model.named_children():
            if name != model.base_model_prefix:  # the task head
                module.requires_grad_(True)
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.TOKEN_CLS, r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
        target_modules=lora_targets(model, cfg.lora.target_modules), modules_to_save=["classifier"],
    )  # fmt: skip
    return get_peft_model(model, lora)


def transformer_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The base model's list of its transformer blocks: the outermost list as long as the config's layer count."""
    depth = model.config.num_hidden_layers  # (transformers maps each architecture's own key to it: n_layers, ...)
    base = getattr(model, model.base_model_prefix, model)
    for module in base.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth:
            return module
    raise UserError(f"model.strategy top: {type(model).__name__} has no list of its {depth} transformer layers to "
                    "train the last of (ALBERT shares one layer's weights across them all); use strategy full or "
                    "lora")  # fmt: skip


def lora_targets(model: torch.nn.Module, names: list[str]) -> list[str]:
    """``names`` as the model's linear layers are called: ``query``/``key``/``value`` that it lacks become its own
    names for them (:data:`ATTENTION_NAMES`); a name it has no linear layer of is refused, with those it has."""
    linear = [name for name, module in model.named_modules() if _is_linear(module) and name != "classifier"]

    def has(target: str) -> bool:
        return any(name == target or name.endswith(f".{target}") for name in linear)

    targets: list[str] = []
    for name in names:
        found = name if has(name) else next((a for a in ATTENTION_NAMES.get(name, ()) if has(a)), None)
        if found is None:
            kinds = sorted({name.rsplit(".", 1)[-1] for name in linear})
            raise UserError(f"model.lora.target_modules {list(names)}: {type(model).__name__} has no linear layer "
                            f"{name!r}; its linear layers are called {', '.join(kinds)}")  # fmt: skip
        if found not in targets:
            targets.append(found)
    return targets


def _is_linear(module: torch.nn.Module) -> bool:
    """A layer LoRA can adapt: ``nn.Linear``, or the ``Conv1D`` GPT-2 keeps its projections in."""
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def trainable_summary(model: torch.nn.Module) -> str:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"{trainable:,} of {total:,} weights train ({100 * trainable / total:.2f}%)"


def export_model(model: torch.nn.Module) -> PreTrainedModel:
    """A plain ``transformers`` model for saving: LoRA adapters merged into the base weights."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model
