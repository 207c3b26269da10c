"""The backbone check that ``drml finetune`` runs in a separate Python before training, so that the driver does
not hold transformers while its workers train."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    from drml_ray.config import ModelConfig
    from drml_ray.errors import UserError
    from drml_ray.ner.finetune import check_backbone_apart

    check_backbone_apart(ModelConfig(backbone="tiny-random-bert"), 5, ["Anna", "visited", "Berlin"])
    check_backbone_apart(ModelConfig(backbone="tiny-random-bert"), 5, ["대한민국", "서울", "삼성전자"])
    try:
        check_backbone_apart(ModelConfig(backbone="tiny-random-bert", strategy="top", top_layers=3), 5, [])
    except UserError as err:
        print("USER ERROR:", err)
    print("TRANSFORMERS IMPORTED:", "transformers" in sys.modules)
""")


def test_the_check_runs_apart_and_brings_its_user_error_back():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    assert "USER ERROR: model.top_layers=3 but the encoder has 2 layers" in out.stdout
    assert "TRANSFORMERS IMPORTED: False" in out.stdout
    # MiniLM's English vocabulary reads Korean letter by letter: said once, for the Korean words only
    assert out.stderr.count("[drml] model.backbone 'tiny-random-bert' reads the train split's words in ") == 1
    assert "sub-tokens each (English: about 1.3): its vocabulary does not cover the corpus' language" in out.stderr


def test_a_vocabulary_that_does_not_cover_the_corpus_is_warned_of(caplog):
    from drml_ray.ner.features import vocabulary_fit
    from drml_ray.ner.modeling import load_tokenizer, note_vocabulary_fit

    tokenizer = load_tokenizer("minilm")
    assert vocabulary_fit(tokenizer, ["Anna", "visited", "Berlin"]) == (1.0, 0.0)  # three words of its vocabulary
    pieces, unknown = vocabulary_fit(tokenizer, ["我", "\u2e9f", "ኢትዮጵያ", "Berlin"])  # (two it lacks)
    assert (pieces, unknown) == (1.0, 0.5)
    with caplog.at_level(logging.WARNING, logger="drml_ray.ner.modeling"):
        note_vocabulary_fit(tokenizer, ["Anna", "visited", "Berlin"] * 10 + ["ኢትዮጵያ"], "minilm")  # 3% unknown
        assert caplog.text == ""
        note_vocabulary_fit(tokenizer, ["Anna", "ኢትዮጵያ"], "minilm")
    assert "reads the train split's words in 1.0 sub-tokens each, 50% of them as [UNK] (English" in caplog.text
