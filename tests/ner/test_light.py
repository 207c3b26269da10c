"""The transformers-free BERT of `drml predict`: the same logits and sub-tokens as transformers, and a fallback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from drml_ray.config import ModelConfig
from drml_ray.ner.evaluate import load_saved_model, predict_tags
from drml_ray.ner.light import LightBert, light_reason
from drml_ray.ner.modeling import build_model, load_tokenizer, save_hf_folder

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
WORDS = [["Angela", "Merkel", "visited", "Paris", "."], ["Ünïcode", "naïve", "café", "東京", "x" * 300], ["a"]]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tokenizer = load_tokenizer("tiny-random-bert")
    model = build_model(ModelConfig(backbone="tiny-random-bert"), LABELS, seed=5, vocab_size=len(tokenizer))
    model.config.drml = {"max_length": 24, "window_overlap": 4}
    path = tmp_path_factory.mktemp("light") / "best"
    save_hf_folder(model, tokenizer, path)
    return path


def test_logits_and_sub_tokens_equal_transformers(folder):
    heavy, light = load_saved_model(folder), load_saved_model(folder, light=True)
    assert isinstance(light.model, LightBert) and not isinstance(heavy.model, LightBert)
    assert (light.max_length, light.overlap, light.labels) == (24, 4, heavy.labels)
    ids = torch.tensor([[2, 100, 200, 300, 3, 0, 0], [2, 7, 3, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = heavy.model(input_ids=ids, attention_mask=mask).logits
        got = light.model(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(got[mask.bool()], expected[mask.bool()], atol=1e-5)
    a = heavy.tokenizer(WORDS, is_split_into_words=True, add_special_tokens=False)
    b = light.tokenizer(WORDS, is_split_into_words=True, add_special_tokens=False)
    assert a["input_ids"] == b["input_ids"] and all(a.word_ids(i) == b.word_ids(i) for i in range(len(WORDS)))
    assert predict_tags(light, WORDS)[0] == predict_tags(heavy, WORDS)[0]  # windows of 22 sub-tokens: split


def test_a_folder_it_cannot_read_the_same_way_goes_to_transformers(folder, tmp_path):
    assert light_reason(folder) is None
    other = tmp_path / "other"
    other.mkdir()
    for file in folder.iterdir():
        (other / file.name).write_bytes(file.read_bytes())
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    assert "is not plain BERT" in light_reason(other)
    assert not isinstance(load_saved_model(other, light=True).model, LightBert)
    (other / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))  # a layer the file lacks
    assert "bert.encoder.layer.2." in light_reason(other)
    (other / "config.json").write_text(json.dumps({**config, "id2label": {"0": "O"}}))  # not the head's 5 labels
    assert "sized otherwise" in light_reason(other)
    (other / "tokenizer.json").unlink()
    assert "tokenizer.json" in light_reason(other)


def test_predicting_a_sentence_imports_no_transformers(folder):
    code = (
        "import sys; from drml_ray.ner.predict import predict_lines; "
        f"print(list(predict_lines({str(folder)!r}, ['Anna met Bob in Paris .'], True))[0]); "
        "print('transformers' in sys.modules, 'seqeval' in sys.modules, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    record, imported = out.strip().splitlines()
    assert json.loads(record)["text"] == "Anna met Bob in Paris ."
    assert imported == "False False False"


def test_packed_prediction_equals_window_by_window_in_both_models(folder):
    from drml_ray.ner.features import encode
    from drml_ray.ner.inference import predict_windows

    sentences = [*WORDS, *(["Paris", "is", "big"][: n % 3 + 1] * n for n in (1, 2, 4, 5)), ["Anna", "met", "Bo"] * 12]
    for saved in (load_saved_model(folder), load_saved_model(folder, light=True)):
        windows = encode(saved.tokenizer, sentences, None, {}, max_length=24, overlap=4)
        batches = [list(range(len(windows)))]  # one batch of 3 to 24 sub-tokens: packed into one row of 128
        lengths = sorted(len(w.input_ids) for w in windows)
        assert len(windows) > len(sentences) and (lengths[0], lengths[-1]) == (3, 24) and sum(lengths) <= 128
        kw = {"pad_id": saved.tokenizer.pad_token_id, "device": torch.device("cpu")}
        packed, alone = (predict_windows(saved.model, windows, batches, pack=p, **kw) for p in (True, False))
        for i in range(len(windows)):  # each window's own positions and attention, whatever it shares a row with
            assert (packed[i].argmax(-1) == alone[i].argmax(-1)).all()
            assert packed[i] == pytest.approx(alone[i], abs=1e-5)
