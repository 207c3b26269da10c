"""Task-parameterised gymnasium environments: a *task* is a dict of floats an env can be set to.

Every env here has ``sample_tasks(n, rng)`` (a static method: tasks drawn from the family's
ranges with a ``numpy`` generator, so the same seed gives the same tasks), ``set_task(task)`` and
``get_task()``. RLlib's new API stack has no ``TaskSettableEnv``; drml-ray sets tasks on every env
runner with ``foreach_env_runner`` calling :func:`set_task_on_runner`.

- :class:`Nav2D`: the MAML paper's 2D navigation. A point starts at the origin and moves by its
  action (clipped to [-0.1, 0.1] per axis) towards a goal it does not observe; reward = minus the
  distance to the goal after the move; 100 steps. Tasks: goals uniform in [-0.5, 0.5]^2; changed dynamics
  (never drawn): ``action_scale``, which multiplies every move (0.5: half as far; negative: mirrored through the
  origin), and ``action_scale_y``, which multiplies the y component on top of it (-1: mirrored on the y axis).
- :class:`TaskCartPole`: CartPole with pole half-length, pole mass, cart mass and gravity from ranges;
  500-step episodes (CartPole-v1's limit).
- :class:`TaskPendulum`: Pendulum with mass and length from ranges (RLlib's old "Pendulum-Mass");
  200-step episodes (Pendulum-v1's limit).
"""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv

Task = dict[str, float]


def _draw(ranges: dict[str, tuple[float, float]], n: int, rng: np.random.Generator) -> list[Task]:
    return [{k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()} for _ in range(n)]


def _checked(task: Task, known: dict[str, Any], env: str, *, positive: bool = False) -> Task:
    """``task`` as floats, if ``env`` knows its keys and each value is finite (and, for physical quantities,
    above 0: a mass, length or gravity of 0 divides by zero in the equations of motion)."""
    unknown = set(task) - set(known)
    if unknown:
        raise KeyError(f"{env}: unknown task parameters {sorted(unknown)} (known: {', '.join(known)})")
    floats = {k: float(v) for k, v in task.items()}
    bad = [k for k, v in floats.items() if not np.isfinite(v) or (positive and v <= 0)]
    if bad:
        raise ValueError(f"{env}: task parameters {', '.join(f'{k}={floats[k]}' for k in bad)} must be finite"
                         + (" and above 0" if positive else ""))  # fmt: skip
    return floats


class Nav2D(gym.Env):
    """2D navigation to an unobserved goal (Finn et al. 2017, section 5.3)."""

    RANGES = {"goal_x": (-0.5, 0.5), "goal_y": (-0.5, 0.5)}
    FIXED = {"action_scale": 1.0, "action_scale_y": 1.0}
    """Task parameters that are set, never drawn (and reported by ``get_task`` only when not at their default)."""
    MAX_STEP = 0.1

    def __init__(self, config: dict[str, Any] | None = None):
        config = dict(config or {})
        self.horizon = int(config.pop("horizon", 100))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-self.MAX_STEP, self.MAX_STEP, shape=(2,), dtype=np.float32)
        self.goal = np.zeros(2)
        self.position = np.zeros(2)
        self.steps = 0
        self.scales = dict(self.FIXED)
        self.set_task({k: config[k] for k in self.RANGES if k in config} or {"goal_x": 0.0, "goal_y": 0.0})

    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> list[Task]:
        return _draw(Nav2D.RANGES, n, rng)

    def set_task(self, task: Task) -> None:
        task = _checked(task, self.RANGES | self.FIXED, "Nav2D")
        self.goal = np.array([task.get("goal_x", self.goal[0]), task.get("goal_y", self.goal[1])], dtype=np.float64)
        self.scales |= {k: v for k, v in task.items() if k in self.FIXED}

    def get_task(self) -> Task:
        scaled = {k: v for k, v in self.scales.items() if v != self.FIXED[k]}
        return {"goal_x": float(self.goal[0]), "goal_y": float(self.goal[1])} | scaled

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = np.zeros(2)
        self.steps = 0
        return self.position.astype(np.float32), {}

    def step(self, action):
        move = np.clip(np.asarray(action, dtype=np.float64), -self.MAX_STEP, self.MAX_STEP)
        scale = self.scales["action_scale"] * np.array([1.0, self.scales["action_scale_y"]])
        self.position = self.position + scale * move
        self.steps += 1
        reward = -float(np.linalg.norm(self.position - self.goal))
        truncated = self.steps >= self.horizon
        return self.position.astype(np.float32), reward, False, truncated, {}


