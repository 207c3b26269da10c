"""``best/README.md``: a Hugging Face model card for the model ``drml finetune`` saved.

The YAML header follows the Hub's model-card metadata (``library_name``, ``pipeline_tag``, ``tags``,
``base_model``, ``datasets``, and ``model-index`` with the test scores), so ``huggingface_hub.ModelCard``
and the Hub parse it; the body says what the model tags, what it was trained on and with what, how well it
does per type, how to use it and where it should not be trusted.
"""

from __future__ import annotations

from typing import Any

import yaml

from drml_ray.data.registry import CORPORA
from drml_ray.data.tags import entity_types


def card_metadata(name: str, backbone: str, results: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML header: ``model-index`` holds the test entity scores and the token accuracy."""
    data = results["data"]["name"]
    hub_id = CORPORA[data].hub_id if data in CORPORA else None  # a user's own files have none
    test = results["test"]
    metrics = [
        {"type": "f1", "value": round(test["entity"]["micro"]["f1"], 4), "name": "Test entity F1 (micro)"},
        {"type": "precision", "value": round(test["entity"]["micro"]["precision"], 4), "name": "Test precision"},
        {"type": "recall", "value": round(test["entity"]["micro"]["recall"], 4), "name": "Test recall"},
        {"type": "accuracy", "value": round(test["token"]["micro"]["f1"], 4), "name": "Test token accuracy"},
    ]
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "token-classification",
                            "tags": ["token-classification", "ner", "drml-ray"]}  # fmt: skip
    if "/" in backbone and not backbone.startswith((".", "/", "~")):
        meta["base_model"] = backbone  # a Hub id; a local folder or a packaged alias is not one
    if hub_id:
        meta["datasets"] = [hub_id]
    meta["metrics"] = ["f1", "precision", "recall", "accuracy"]
    meta["model-index"] = [{"name": name, "results": [{
        "task": {"type": "token-classification", "name": "Named-entity recognition"},
        "dataset": {"name": data, "type": hub_id or data, "split": "test"},
        "metrics": metrics,
    }]}]  # fmt: skip
    return meta


def model_card(name: str, backbone: str, config_yaml: str, results: dict[str, Any]) -> str:
    """The whole ``README.md``: metadata header, then the card's sections."""
    header = yaml.safe_dump(card_metadata(name, backbone, results), sort_keys=False)
    data = results["data"]
    types = entity_types(data["labels"])
    sizes = ", ".join(f"{split} {n:,}" for split, n in data["sizes"].items())
    sections = [
        f"# {name}\n\nA named-entity recognition model fine-tuned from `{backbone}` with "
        f"drml-ray (`drml finetune`). It tags {len(types)} entity types: "
        f"{', '.join(f'`{t}`' for t in types)} (IOB2 labels: {', '.join(data['labels'])}).",
        f"## Training data\n\n`{data['name']}`{' (generated template sentences)' if data['generated'] else ''}: "
        f"{sizes} sentences. Sources: {', '.join(f'{k}: `{v}`' for k, v in data['sources'].items())}.",
        f"## Results\n\n{_best_epoch(results)}{_scores_table(results)}",
        '## How to use\n\n```bash\ndrml predict path/to/best --text "Angela Merkel visited Paris."\n'
        "drml serve path/to/best   # HTTP: POST /v1/predict\n```\n\nor with transformers: "
        '`pipeline("token-classification", model="path/to/best", aggregation_strategy="first")`.',
        "## Intended use and limits\n\nTagging the entity types above in text like the training data's "
        f"(`{data['name']}`). Scores are on that corpus's test split; text of another domain, language or "
        "period, or types the model never saw, will score lower: measure before relying on it. Words are "
        "split on letters, digits and punctuation; very long texts are tagged in overlapping windows.",
        f"## Training configuration\n\n```yaml\n{config_yaml.rstrip()}\n```",
    ]
    return f"---\n{header}---\n\n" + "\n\n".join(sections) + "\n"


def _best_epoch(results: dict[str, Any]) -> str:
    """A run records the epoch it kept; a search's best trial is summarised in its own results."""
    return f"Best epoch {results['best_epoch']:g} (chosen on dev entity F1).\n\n" if "best_epoch" in results else ""


def _scores_table(results: dict[str, Any]) -> str:
    """Per-type entity F1 on dev and test, then the micro average."""
    rows = ["| type | dev F1 | test F1 | test support |", "|---|---|---|---|"]
    dev, test = results["dev"]["entity"], results["test"]["entity"]
    for kind, scores in test["per_type"].items():
        dev_f1 = dev["per_type"].get(kind, {}).get("f1")
        rows.append(f"| {kind} | {_pct(dev_f1)} | {_pct(scores['f1'])} | {scores['support']} |")
    rows.append(f"| **micro** | {_pct(dev['micro']['f1'])} | {_pct(test['micro']['f1'])} | "
                f"{test['micro']['support']} |")  # fmt: skip
    return "\n".join(rows)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"
