from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForTokenClassification

from drml_ray.config import ModelConfig
from drml_ray.errors import UserError
from drml_ray.ner.modeling import build_model, save_hf_folder
from drml_ray.ner.optimization import group_schedule, lr_factor, make_optimizer, param_groups, regrouped_state
from drml_ray.ner.strategies import export_model

LABELS = ["O", "B-PER", "I-PER"]


def tiny(strategy: str, **kwargs) -> torch.nn.Module:
    cfg = ModelConfig(backbone="tiny-random-bert", strategy=strategy, **kwargs)
    return build_model(cfg, LABELS, seed=0, vocab_size=40)


def trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_lr_schedule_hand_values():
    assert [lr_factor(s, 2, 10) for s in (0, 1, 2, 6, 10, 12)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    assert lr_factor(0, 0, 4) == 1.0  # no warm-up


def test_label_maps_in_config_and_seeded_head():
    model = tiny("full")
    assert model.config.id2label == {0: "O", 1: "B-PER", 2: "I-PER"}
    assert torch.equal(model.classifier.weight, tiny("full").classifier.weight)


def dropouts(model: torch.nn.Module) -> dict[str, float]:
    """Dropout probability of the attention maps and of everything else (each must be one value)."""
    found: dict[str, set[float]] = {"attention": set(), "hidden": set()}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout):
            found["attention" if name.endswith("attention.self.dropout") else "hidden"].add(module.p)
    assert all(len(values) == 1 for values in found.values()), found
    return {key: values.pop() for key, values in found.items()}


def test_attention_dropout_and_hidden_dropout_are_set_apart():
    assert dropouts(tiny("full")) == {"attention": 0.1, "hidden": 0.1}  # BertConfig's own
    assert dropouts(tiny("full", attention_dropout=0.0)) == {"attention": 0.0, "hidden": 0.1}
    assert dropouts(tiny("full", dropout=0.3)) == {"attention": 0.1, "hidden": 0.3}
    model = tiny("full", dropout=0.2, attention_dropout=0.05)
    assert dropouts(model) == {"attention": 0.05, "hidden": 0.2}
    assert model.config.attention_probs_dropout_prob == 0.05  # travels with the saved model


def test_attention_dropout_on_a_backbone_without_one_to_set_is_a_user_error():
    from transformers import XLNetConfig

    from drml_ray.ner.modeling import set_attention_dropout

    with pytest.raises(UserError, match=r"model.attention_dropout: .*xlnet.* has no dropout on its attention to set"):
        set_attention_dropout(XLNetConfig(), ModelConfig(attention_dropout=0.0))


def test_distilberts_attention_dropout_is_its_own_and_the_hidden_one_leaves_it(tmp_path):
    from transformers import DistilBertConfig, DistilBertForTokenClassification

    DistilBertForTokenClassification(DistilBertConfig(vocab_size=30, dim=8, n_layers=1, n_heads=2, hidden_dim=16,
                                                      num_labels=3)).save_pretrained(tmp_path / "d")  # fmt: skip
    model = build_model(ModelConfig(backbone=str(tmp_path / "d"), dropout=0.3, attention_dropout=0.05), LABELS, seed=0)
    found = {name.split("layer.0.")[-1]: module.p for name, module in model.named_modules()
             if isinstance(module, torch.nn.Dropout)}  # fmt: skip
    assert found == {
        "attention.dropout": 0.05,
        "ffn.dropout": 0.3,
        "distilbert.embeddings.dropout": 0.3,
        "dropout": 0.3,
    }
    assert (model.config.dropout, model.config.attention_dropout) == (0.3, 0.05)  # (what the saved folder says)


def test_top_strategy_trains_last_layers_and_head_only():
    names = trainable(tiny("top", top_layers=1))
    assert names and all(n.startswith(("bert.encoder.layer.1.", "classifier.")) for n in names)
    assert "classifier.weight" in names and "bert.encoder.layer.1.output.dense.weight" in names
    with pytest.raises(UserError, match="top_layers=3 but the encoder has 2 layers"):
        tiny("top", top_layers=3)


