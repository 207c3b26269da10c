"""NER meta-learning as an experiment kind: ``drml meta-train`` and ``drml meta-eval`` on one config (a ``meta:``
section), Reptile meta-training searched by ``drml tune``, and its part of ``drml report``."""

from __future__ import annotations

from drml_ray.meta.config import MetaExperiment
from drml_ray.runtime.registry import Command, Kind, actor_trial_plan, driver_tune
from drml_ray.runtime.rundir import META_TRAIN_FILE

DRIVER = "drml_ray.meta.driver"
# fmt: off
KIND = Kind(
    name="meta",
    config=MetaExperiment,
    sections=("meta",),
    commands=(
        Command("meta-train", f"{DRIVER}:run_meta_train", META_TRAIN_FILE,
                help="Meta-train Reptile / first-order MAML over NER tasks on Ray actors; writes one Hugging Face "
                     "folder per algorithm (its head built from the held-out labels' names) that `drml finetune` "
                     "accepts as its backbone. An interrupted run continues from its last checkpoint.",
                example="drml meta-train configs/meta/crossner_politics.yaml --set meta.algorithms=[reptile]"),
        Command("meta-eval", f"{DRIVER}:run_meta_eval", None, options=("inits",),
                help="Adapt every starting point (direct, CoNLL then fine-tune, multi-task, Reptile, FOMAML) on "
                     "each held-out domain x shot count x seed with the same budget, score test F1; writes "
                     "meta_eval.json (cell by cell: a rerun skips finished cells), meta_eval.md and meta_eval.png.",
                example="drml meta-eval configs/meta/crossner_politics.yaml --set eval.shots=[10,50,all] "
                        "--set eval.seeds=[1]"),
    ),
    report="drml_ray.meta.results:report_sections",
    tune=driver_tune(DRIVER, "dev_f1", lambda cfg: actor_trial_plan(cfg.meta, cfg.meta.gpus_per_worker)),
)
# fmt: on
