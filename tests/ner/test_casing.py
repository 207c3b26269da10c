from __future__ import annotations

import pytest
import torch

from drml_ray.config import ModelConfig
from drml_ray.ner.batching import collate, collate_packed
from drml_ray.ner.features import encode, encode_documents
from drml_ray.ner.modeling import build_model, load_tokenizer, save_hf_folder

LABELS = ["O", "B-MISC", "I-MISC", "B-ORG", "I-ORG"]
L2I = {label: i for i, label in enumerate(LABELS)}
WORDS = ["EU", "rejects", "Washington-based", "."]  # shapes: ALL CAPS 2, lower 0, Capitalised 1, none 0
TAGS = ["B-ORG", "O", "B-MISC", "O"]


def test_every_sub_token_carries_its_words_shape_context_words_included(hand_tokenizer):
    # [CLS] eu | re ##jects | wash ##ing ##ton - based | . [SEP]
    [window] = encode(hand_tokenizer, [WORDS], [TAGS], L2I, max_length=64, overlap=4, casing=True)
    assert window.type_ids == [0, 2, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert encode(hand_tokenizer, [WORDS], [TAGS], L2I, max_length=64, overlap=4)[0].type_ids is None
    # With document context the neighbours ("EU" before, "." after) keep their own shapes.
    sentences, tags = [["EU"], WORDS, ["."]], [["B-ORG"], TAGS, ["O"]]
    windows = encode(hand_tokenizer, sentences, tags, L2I, max_length=16, overlap=4, documents=[0, 0, 0], casing=True)
    assert windows[1].type_ids == [0, 2, 2, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    [joined] = encode_documents(hand_tokenizer, sentences, tags, L2I, [0, 0, 0], max_length=32, overlap=4, casing=True)
    assert joined.type_ids == [0, 2, 2, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]


def test_padded_and_packed_batches_carry_the_types_where_their_windows_sit(hand_tokenizer):
    windows = encode(hand_tokenizer, [["EU", "in"], WORDS], None, L2I, max_length=64, overlap=4, casing=True)
    padded = collate(windows, pad_id=0)
    assert padded["token_type_ids"].tolist() == [[0, 2, 0, 0] + [0] * 7, windows[1].type_ids]
    packed = collate_packed(windows, [[0, 1]], pad_id=0)
    assert packed["token_type_ids"].tolist() == [[0, 2, 0, 0, *windows[1].type_ids]]
    plain = encode(hand_tokenizer, [WORDS], None, L2I, max_length=64, overlap=4)
    assert "token_type_ids" not in collate(plain, pad_id=0) and "token_type_ids" not in collate_packed(plain, [[0]], 0)


def test_grown_token_types_start_as_the_pretrained_model_and_load_back_in_both_engines(tmp_path):
    from drml_ray.ner.evaluate import load_saved_model

    tokenizer = load_tokenizer("tiny-random-bert")
    plain = build_model(ModelConfig(backbone="tiny-random-bert"), LABELS, seed=0, vocab_size=len(tokenizer)).eval()
    shaped = build_model(ModelConfig(backbone="tiny-random-bert", casing="shape"), LABELS, seed=0,
                         vocab_size=len(tokenizer)).eval()  # fmt: skip
    assert shaped.config.type_vocab_size == 4
    ids, types = torch.tensor([[2, 40, 41, 42, 3]]), torch.tensor([[0, 1, 2, 3, 0]])
    with torch.no_grad():
        expected = plain(input_ids=ids).logits
        torch.testing.assert_close(shaped(input_ids=ids, token_type_ids=types).logits, expected)
        table = shaped.bert.embeddings.token_type_embeddings.weight
        table[1:] += torch.linspace(-1, 1, table.shape[1])  # as training moves the rows apart
        moved = shaped(input_ids=ids, token_type_ids=types).logits
    assert not torch.allclose(moved, expected)
    shaped.config.drml = {"casing": "shape"}
    save_hf_folder(shaped, tokenizer, tmp_path / "best")
    for light in (False, True):
        saved = load_saved_model(tmp_path / "best", light=light)
        assert saved.casing
        with torch.no_grad():
            logits = saved.model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=types).logits
        torch.testing.assert_close(logits, moved)


def test_word_shapes_need_the_full_strategy_and_finetune():
    from pydantic import ValidationError

    from drml_ray.meta.config import MetaExperiment

    with pytest.raises(ValidationError, match="casing: shape needs strategy: full"):
        ModelConfig(casing="shape", strategy="lora")
    with pytest.raises(ValidationError, match="casing: shape is for drml finetune; meta-learning gives no token"):
        MetaExperiment.model_validate({"name": "m", "model": {"casing": "shape"}})
