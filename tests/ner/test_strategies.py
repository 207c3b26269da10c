"""Encoders other than BERT: the layers, projections and positions each architecture counts or names its own way."""

from __future__ import annotations

import pytest
import torch
import transformers as T

from drml_ray.config import ModelConfig
from drml_ray.errors import UserError
from drml_ray.ner.strategies import apply_strategy, lora_targets

SMALL = {"hidden_size": 8, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 16}


def model_of(config: T.PretrainedConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    return T.AutoModelForTokenClassification.from_config(config)


def distilbert() -> torch.nn.Module:
    return model_of(T.DistilBertConfig(vocab_size=30, dim=8, n_layers=3, n_heads=2, hidden_dim=16, num_labels=3))


def modernbert() -> torch.nn.Module:
    return model_of(T.ModernBertConfig(vocab_size=30, global_attn_every_n_layers=3, local_attention=8, num_labels=3,
                                       pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
                                       **SMALL))  # fmt: skip


def trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_top_trains_the_last_layers_and_the_head_of_distilbert_and_modernbert():
    top = ModelConfig(strategy="top", top_layers=1)
    names = trainable(apply_strategy(distilbert(), top))
    assert {n.split(".")[0] for n in names} == {"distilbert", "classifier"}
    assert {n.split(".")[3] for n in names if n.startswith("distilbert.")} == {"2"}  # distilbert.transformer.layer.2
    names = trainable(apply_strategy(modernbert(), top))
    assert {n.split(".")[0] for n in names} == {"model", "head", "classifier"}  # ModernBERT's head trains too
    assert {n.split(".")[2] for n in names if n.startswith("model.")} == {"2"}  # model.layers.2


def test_top_refuses_albert_whose_layers_share_one_set_of_weights():
    albert = model_of(T.AlbertConfig(vocab_size=30, embedding_size=8, num_hidden_groups=1, num_labels=3, **SMALL))
    with pytest.raises(UserError, match=r"model.strategy top: AlbertForTokenClassification has no list of its 3 "):
        apply_strategy(albert, ModelConfig(strategy="top", top_layers=1))


@pytest.mark.parametrize(("make", "names", "targets"), [
    (distilbert, ["query", "value"], ["q_lin", "v_lin"]),
    (modernbert, ["query", "key", "value"], ["Wqkv"]),  # one fused projection
    (distilbert, ["attention.out_lin", "value"], ["attention.out_lin", "v_lin"]),  # a name it has stays
])  # fmt: skip
def test_lora_finds_each_architectures_own_names_for_the_attention_projections(make, names, targets):
    model = make()
    assert lora_targets(model, names) == targets
    adapted = apply_strategy(model, ModelConfig(strategy="lora", lora={"target_modules": names}))
    lora = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable(adapted) if ".lora_" in name}
    assert lora == {target.rsplit(".", 1)[-1] for target in targets}


def test_lora_names_the_linear_layers_there_are_when_a_target_is_not_one():
    with pytest.raises(UserError, match=r"has no linear layer 'dense'; its linear layers are called k_lin, lin1, lin2, "
                                        r"out_lin, q_lin, v_lin$"):  # fmt: skip
        lora_targets(distilbert(), ["query", "dense"])


def test_a_window_holds_as_many_sub_tokens_as_the_model_has_positions_for():
    from drml_ray.ner.features import window_positions

    assert window_positions(T.BertConfig(max_position_embeddings=512)) == 512
    assert window_positions(T.XLMRobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512  # (from pad + 1)
    assert window_positions(T.RobertaConfig(max_position_embeddings=130, pad_token_id=0)) == 129
    assert window_positions(T.DistilBertConfig(max_position_embeddings=512)) == 512
