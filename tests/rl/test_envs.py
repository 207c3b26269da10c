"""Task families: deterministic sampling, set/get, and the physics really follow the task."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drml_ray.rl.envs import ENVS, Nav2D, TaskCartPole, TaskPendulum, make_env


@pytest.mark.parametrize("name", sorted(ENVS))
def test_sampling_is_deterministic_in_the_seed_and_inside_the_ranges(name):
    cls = ENVS[name]
    a, b = cls.sample_tasks(5, np.random.default_rng(3)), cls.sample_tasks(5, np.random.default_rng(3))
    assert a == b and a != cls.sample_tasks(5, np.random.default_rng(4))
    for task in a:
        assert set(task) == set(cls.RANGES)
        assert all(cls.RANGES[k][0] <= v <= cls.RANGES[k][1] for k, v in task.items())


@pytest.mark.parametrize("name", sorted(ENVS))
def test_set_then_get_round_trips_and_unknown_keys_are_named(name):
    env = make_env(name)
    task = ENVS[name].sample_tasks(1, np.random.default_rng(0))[0]
    env.set_task(task)
    assert env.get_task() == pytest.approx(task)
    with pytest.raises(KeyError, match="unknown task parameters \\['wind'\\]"):
        env.set_task({"wind": 1.0})


def test_nav2d_reward_is_minus_the_distance_after_a_clipped_move():
    env = Nav2D({"goal_x": 0.3, "goal_y": -0.4, "horizon": 3})
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0, 0.0]
    obs, reward, terminated, truncated, _ = env.step(np.array([0.5, 0.0]))  # clipped to 0.1
    assert obs.tolist() == pytest.approx([0.1, 0.0])
    assert reward == pytest.approx(-math.hypot(0.2, 0.4)) and not terminated and not truncated
    env.step(np.zeros(2))
    assert env.step(np.zeros(2))[3]  # the horizon truncates


def test_nav2d_action_scale_changes_the_dynamics_and_is_never_drawn():
    env = Nav2D({"horizon": 3})
    env.set_task({"goal_x": 0.3, "goal_y": 0.0, "action_scale": -0.5})
    env.reset(seed=0)
    obs = env.step(np.array([0.5, 0.1]))[0]  # clipped to (0.1, 0.1), then halved and mirrored
    assert obs.tolist() == pytest.approx([-0.05, -0.05])
    assert env.get_task() == {"goal_x": 0.3, "goal_y": 0.0, "action_scale": -0.5}
    assert "action_scale" not in Nav2D.sample_tasks(1, np.random.default_rng(0))[0]


def test_nav2d_action_scale_y_mirrors_one_axis_on_top_of_the_scale():
    env = Nav2D({"horizon": 3})
    env.set_task({"goal_x": 0.3, "goal_y": -0.2, "action_scale": 0.5, "action_scale_y": -1})
    env.reset(seed=0)
    obs, reward = env.step(np.array([0.1, -0.1]))[:2]  # moves (0.05, 0.05): y mirrored, both halved
    assert obs.tolist() == pytest.approx([0.05, 0.05])
    assert reward == pytest.approx(-np.hypot(0.25, 0.25))
    env.set_task({"action_scale": 1.0})  # the y mirror stays until set again
    assert env.get_task() == {"goal_x": 0.3, "goal_y": -0.2, "action_scale_y": -1.0}


def test_cartpole_physics_follow_the_task():
    def pole_acceleration(task):
        env = TaskCartPole()
        env.set_task(task)
        env.reset(seed=0)
        env.state = np.array([0.0, 0.0, 0.1, 0.0])
        return env.step(1)[0][3]

    base = {"length": 0.5, "masspole": 0.1, "masscart": 1.0, "gravity": 9.8}
    assert pole_acceleration(base | {"gravity": 12.0}) > pole_acceleration(base)  # falls faster
    assert pole_acceleration(base | {"length": 1.0}) != pole_acceleration(base)
    env = TaskCartPole({"masspole": 0.3, "masscart": 2.0})
    assert env.total_mass == pytest.approx(2.3) and env.polemass_length == pytest.approx(0.3 * env.length)


def test_pendulum_mass_changes_the_dynamics():
    def angular_velocity(m):
        env = TaskPendulum({"m": m})
        env.reset(seed=0)
        env.state = np.array([0.5, 0.0])
        return env.step(np.array([1.0]))[0][2]

    assert angular_velocity(0.5) != angular_velocity(2.0)


@pytest.mark.parametrize(("name", "limit"), [("cartpole", 500), ("pendulum", 200)])
def test_physics_episodes_end_at_gymnasiums_limit_or_the_horizon(name, limit):
    env = make_env(name)
    assert env.horizon == limit
    env = make_env(name, {"horizon": 3})
    env.reset(seed=0)
    action = np.array([0.0], dtype=np.float32) if name == "pendulum" else 0
    assert [env.step(action)[3] for _ in range(3)] == [False, False, True]  # (no pole falls in 3 steps)
    env.reset(seed=0)
    assert env.steps == 0
