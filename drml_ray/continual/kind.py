"""Continual learning as an experiment kind: ``drml continual`` on a config with a ``continual:`` section."""

from __future__ import annotations

from dataclasses import replace

from drml_ray.continual.config import ContinualExperiment
from drml_ray.runtime.registry import Command, Kind, TrialPlan, driver_tune

DRIVER = "drml_ray.continual.driver"


def trial_plan(cfg: ContinualExperiment) -> TrialPlan:
    """A trial is one strategy's pass, each experience a fine-tuning run's resources; its budget is the
    experiences (the schedulers compare trials after each)."""
    from drml_ray.continual.driver import experience_count
    from drml_ray.ner.kind import trial_plan as finetune_plan

    return replace(finetune_plan(cfg.experience_config(cfg.model.backbone)), budget=experience_count(cfg), retries=0)


# fmt: off
KIND = Kind(
    name="continual",
    config=ContinualExperiment,
    sections=("continual",),
    commands=(
        Command("continual run", f"{DRIVER}:run_continual", "continual.json", default=True,
                help="Train NER experiences in sequence (domains, or entity types a few at a time) with each "
                     "strategy (naive, replay, EWC, LwF, joint), each experience a Ray Train run; writes "
                     "continual.json (R, average F1, BWT, FWT, forgetting), continual.md and continual.png. A rerun "
                     "keeps the experiences already trained.",
                example="drml continual configs/continual/smoke.yaml --set continual.strategies=[naive,ewc]"),
    ),
    report="drml_ray.continual.results:report_sections",
    summary="Continual learning over NER experiences: `drml continual CONFIG` runs one; `drml continual extend "
            "RUN_DIR DATA` adds one more experience to a finished run.",
    cli="drml_ray.continual.extend:add_commands",
    # A trial is ranked by its model after the last experience (its first result, after experience 1, is the
    # highest and the same for every trial).
    tune=driver_tune(DRIVER, "dev_f1", trial_plan, scope="last"),
)
# fmt: on
