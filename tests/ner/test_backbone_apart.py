"""The backbone check that ``drml finetune`` runs in a separate Python before training, so that the driver does
not hold transformers while its workers train."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    from drml_ray.config import ModelConfig
    from drml_ray.errors import UserError
    from drml_ray.ner.finetune import check_backbone_apart

    check_backbone_apart(ModelConfig(backbone="tiny-random-bert"), 5)
    try:
        check_backbone_apart(ModelConfig(backbone="tiny-random-bert", strategy="top", top_layers=3), 5)
    except UserError as err:
        print("USER ERROR:", err)
    print("TRANSFORMERS IMPORTED:", "transformers" in sys.modules)
""")


def test_the_check_runs_apart_and_brings_its_user_error_back():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    assert "USER ERROR: model.top_layers=3 but the encoder has 2 layers" in out.stdout
    assert "TRANSFORMERS IMPORTED: False" in out.stdout
