"""Inverse RL as an experiment kind (a config with ``expert:`` / ``irl:`` sections): ``drml rl expert`` and
``drml rl irl``, and their part of ``drml report``."""

from __future__ import annotations

from drml_ray.irl.config import IRLExperiment
from drml_ray.runtime.registry import Command, Kind

DRIVER = "drml_ray.irl.driver"
# fmt: off
KIND = Kind(
    name="irl",
    summary="Reinforcement learning on RLlib: meta-RL (Reptile over PPO), transfer, and inverse RL (PPO experts, "
            "their demonstrations, BC / GAIL / AIRL).",
    sections=("expert", "irl"),
    config=IRLExperiment,
    commands=(
        Command("rl expert", f"{DRIVER}:run_rl_expert", "experts.json",
                example="drml rl expert configs/rl/smoke_irl.yaml --output-dir runs/irl",
                help="Train a PPO expert on each family of irl.families (on Ray actors), then record expert.episodes "
                     "demonstrations with RLlib's offline API (Parquet, RLlib's episode format) and as a flat "
                     "transitions.parquet, with their true returns; writes experts/<family>/ and experts.json."),
        Command("rl irl", f"{DRIVER}:run_rl_irl", None, options=(),
                example="drml rl irl configs/rl/smoke_irl.yaml --output-dir runs/irl",
                help="BC (RLlib's BC), GAIL and AIRL (RLlib PPO whose rewards come from a discriminator trained in its "
                     "Learner) on the experts' demonstrations, for every family, demonstration count and seed; "
                     "writes irl.json (return ratios on the true reward), irl.md and irl.png. Reruns keep finished "
                     "cells."),
    ),
    report="drml_ray.irl.results:report_sections",
)
# fmt: on