def test_no_weight_decay_on_biases_and_layernorm():
    model = tiny("full")
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert any("LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_head_lr_gives_the_classifier_its_own_groups_and_no_warmup(strategy):
    model = tiny(strategy, **({"lora": {"r": 2, "target_modules": ["query"]}} if strategy == "lora" else {}))
    names = {id(p): n for n, p in model.named_parameters()}
    optimizer = make_optimizer(model, 1e-4, 0.01, fused=False, head_lr=3e-3)
    body, head = optimizer.param_groups[:2], optimizer.param_groups[2:]
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-4, 3e-3, 3e-3]
    assert [g["weight_decay"] for g in head] == [0.01, 0.0]
    assert [names[id(p)].rsplit(".", 1)[1] for g in head for p in g["params"]] == ["weight", "bias"]
    assert all("classifier" in names[id(p)] for g in head for p in g["params"])
    assert not any("classifier" in names[id(p)] for g in body for p in g["params"])
    # Warm-up 10 of 110 steps: the body climbs from 0, the head starts at its peak; both reach 0 at step 110.
    factors = [group_schedule(g, 10, 110)(step) for step in (0, 5, 60, 110) for g in optimizer.param_groups]
    assert factors == pytest.approx([0, 0, 1, 1, 0.5, 0.5, 105 / 110, 105 / 110, 0.5, 0.5, 50 / 110, 50 / 110,
                                     0, 0, 0, 0])  # fmt: skip
    assert len(param_groups(model, 0.01)) == 2  # unset: the head trains with the body, as before


def test_head_lr_on_a_model_without_a_classifier_is_a_user_error():
    with pytest.raises(UserError, match="train.head_lr is set, but Linear has no trainable module named 'classifier'"):
        param_groups(torch.nn.Linear(2, 2), 0.01, head_lr=1e-3)


@pytest.mark.parametrize(("saved_head_lr", "head_lr"), [(3e-3, None), (None, 3e-3)])
def test_adam_moments_follow_each_parameter_when_head_lr_is_set_on_one_side_only(saved_head_lr, head_lr):
    """A PBT trial carrying on from another trial's checkpoint, train.head_lr set in one config only."""
    model = tiny("full")
    names = [n for n, _ in model.named_parameters()]
    saved = make_optimizer(model, 1e-4, 0.01, fused=False, head_lr=saved_head_lr)
    for k, p in enumerate(model.parameters(), start=1):
        p.grad = torch.full_like(p, float(k))  # parameter k's gradient is k everywhere
    saved.step()  # one AdamW step: exp_avg = (1 - 0.9) k, exp_avg_sq = (1 - 0.999) k^2
    optimizer = make_optimizer(model, 2e-4, 0.01, fused=False, head_lr=head_lr)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optimizer.load_state_dict(saved.state_dict())  # what a PBT restart did before
    optimizer.load_state_dict(regrouped_state(saved.state_dict(), optimizer, model))
    for k, (name, p) in enumerate(model.named_parameters(), start=1):
        moments = optimizer.state[p]
        assert float(moments["step"]) == 1.0, name
        assert torch.allclose(moments["exp_avg"], torch.full_like(p, 0.1 * k)), name
        assert torch.allclose(moments["exp_avg_sq"], torch.full_like(p, 0.001 * k * k)), name
    assert len(optimizer.param_groups) == (4 if head_lr else 2) and optimizer.param_groups[0]["lr"] == 2e-4
    assert len(names) == sum(len(g["params"]) for g in optimizer.param_groups)


