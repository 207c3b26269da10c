"""The env RLlib builds: task randomisation per sub-env and the RL² observation, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from drml_ray.rl.envs import TaskFamilyEnv


def test_random_tasks_draw_a_new_task_per_reset_from_a_seeded_stream():
    def goals(seed):
        env = TaskFamilyEnv({"family": "nav2d", "random_tasks": seed})
        env.stream = (0, 0)  # what the construction counter gave the first sub-env
        env.set_random_tasks(seed)
        out = []
        for _ in range(3):
            env.reset()
            out.append(env.unwrapped.get_task())
        return out

    first = goals(5)
    assert first == goals(5) and first != goals(6)
    assert len({tuple(t.values()) for t in first}) == 3
    env = TaskFamilyEnv({"family": "nav2d", "task": {"goal_x": 0.2, "goal_y": 0.1}})
    env.reset()
    assert env.unwrapped.get_task() == {"goal_x": 0.2, "goal_y": 0.1}  # no randomisation: the task stays


def test_sub_envs_of_one_process_get_different_task_streams():
    a, b = (TaskFamilyEnv({"family": "nav2d", "random_tasks": 1}) for _ in range(2))
    a.reset(), b.reset()
    assert a.unwrapped.get_task() != b.unwrapped.get_task()


def test_prev_action_reward_observation_for_continuous_and_discrete_actions():
    env = TaskFamilyEnv({"family": "nav2d", "horizon": 5, "task": {"goal_x": 0.3, "goal_y": 0.0},
                         "prev_action_reward": True})  # fmt: skip
    assert env.observation_space.shape == (5,)  # position, previous action, previous reward
    obs, _ = env.reset()
    assert obs.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]
    obs, reward, *_ = env.step(np.array([0.1, 0.0], dtype=np.float32))
    assert obs.tolist() == pytest.approx([0.1, 0.0, 0.1, 0.0, -0.2]) and reward == pytest.approx(-0.2)
    cart = TaskFamilyEnv({"family": "cartpole", "prev_action_reward": True})
    assert cart.observation_space.shape == (4 + 2 + 1,)
    cart.reset(seed=0)
    obs, *_ = cart.step(1)
    assert obs[4:].tolist() == [0.0, 1.0, 1.0]  # one-hot action 1, reward 1
