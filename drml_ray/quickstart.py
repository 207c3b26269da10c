"""``drml quickstart``: fine-tune, report, and show a few predictions, on a local Ray."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drml_ray.config import load_config
from drml_ray.data.load import load_corpus
from drml_ray.errors import UserError
from drml_ray.ner.finetune import run_finetune
from drml_ray.ner.predict import predict_lines
from drml_ray.runtime.rundir import FINISHED_MARKER, check_same_config, default_run_dir, held
from drml_ray.text import shell

N_EXAMPLES = 5


def run_quickstart(config_path: Path, output_dir: Path | None, *, overwrite: bool = False) -> Path:
    """Run the quickstart experiment (or reuse a finished one) and print example predictions."""
    if not config_path.is_file():
        raise UserError(f"{config_path}: the quickstart config is missing from this install of drml-ray")
    cfg = load_config(config_path)
    run_dir = Path(output_dir or default_run_dir(cfg.name)).resolve()
    corpus = load_corpus(cfg.data)  # read (or fetched, or replaced by the fallback) once
    if (run_dir / FINISHED_MARKER).exists() and not overwrite:
        show_finished(run_dir, cfg)
    else:
        with held(run_dir):
            run_finetune(cfg, run_dir, overwrite=overwrite, corpus=corpus)
    test = corpus.splits["test"][:N_EXAMPLES]
    texts = [" ".join(s.tokens) for s in test]
    print(f"== a few test sentences through drml predict ({corpus.name}) ==")
    for line in predict_lines(run_dir / "best", texts, pretokenized=True, engine="local"):
        record = json.loads(line)
        found = ", ".join(f"{e['text']} [{e['type']} {e['score']:.2f}]" for e in record["entities"]) or "(none)"
        print(f"- {record['text']}\n    -> {found}")
    print(
        f"\n[drml] everything is in {run_dir}: best/ (Hugging Face model), results.json, report_dev.txt, "
        f"report_test.txt, config.yaml, tensorboard/ (tensorboard --logdir {shell(run_dir / 'tensorboard')})\n"
        f'[drml] next: drml predict {shell(run_dir / "best")} --text "Your sentence here."'
    )
    return run_dir


def show_finished(run_dir: Path, cfg: Any) -> None:
    """Print the reports of the finished run in ``run_dir``, refusing one of another config."""
    check_same_config(run_dir / "config.yaml", cfg)
    print(f"[drml] {run_dir} already holds a finished quickstart (pass --overwrite to train again):")
    for split in ("dev", "test"):
        report = run_dir / f"report_{split}.txt"
        print(report.read_text(encoding="utf-8") if report.is_file() else
              f"({report.name} is not there: drml report {shell(run_dir)} shows the run's scores)\n")  # fmt: skip