def test_lora_trains_adapters_and_head_and_exports_a_plain_model(tmp_path, hand_tokenizer):
    model = tiny("lora", lora={"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["query", "value"]})
    names = trainable(model)
    assert any("lora_A" in n for n in names) and any("classifier" in n for n in names)
    assert all("lora_" in n or "classifier" in n for n in names)
    with torch.no_grad():  # make the adapters do something, so merging is visible
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    model.eval()
    ids = torch.tensor([[2, 5, 6, 3]])
    expected = model(input_ids=ids).logits
    save_hf_folder(model, hand_tokenizer, tmp_path / "best")
    plain = AutoModelForTokenClassification.from_pretrained(tmp_path / "best").eval()
    assert not any("lora" in n for n, _ in plain.named_parameters())
    torch.testing.assert_close(plain(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-5)


def test_export_of_a_plain_model_is_itself():
    model = tiny("full")
    assert export_model(model) is model


@pytest.mark.parametrize("sharded", [False, True])
def test_a_saved_head_is_carried_over_by_label_not_by_position(tmp_path, hand_tokenizer, sharded):
    saved = tiny("full")
    save_hf_folder(saved, hand_tokenizer, tmp_path / "m")
    if sharded:  # (model.safetensors.index.json names the shard the classifier is in)
        (tmp_path / "m" / "model.safetensors").unlink()
        saved.save_pretrained(tmp_path / "m", max_shard_size="20KB")
        assert len(list((tmp_path / "m").glob("model-*.safetensors"))) > 1
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    model = build_model(ModelConfig(backbone=str(tmp_path / "m")), labels, seed=1)
    assert torch.equal(model.classifier.weight[0], saved.classifier.weight[0])  # O
    assert torch.equal(model.classifier.weight[3:], saved.classifier.weight[1:])  # B-PER, I-PER moved
    # Same size, other labels: nothing may be kept by position.
    other = build_model(ModelConfig(backbone=str(tmp_path / "m")), ["O", "B-LOC", "I-LOC"], seed=1)
    assert torch.equal(other.classifier.weight[0], saved.classifier.weight[0])
    assert not torch.equal(other.classifier.weight[1], saved.classifier.weight[1])


def test_a_saved_model_is_readable_as_the_umask_says_not_the_owners_alone(tmp_path, hand_tokenizer, umask_027):
    # (safetensors wrote model.safetensors 0600: a model another user serves or reads failed to open)
    save_hf_folder(tiny("full"), hand_tokenizer, tmp_path / "m")
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "m").iterdir()}
    assert "model.safetensors" in modes and modes == dict.fromkeys(modes, umask_027)


def test_a_hub_models_head_is_carried_over_by_label_too(tmp_path, monkeypatch, hand_tokenizer):
    """A Hub id (read from the Hub cache here: HF_HUB_OFFLINE, as with a network) kept its head's rows by position:
    the same label set in another order gave each label another label's row."""
    from huggingface_hub import constants

    from tests.helpers import offline_hub_cache

    saved = tiny("full")  # (labels O, B-PER, I-PER)
    save_hf_folder(saved, hand_tokenizer, offline_hub_cache(tmp_path, monkeypatch, "org/ner"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # (the id itself goes to from_pretrained)
    model = build_model(ModelConfig(backbone="org/ner"), ["O", "B-PER", "I-PER"][::-1], seed=1)
    assert torch.equal(model.classifier.weight, saved.classifier.weight.flip(0))


def test_the_run_says_which_labels_keep_their_row_of_the_backbones_head(tmp_path):
    from drml_ray.meta.label_head import GENERATOR_FILE
    from drml_ray.ner.finetune import head_note

    def folder(name: str, id2label: dict[int, str]) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"id2label": id2label}))
        return str(tmp_path / name)

    ner = folder("ner", {0: "O", 1: "B-PER", 2: "I-PER"})
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert head_note(ner, labels) == (f"3 of 5 labels keep their row of {ner}'s trained head (O, B-PER, I-PER); 2 "
                                      "start at random (B-LOC, I-LOC)")  # fmt: skip
    assert head_note(ner, ["O", "B-PER", "I-PER"]) is None  # the head as it is
    assert head_note(folder("encoder", {0: "LABEL_0", 1: "LABEL_1"}), labels) is None  # no trained head: all fresh
    (tmp_path / "ner" / GENERATOR_FILE).write_bytes(b"")
    assert "; 2 start from their names (its label-name generator) (B-LOC, I-LOC)" in head_note(ner, labels)


def test_a_folder_with_a_label_name_generator_builds_rows_for_new_labels(tmp_path, hand_tokenizer):
    from drml_ray.meta.label_head import LabelNameHead, head_rows, save_generator

    saved = tiny("full")
    save_hf_folder(saved, hand_tokenizer, tmp_path / "m")
    generator = LabelNameHead(saved.config.hidden_size)
    save_generator(generator, tmp_path / "m")
    labels = ["O", "B-PER", "I-PER", "B-times", "I-times"]
    model = build_model(ModelConfig(backbone=str(tmp_path / "m")), labels, seed=1)
    names = {"PER": "person", "times": "times"}
    weight, bias = head_rows(generator, saved.base_model, hand_tokenizer, labels, names)
    assert torch.equal(model.classifier.weight[:3], saved.classifier.weight)  # known labels: the saved rows
    assert torch.allclose(model.classifier.weight[3:], weight[3:])  # new ones: from their names
    assert torch.allclose(model.classifier.bias[3:], bias[3:])