class _PhysicsTasks:
    """Tasks that are attributes of a classic-control env: set, read and drawn from ``RANGES``; episodes
    truncated after ``horizon`` steps (gymnasium's ``TimeLimit`` is only added by ``gym.make``)."""

    RANGES: dict[str, tuple[float, float]] = {}
    HORIZON = 200

    def _init_task(self, config: dict[str, Any] | None) -> None:
        config = dict(config or {})
        self.horizon = int(config.get("horizon") or self.HORIZON)
        self.steps = 0
        self.set_task({k: config[k] for k in self.RANGES if k in config})

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.steps = 0
        return super().reset(seed=seed, options=options)  # type: ignore[misc]

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)  # type: ignore[misc]
        self.steps += 1
        return obs, reward, terminated, truncated or self.steps >= self.horizon, info

    @classmethod
    def sample_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        return _draw(cls.RANGES, n, rng)

    def set_task(self, task: Task) -> None:
        for key, value in _checked(task, self.RANGES, type(self).__name__, positive=True).items():
            setattr(self, key, value)

    def get_task(self) -> Task:
        return {k: float(getattr(self, k)) for k in self.RANGES}


class TaskCartPole(_PhysicsTasks, CartPoleEnv):
    """CartPole whose physics is a task: ``length`` (half the pole), ``masspole``, ``masscart``, ``gravity``."""

    RANGES = {"length": (0.25, 1.0), "masspole": (0.05, 0.5), "masscart": (0.5, 2.0), "gravity": (7.0, 12.0)}
    HORIZON = 500  # CartPole-v1's limit

    def __init__(self, config: dict[str, Any] | None = None):
        CartPoleEnv.__init__(self)
        self._init_task(config)

    def set_task(self, task: Task) -> None:
        super().set_task(task)
        self.total_mass = self.masspole + self.masscart  # derived by CartPoleEnv.__init__ only
        self.polemass_length = self.masspole * self.length


class TaskPendulum(_PhysicsTasks, PendulumEnv):
    """Pendulum whose mass ``m`` and length ``l`` are a task."""

    RANGES = {"m": (0.5, 2.0), "l": (0.5, 1.5)}
    HORIZON = 200  # Pendulum-v1's limit

    def __init__(self, config: dict[str, Any] | None = None):
        PendulumEnv.__init__(self)
        self._init_task(config)


ENVS: dict[str, type[gym.Env]] = {"nav2d": Nav2D, "cartpole": TaskCartPole, "pendulum": TaskPendulum}
STREAMS = {"train": 0, "validation": 1, "test": 2}
"""The purposes tasks are drawn for; each has its own random stream."""


