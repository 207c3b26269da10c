"""RLlib's offline pieces for BC, made reproducible and quiet: its pre-learner's episode buffer drawing from a
seed, and the pre-learner itself without RLlib's warnings about its own internals.

RLlib's ``OfflinePreLearner`` puts the episodes it reads into an ``EpisodeReplayBuffer`` and samples BC's rows from
it. That buffer draws from ``np.random.default_rng(seed=None)``, fresh OS entropy in every Ray Data worker, and
the pre-learner hands it each batch's episodes as a ``set``, in the order of their memory addresses. So BC gave
another policy at the same seed each run (BENCHMARKS.md, session 28). ``offline_data(prelearner_buffer_class=
SeededEpisodeBuffer, prelearner_buffer_kwargs={"seed": seed})`` makes the draws a function of the cell's seed and
of the episodes. ``prelearner_class=QuietOfflinePreLearner`` keeps the Ray Data worker that runs it from printing
two deprecation warnings per cell about arguments RLlib passes itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.offline.offline_prelearner import OfflinePreLearner  # RLLIB
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer  # RLLIB

from drml_ray._ray_compat import quiet_rllib


class SeededEpisodeBuffer(EpisodeReplayBuffer):
    """RLlib's ``EpisodeReplayBuffer`` whose samples come from ``np.random.default_rng(seed)``, its episodes kept in
    the order of their ids (recorded with them), whatever order they arrive in."""

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(seed)

    def add(self, episodes: Any) -> None:
        many = isinstance(episodes, list | tuple | set | frozenset)
        super().add(sorted(episodes, key=lambda episode: episode.id_) if many else episodes)


class QuietOfflinePreLearner(OfflinePreLearner):
    """RLlib's ``OfflinePreLearner``, built in a process whose RLlib says only errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        quiet_rllib()
        super().__init__(*args, **kwargs)
