"""best/README.md: a model card the Hub's own parser reads, with the scores of results.json."""

from __future__ import annotations

from huggingface_hub import ModelCard

from drml_ray.ner.model_card import model_card


def _scores(f1: float, per_type: dict[str, float]) -> dict:
    micro = {"precision": 0.9, "recall": 0.8, "f1": f1, "support": 10}
    types = {k: {"precision": v, "recall": v, "f1": v, "support": 5} for k, v in per_type.items()}
    return {"entity": {"micro": micro, "per_type": types}, "token": {"micro": {"f1": 0.97}}}


RESULTS = {
    "dev": _scores(0.85, {"LOC": 0.9, "PER": 0.8}),
    "test": _scores(0.8125, {"LOC": 0.875, "PER": 0.75}),
    "best_epoch": 3.0,
    "data": {"name": "conll2003", "generated": False, "sources": {"train": "eng.train"},
             "sizes": {"train": 100, "dev": 10, "test": 10}, "labels": ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]},
}  # fmt: skip


def test_the_hub_parses_the_card_and_finds_the_test_scores(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(model_card("conll-run", "sentence-transformers/all-MiniLM-L6-v2", "name: conll-run\n", RESULTS))
    card = ModelCard.load(path)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "token-classification"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.datasets == ["eriktks/conll2003"]
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"f1": 0.8125, "precision": 0.9, "recall": 0.8, "accuracy": 0.97}
    assert card.data.eval_results[0].dataset_split == "test" and card.data.model_name == "conll-run"
    assert "| LOC | 90.00 | 87.50 | 5 |" in card.text and "| **micro** | 85.00 | 81.25 | 10 |" in card.text
    assert "## Intended use and limits" in card.text and "name: conll-run" in card.text


def test_a_local_backbone_and_an_own_corpus_claim_no_hub_ids(tmp_path):
    own = {**RESULTS, "data": {**RESULTS["data"], "name": "my_corpus"}}
    path = tmp_path / "README.md"
    path.write_text(model_card("mine", "/models/bert", "name: mine\n", own))
    card = ModelCard.load(path)
    assert card.data.base_model is None and card.data.datasets is None
    assert card.data.eval_results[0].dataset_type == "my_corpus"
