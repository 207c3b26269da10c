"""Each private Ray internal drml-ray uses (drml_ray/_ray_compat.py), checked against the installed Ray: these
fail loudly when a Ray upgrade moves or renames one. Also: no other module reaches into Ray's privates."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from drml_ray import _ray_compat

PACKAGE = Path(__file__).resolve().parents[1] / "drml_ray"


def test_local_ray_instances_are_listed():
    assert isinstance(_ray_compat.other_local_ray_addresses(), list)


def test_ray_train_worker_logs_are_quieted():
    from ray.train.v2._internal.execution import context

    _ray_compat.quiet_train_worker_logs()
    assert logging.getLogger(context.__file__).level == logging.WARNING


def test_rllib_deprecation_warnings_are_quieted():
    from ray._common import deprecation  # RLlib's deprecation_warning logs through this module's logger

    _ray_compat.quiet_rllib()
    assert logging.getLogger(deprecation.__name__) is deprecation.logger
    assert deprecation.logger.level == logging.ERROR and logging.getLogger("ray.rllib").level == logging.ERROR


def test_ray_datas_notice_that_its_progress_bars_are_off_is_quieted():
    """Ray Data says it where it picks its progress manager; once quieted, no longer."""
    import ray.data
    from ray.data._internal import progress
    from ray.util.debug import reset_log_once

    said: list[str] = []
    listener = logging.Handler()
    listener.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    context, level = ray.data.DataContext.get_current(), progress.logger.level
    bars, context.enable_progress_bars = context.enable_progress_bars, False
    progress.logger.addHandler(listener)
    try:
        for quieted in (False, True):
            progress.logger.setLevel(logging.NOTSET)
            if quieted:
                _ray_compat.quiet_ray_data_progress_notice()
            reset_log_once("ray_data_progress_manager_disabled")  # (once a process: as in a fresh one)
            progress.get_progress_manager(context, "ds", {}, False)  # type: ignore[arg-type]
    finally:
        context.enable_progress_bars = bars
        progress.logger.removeHandler(listener)
        progress.logger.setLevel(level)
    assert ["Progress bars disabled" in line for line in said] == [True]  # said before quieting only


def test_asha_scores_at_its_rungs_are_read_and_put_back():
    from ray.tune.schedulers import ASHAScheduler

    asha = ASHAScheduler(time_attr="epoch", max_t=4, grace_period=1, reduction_factor=2)
    assert _ray_compat.asha_rungs(asha) == [[{}, {}, {}]]
    milestone, recorded = asha._brackets[0]._rungs[0]
    recorded["trial_a"] = 0.5
    assert milestone in (1, 2, 4) and _ray_compat.asha_rungs(asha)[0][0] == {"trial_a": 0.5}
    again = ASHAScheduler(time_attr="epoch", max_t=4, grace_period=1, reduction_factor=2)
    _ray_compat.set_asha_rungs(again, _ray_compat.asha_rungs(asha))
    assert _ray_compat.asha_rungs(again) == _ray_compat.asha_rungs(asha)


def test_the_variant_generator_counts_its_live_trials_in_a_set():
    from ray.tune.search.basic_variant import BasicVariantGenerator

    assert _ray_compat.live_trials(BasicVariantGenerator(max_concurrent=2)) == set()


def test_no_module_but_the_compat_one_touches_ray_internals():
    private = re.compile(r"ray\._private|ray\._common|ray\.\w+(\.\w+)*\._internal|\._brackets|\._rungs|_live_trials|"
                         r"\._learner\b|"
                         r"_named_optimizers")  # fmt: skip
    offenders = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py")
                 if p.name != "_ray_compat.py" and private.search(p.read_text(encoding="utf-8"))]  # fmt: skip
    assert offenders == []


def test_the_local_learner_of_an_rllib_learner_group_is_reached():
    from types import SimpleNamespace

    import gymnasium as gym
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.learner.learner import Learner

    config = PPOConfig().environment(observation_space=gym.spaces.Box(-1, 1, (2,)), action_space=gym.spaces.Discrete(2))
    group = config.learners(num_learners=0).build_learner_group()
    assert isinstance(_ray_compat.local_learner(SimpleNamespace(learner_group=group)), Learner)


def test_an_env_runner_unseeded_after_its_first_episode_starts_the_next_one_elsewhere():
    import numpy as np
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    runner = SingleAgentEnvRunner(config=PPOConfig().environment("CartPole-v1").debugging(seed=3))

    def start() -> np.ndarray:
        return np.asarray(runner.sample(num_episodes=1, force_reset=True)[0].get_observations()[0])

    first = start()
    np.testing.assert_array_equal(start(), first)  # RLlib seeds every such call alike: why the helper exists
    _ray_compat.unseed_later_resets(runner)
    later = [start(), start()]
    assert not np.array_equal(later[0], first) and not np.array_equal(later[1], later[0])
    runner.stop()