def task_stream(seed: int, purpose: str, index: int = 0) -> np.random.Generator:
    """The random stream of the ``index``-th draw for ``purpose`` (``STREAMS``): ``SeedSequence(seed,
    spawn_key=(purpose, index))``, so training (one stream per meta-step), validation and test tasks never
    share a stream, however many meta-steps a run takes.

    >>> task_stream(0, "train", 3).random() == task_stream(0, "train", 3).random() != task_stream(0, "test").random()
    True
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS[purpose], index)))


def make_env(name: str, config: dict[str, Any] | None = None) -> gym.Env:
    """An env of the family ``name`` (``nav2d``, ``cartpole``, ``pendulum``)."""
    try:
        return ENVS[name](config)
    except KeyError:
        if name in ENVS:
            raise
        raise KeyError(f"unknown task family {name!r}; known: {', '.join(ENVS)}") from None


_CONSTRUCTED = itertools.count()


class TaskFamilyEnv(gym.Wrapper):
    """The env RLlib builds (``PPOConfig.environment(TaskFamilyEnv, env_config=...)``).

    ``config``: ``family`` (``nav2d``, ``cartpole``, ``pendulum``), ``horizon`` (Nav2D), ``task`` (the
    parameters to start with), ``random_tasks`` (an int seed: draw a new task at every reset — domain
    randomisation; ``None``: keep the task that was set) and ``prev_action_reward`` (append the previous
    action, one-hot when discrete, and the previous reward to the observation: the input of an RL²-style
    recurrent policy that must infer the task from its history).
    """

    def __init__(self, config: dict[str, Any] | None = None):
        config = config or {}
        family = config.get("family", "nav2d")
        extra = {"horizon": config["horizon"]} if config.get("horizon") else {}
        super().__init__(make_env(family, extra))
        if config.get("task"):
            self.env.unwrapped.set_task(dict(config["task"]))
        # Each sub-env its own task stream: the env runner's index (RLlib's EnvContext) and the order
        # of construction in this process (gymnasium's vector envs do not number their sub-envs).
        self.stream = (int(getattr(config, "worker_index", 0)), next(_CONSTRUCTED))
        self.rng: np.random.Generator | None = None
        self.set_random_tasks(config.get("random_tasks"))
        self.prev_action_reward = bool(config.get("prev_action_reward", False))
        if self.prev_action_reward:
            base = self.env.observation_space
            extra_dims = self._action_width() + 1
            low = np.concatenate([base.low, np.full(extra_dims, -np.inf)]).astype(np.float32)
            high = np.concatenate([base.high, np.full(extra_dims, np.inf)]).astype(np.float32)
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def set_random_tasks(self, seed: int | None) -> None:
        """Draw a new task at every reset from a stream seeded by ``seed`` (``None``: stop drawing)."""
        self.rng = None if seed is None else np.random.default_rng([int(seed), *self.stream])

    def _action_width(self) -> int:
        space = self.env.action_space
        return int(space.n) if isinstance(space, gym.spaces.Discrete) else int(np.prod(space.shape))

    def _augment(self, obs: np.ndarray, action: Any, reward: float) -> np.ndarray:
        if not self.prev_action_reward:
            return obs
        if isinstance(self.env.action_space, gym.spaces.Discrete):
            previous = np.zeros(self._action_width(), dtype=np.float32)
            if action is not None:
                previous[int(action)] = 1.0
        else:
            previous = np.zeros(self._action_width(), dtype=np.float32) if action is None else np.ravel(action)
        return np.concatenate([obs, previous, [reward]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.rng is not None:
            unwrapped = self.env.unwrapped
            unwrapped.set_task(type(unwrapped).sample_tasks(1, self.rng)[0])
        obs, info = self.env.reset(seed=seed, options=options)
        return self._augment(obs, None, 0.0), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._augment(obs, action, float(reward)), reward, terminated, truncated, info


def _runner_envs(env_runner: Any) -> list[gym.Env]:
    unwrapped = env_runner.env.unwrapped
    return list(unwrapped.envs) if hasattr(unwrapped, "envs") else [env_runner.env]


def _family_env(env: gym.Env) -> TaskFamilyEnv | None:
    """The :class:`TaskFamilyEnv` inside gymnasium's wrappers (``gym.make`` adds its checkers around it)."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TaskFamilyEnv):
            return env
        env = env.env
    return None


def set_task_on_runner(env_runner: Any, task: Task) -> list[Task]:
    """Set ``task`` on every sub-env of an RLlib env runner (for ``foreach_env_runner``); returns the
    tasks the sub-envs report afterwards, so the caller can check them. Stops task randomisation."""
    tasks = []
    for env in _runner_envs(env_runner):
        family = _family_env(env)
        if family is not None:
            family.set_random_tasks(None)
        env.unwrapped.set_task(task)
        tasks.append(env.unwrapped.get_task())
    return tasks


def randomise_tasks_on_runner(env_runner: Any, seed: int) -> int:
    """Make every sub-env of an env runner draw a new task at each reset (domain randomisation)."""
    envs = [family for env in _runner_envs(env_runner) if (family := _family_env(env)) is not None]
    for env in envs:
        env.set_random_tasks(seed)
    return len(envs)