def byte_level_folder(folder, vocab_rows: int | None = None):
    """A RoBERTa folder: a byte-level BPE tokenizer trained here (no space marked before a pre-split word, as
    RoBERTa's own) and, with ``vocab_rows``, a tiny model embedding that many tokens."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForTokenClassification, RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["Anna visited Paris and Bob visited Rome"] * 50, vocab_size=280,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])  # fmt: skip
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                     unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")  # fmt: skip
    tokenizer.save_pretrained(folder)
    if vocab_rows:
        config = RobertaConfig(vocab_size=vocab_rows, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=16, max_position_embeddings=40)  # fmt: skip
        RobertaForTokenClassification(config).save_pretrained(folder)
    return tokenizer


def test_a_byte_level_tokenizer_marks_the_space_before_every_word_it_is_handed(tmp_path):
    from drml_ray.ner.modeling import open_tokenizer

    plain = byte_level_folder(tmp_path)
    words = ["Anna", "visited", "Paris"]
    # (as saved: "visited" read as if glued to "Anna", which pre-training never saw mid-sentence)
    assert not plain(words, is_split_into_words=True, add_special_tokens=False).tokens()[-1].startswith("Ġ")
    encoded = open_tokenizer(tmp_path)(words, is_split_into_words=True, add_special_tokens=False)
    firsts = [t for i, t in enumerate(encoded.tokens()) if i == 0 or encoded.word_ids()[i] != encoded.word_ids()[i - 1]]
    assert len(firsts) == 3 and all(t.startswith("Ġ") for t in firsts)


def test_a_tokenizer_with_more_tokens_than_the_model_embeds_is_refused(tmp_path):
    from drml_ray.ner.modeling import check_backbone

    byte_level_folder(tmp_path, vocab_rows=20)  # (an IndexError in the embedding's forward before)
    with pytest.raises(UserError, match=r"its tokenizer has 2\d\d tokens but the model embeds 20: are the tokenizer"):
        check_backbone(ModelConfig(backbone=str(tmp_path), max_length=32), num_labels=3)


def test_a_backbone_folder_without_a_tokenizer_says_what_the_folder_is(tmp_path):
    """The Python API path (no config-time check ran): a run directory names its ``best/``, an empty folder is
    said to hold no model, as ``drml configs check`` says them."""
    from drml_ray.ner.modeling import load_tokenizer

    (tmp_path / "run" / "best").mkdir(parents=True)
    (tmp_path / "run" / "best" / "config.json").write_text("{}")
    with pytest.raises(UserError, match=f"a run directory; its model is {tmp_path / 'run' / 'best'}"):
        load_tokenizer(str(tmp_path / "run"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: neither a model folder \(config.json\) nor a run directory"):
        load_tokenizer(str(tmp_path / "empty"))


def test_a_hub_id_with_no_network_is_read_from_the_hub_cache_at_once(tmp_path, monkeypatch):
    """No network (the endpoint's name does not resolve: ``.invalid`` never does): the Hub's client retried each
    file for ~25 s before transformers fell back to the cache or failed; the cached snapshot is read at once, and
    an id the cache lacks is refused saying so."""
    from drml_ray.hub import hub_source
    from drml_ray.ner.modeling import load_tokenizer, packaged_minilm_dir
    from tests.helpers import offline_hub_cache

    snapshot = offline_hub_cache(tmp_path, monkeypatch, "org/tiny")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (snapshot / name).write_bytes((packaged_minilm_dir() / name).read_bytes())
    # (a local Ray sets it: no proxy, though getproxies() lists it)
    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "1")
    assert len(load_tokenizer("org/tiny")) == 30522  # (MiniLM's vocabulary, from the snapshot)
    with pytest.raises(UserError, match=r"'org/other': hub.invalid cannot be reached .* the Hub cache \(.*\) does not"):
        load_tokenizer("org/other")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    assert hub_source("org/other") == "org/other"  # (a proxy resolves names itself: the Hub's client asks it)


def test_the_hub_id_of_the_packaged_minilm_reads_the_packaged_copy_where_the_hub_cannot_give_it(tmp_path, monkeypatch):
    """``sentence-transformers/all-MiniLM-L6-v2`` offline was refused (the cache lacks it), though drml ships it."""
    from drml_ray.ner.modeling import PACKAGED_HUB_ID, packaged_minilm_dir, resolve_backbone
    from tests.helpers import offline_hub_cache

    snapshot = offline_hub_cache(tmp_path, monkeypatch, "org/tiny")
    assert resolve_backbone(PACKAGED_HUB_ID) == resolve_backbone(PACKAGED_HUB_ID.upper()) == str(packaged_minilm_dir())
    with pytest.raises(UserError, match="does not hold it"):
        resolve_backbone("sentence-transformers/all-MiniLM-L12-v2")  # (only the packaged model)
    cached = offline_hub_cache(tmp_path, monkeypatch, PACKAGED_HUB_ID)
    assert resolve_backbone(PACKAGED_HUB_ID) == str(cached) != str(snapshot)  # the Hub's copy, where it has one
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    assert resolve_backbone("Sentence-Transformers/all-MiniLM-L6-v2") == "Sentence-Transformers/all-MiniLM-L6-v2"


def test_a_backbone_with_no_token_classification_head_is_a_user_error(tmp_path):
    """A vision model's folder (with a text tokenizer beside it) failed the check as a bug: AttributeError,
    'ViTConfig' object has no attribute 'vocab_size'."""
    from transformers import ViTConfig

    from drml_ray.ner.modeling import check_backbone, packaged_minilm_dir

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37).save_pretrained(
        tmp_path
    )
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (tmp_path / name).write_bytes((packaged_minilm_dir() / name).read_bytes())
    with pytest.raises(UserError, match=r"a vit model \(ViTConfig\), which transformers has no token-classification"):
        check_backbone(ModelConfig(backbone=str(tmp_path)), num_labels=3)
