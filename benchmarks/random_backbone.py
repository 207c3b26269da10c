"""A BERT token classifier with random weights, saved with a tokenizer: a backbone for speed measurements.

    python benchmarks/random_backbone.py --size base|minilm [--tokenizer minilm|FOLDER] OUT_FOLDER

``base`` is ``BertConfig()`` (12 layers, 768 wide), ``minilm`` all-MiniLM-L6-v2's shape (6 layers, 384
wide). Speed does not depend on the weights' values, so a GPU machine without the packaged MiniLM (or
a Hub) can time the real training path with the right shapes: ``--tokenizer`` takes the folder of any
BERT tokenizer (MiniLM's is 700 kB; its weights are 91 MB). ``drml finetune --set model.backbone=OUT``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transformers import BertConfig, BertForTokenClassification

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from drml_ray.ner.modeling import load_tokenizer  # noqa: E402

SIZES = {
    "base": {},
    "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
}
"""``BertConfig`` overrides per model size (``tiny``: CPU checks)."""


def random_backbone(folder: Path, size: str = "base", tokenizer: str = "minilm") -> str:
    """Save a random ``size`` BERT token classifier and ``tokenizer``'s files to ``folder``; returns it."""
    tok = load_tokenizer(tokenizer)
    BertForTokenClassification(BertConfig(vocab_size=len(tok), **SIZES[size])).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--tokenizer", default="minilm")
    args = parser.parse_args()
    print(random_backbone(args.folder, args.size, args.tokenizer))


if __name__ == "__main__":
    main()
