"""NER fine-tuning as an experiment kind: ``drml finetune``, searched by ``drml tune``, in ``drml report``."""

from __future__ import annotations

from drml_ray.config import FinetuneConfig
from drml_ray.errors import UserError
from drml_ray.runtime.registry import Command, Kind, TrialPlan, TuneSpec
from drml_ray.text import counted


def trial_plan(cfg: FinetuneConfig) -> TrialPlan:
    """A trial is one Ray Train run: its workers reserve the CPUs (GPUs); Tune restarts it as often as
    Ray Train may restart its workers. Local mode (no workers) is not for trials: a finetune trial's scores
    reach Tune through Ray Train's controller, which it does without.

    >>> trial_plan(FinetuneConfig(name="x", scaling={"num_workers": 2, "use_gpu": True}))
    TrialPlan(cpus=2, gpus=2, budget=3, workers='2 Ray Train workers', retries=0)
    """
    s = cfg.scaling
    if s.local:
        raise UserError("scaling.num_workers: 0 (Ray Train's local mode) is for a run of its own: under drml "
                        "tune give each trial 1 worker or more")  # fmt: skip
    return TrialPlan(cpus=s.cpus, gpus=s.num_workers if s.use_gpu else 0,
                     budget=cfg.train.epochs, workers=counted(s.num_workers, "Ray Train worker"),
                     retries=max(0, s.max_failures))  # fmt: skip


FINETUNE = "drml_ray.ner.finetune"
# fmt: off
KIND = Kind(
    name="finetune",
    config=FinetuneConfig,
    sections=(),
    commands=(
        Command(
            "finetune",
            f"{FINETUNE}:run_finetune",
            "results.json",
            help="Fine-tune a token-classification model on Ray Train; writes best/, reports and results.json. "
            "An unfinished run directory continues from its latest checkpoint.",
            example="drml finetune configs/ner/smoke.yaml --set train.epochs=2 --set model.strategy=lora",
        ),
    ),
    report="drml_ray.ner.results:report_sections",
    tune=TuneSpec(
        metrics={"dev_f1": "max", "dev_precision": "max", "dev_recall": "max", "train_loss": "min"},
        plan=trial_plan,
        prepare=f"{FINETUNE}:prepare_search",
        trial=f"{FINETUNE}:search_trial",
        finish=f"{FINETUNE}:finish_search",
    ),
)
# fmt: on
