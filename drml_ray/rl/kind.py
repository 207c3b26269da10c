"""Reinforcement learning as an experiment kind (a config with ``env:`` / ``ppo:`` sections): ``drml rl
meta-train|meta-eval|transfer``, Reptile over PPO searched by ``drml tune``, and its part of ``drml report``."""

from __future__ import annotations

from drml_ray.rl.config import RLExperiment
from drml_ray.runtime.registry import Command, Kind, actor_trial_plan, driver_tune
from drml_ray.runtime.rundir import META_TRAIN_FILE

DRIVER = "drml_ray.rl.driver"
# fmt: off
KIND = Kind(
    name="rl",
    summary="Meta-RL and transfer on RLlib: Reptile over PPO, adaptation curves, transfer metrics.",
    sections=("env", "ppo"),
    config=RLExperiment,
    commands=(
        Command("rl meta-train", f"{DRIVER}:run_rl_meta_train", META_TRAIN_FILE,
                example="drml rl meta-train configs/rl/nav2d.yaml --set meta.workers=4 --set meta.methods=[meta]",
                help="Reptile over RLlib PPO weights across a task family (each meta-batch's tasks adapt in "
                     "parallel on Ray actors), plus the multi-task and RL² baselines on the same environment "
                     "steps; writes meta/, multitask/, rl2/ weights and meta_train.json. An interrupted run "
                     "continues from its last checkpoint."),
        Command("rl meta-eval", f"{DRIVER}:run_rl_meta_eval", None, options=("init",),
                example="drml rl meta-eval configs/rl/smoke_nav2d.yaml --init runs/x/meta/weights.pt",
                help="Return on held-out tasks before and after 1..k PPO iterations of adaptation for the "
                     "meta-learned, multi-task, RL², scratch and oracle policies over seeds; writes adaptation.json "
                     "(episode_return_mean, episode_return_mean_adapt_N, adaptation_delta), adaptation.md and "
                     "adaptation.png. Reruns keep finished curves."),
        Command("rl transfer", "drml_ray.rl.transfer:run_rl_transfer", "transfer.json",
                example="drml rl transfer configs/rl/smoke_transfer.yaml",
                help="Train PPO on a source task, fine-tune on a target, against the target from scratch, over "
                     "seeds; writes transfer.json (jumpstart, time to threshold, asymptotic, total-reward ratio), "
                     "transfer.md and transfer.png."),
    ),
    report="drml_ray.rl.results:report_sections",
    tune=driver_tune(DRIVER, "heldout_return", lambda cfg: actor_trial_plan(cfg.meta)),
)
# fmt: on
