"""Inverse RL as an experiment kind (a config with ``expert:`` / ``irl:`` sections): ``drml rl expert`` and
``drml rl irl``, and their part of ``drml report``."""

from __future__ import annotations

from drml_ray.irl.config import IRLExperiment
from drml_ray.runtime.registry import Command, Kind, TrialPlan, driver_tune
from drml_ray.text import counted

DRIVER = "drml_ray.irl.driver"


def trial_plan(cfg: IRLExperiment) -> TrialPlan:
    """A trial's actors reserve their CPUs; its budget is its cells (the schedulers compare trials as they finish).

    >>> trial_plan(IRLExperiment.model_validate({"name": "x", "irl": {"demos": [1, 4], "seeds": [1, 2, 3]}}))
    TrialPlan(cpus=2, gpus=0, budget=18, workers='2 Ray actors', retries=0)
    """
    irl = cfg.irl
    cells = len(cfg.families()) * len(irl.demos) * len(irl.methods) * len(irl.seeds)
    return TrialPlan(cpus=irl.workers, gpus=0, budget=cells, workers=counted(irl.workers, "Ray actor"))


# fmt: off
KIND = Kind(
    name="irl",
    summary="Reinforcement learning on RLlib: meta-RL (Reptile over PPO), transfer, and inverse RL (PPO experts, "
            "their demonstrations, BC / GAIL / AIRL).",
    sections=("expert", "irl", "meta_irl"),
    config=IRLExperiment,
    commands=(
        Command("rl expert", f"{DRIVER}:run_rl_expert", "experts.json",
                example="drml rl expert configs/rl/smoke_irl.yaml --output-dir runs/irl",
                help="Train a PPO expert on each family of irl.families (on Ray actors), then record expert.episodes "
                     "demonstrations with RLlib's offline API (Parquet, RLlib's episode format) and as a flat "
                     "transitions.parquet, with their true returns; writes `experts/FAMILY/` and experts.json."),
        Command("rl irl", f"{DRIVER}:run_rl_irl", None, options=(),
                example="drml rl irl configs/rl/smoke_irl.yaml --output-dir runs/irl",
                help="BC (RLlib's BC), GAIL and AIRL (RLlib PPO whose rewards come from a discriminator trained in its "
                     "Learner) on the experts' demonstrations, for every family, demonstration count and seed; "
                     "writes irl.json (return ratios on the true reward), irl.md and irl.png. Reruns keep finished "
                     "cells."),
        Command("rl meta-irl", "drml_ray.irl.meta_driver:run_rl_meta_irl", None, options=(),
                example="drml rl meta-irl configs/rl/smoke_meta_irl.yaml --output-dir runs/meta_irl",
                help="Meta-IRL: PPO experts on meta_irl.train_tasks + test_tasks tasks of one family (Nav2D goals), "
                     "Reptile over AIRL's reward network across the training tasks, then each held-out task's reward "
                     "recovered from 1-4 demonstrations (Reptile's start, a network pre-trained on all tasks, a fresh "
                     "one, adversarial AIRL) and judged by a fresh PPO policy on it; writes meta_irl.json / .md / "
                     ".png. Reruns keep experts, initialisations and cells."),
    ),
    report="drml_ray.irl.results:report_sections",
    tune=driver_tune(DRIVER, "return_ratio", trial_plan, command="rl irl"),  # (a trial imitates experts_dir's)
)
# fmt: on
