"""The learned reward inside RLlib PPO: a Learner that owns the discriminator (or AIRL's reward network) and a
learner connector piece that trains it on each train batch against the demonstrations, then rewrites the
batch's rewards, before PPO's General Advantage Estimation reads them.

The pattern is RLlib's intrinsic-curiosity learner example: :class:`IRLPPOLearner` is RLlib's
``PPOTorchLearner`` whose ``build`` inserts :class:`LearnedRewardConnector` right after ``NumpyToTensor`` (GAE
is appended at the end of the pipeline, so it comes after). The env runners keep the true reward: RLlib's
``episode_return_mean`` is the return on the true reward, what imitation is judged by.

Batch layout read here (RLlib's ``AddOneTsToEpisodesAndTruncate``): each episode chunk is its steps followed by
one bootstrap row with ``loss_mask`` False, so a step's next observation is the next row's.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner  # RLLIB
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor  # RLLIB
from ray.rllib.connectors.connector_v2 import ConnectorV2  # RLLIB
from ray.rllib.core import DEFAULT_MODULE_ID, Columns  # RLLIB

from drml_ray.irl.demos import (
    cat,
    coverage_states,
    episode_transitions,
    keep_history,
    read_episodes,
    sample,
    take,
    transitions,
)
from drml_ray.irl.losses import RewardNet, Transitions, discriminator_loss, policy_rewards
from drml_ray.irl.policy import n_actions


def irl_settings(method: str, demos_path: str, demos: int, horizon: int, gamma: float, disc: dict,
                 seed: int, state_only: bool = False) -> dict[str, Any]:  # fmt: skip
    """What :class:`IRLPPOLearner` reads from ``learner_config_dict["irl"]`` (``state_only``: the policy's reward
    is AIRL's ``g(s)``, for a reward carried to new dynamics)."""
    return {"method": method, "demos_path": demos_path, "demos": demos, "horizon": horizon, "gamma": gamma,
            "disc": disc, "seed": seed, "state_only": state_only}  # fmt: skip


class IRLPPOLearner(PPOTorchLearner):
    """PPO whose rewards come from a discriminator trained here, on the same batches."""

    def build(self) -> None:
        super().build()
        irl = self.config.learner_config_dict["irl"]
        module = self.module[DEFAULT_MODULE_ID]
        self.irl = irl
        self.n_actions = n_actions(module.action_space)
        action_dim = self.n_actions or int(module.action_space.shape[0])
        obs_dim = int(module.observation_space.shape[0])
        disc = irl["disc"]
        self.reward_net = RewardNet(irl["method"], obs_dim, action_dim, list(disc["hidden"]), irl["gamma"],
                                    disc.get("policy_logp", True))  # fmt: skip
        self.reward_optim = torch.optim.Adam(self.reward_net.parameters(), lr=disc["lr"])
        self.generator = torch.Generator().manual_seed(irl["seed"])
        self.expert = episode_transitions(read_episodes(irl["demos_path"], irl["demos"]), irl["horizon"],
                                          self.n_actions)  # fmt: skip
        self.train_reward = True
        self.history: Transitions | None = None
        """Policy rows of every iteration so far, a uniform sample (``disc.history``)."""
        self.history_seen = 0
        self.stats: dict[str, float] = {}
        self.last_batch: dict[str, Any] = {}
        """The last train batch's transitions, padded steps and learned rewards (for tests and inspection)."""
        if self.config.add_default_connectors_to_learner_pipeline:
            self._learner_connector.insert_after(NumpyToTensor, LearnedRewardConnector(learner=self))

    # --- the reward network's state, for saving it and for training a policy on a fixed reward ---------

    def get_reward_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.reward_net.state_dict().items()}

    def set_reward_state(self, state: dict[str, torch.Tensor], train: bool) -> None:
        self.reward_net.load_state_dict(state)
        self.train_reward = train

    # --- one round of discriminator training on a train batch -------------------------------------

    def with_policy_logp(self, t: Transitions) -> Transitions:
        """AIRL's discriminator needs log pi(a|s) of the *current* policy on rows it did not sample too (the
        expert's, the coverage states')."""
        if self.irl["method"] != "airl":
            return t
        module = self.module[DEFAULT_MODULE_ID]
        with torch.no_grad():
            real = ~t.absorbing
            out = module.forward_train({Columns.OBS: t.obs[real]})
            dist = module.get_train_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            actions = t.actions[real].argmax(-1) if self.n_actions else t.actions[real]
            logp = torch.zeros(len(t.obs))
            logp[real] = dist.logp(actions).float()
        return Transitions(t.obs, t.actions, t.next_obs, t.absorbing, t.next_absorbing, logp, t.weight)

    def train_discriminator(self, policy: Transitions) -> None:
        """``disc.updates`` steps on the expert's rows against the batch's (with ``disc.history``, also past
        batches' rows; with ``disc.coverage``, uniform states). AIRL's logit ``f - log pi(a|s)`` of a past row uses
        log pi of the policy that sampled it: under the current policy, once its noise has shrunk, an old action's
        log pi is hugely negative, a logit no ``f`` can push below 0, and the loss then drives ``f`` down without bound
        wherever the policy has been (measured on Nav2D: the loss reached 5e6 and the policy walked off)."""
        disc, losses = self.irl["disc"], []
        if disc.get("history"):
            self.history = keep_history(self.history, policy, self.history_seen, disc["history"], self.generator)
            self.history_seen += len(policy.obs)
        for _ in range(disc["updates"]):
            expert = self.with_policy_logp(sample(self.expert, disc["batch"], self.generator))
            policy_rows = sample(policy, disc["batch"], self.generator)
            if self.history is not None:  # each past row keeps log pi of the policy that sampled it
                policy_rows = cat([policy_rows, sample(self.history, disc["batch"], self.generator)])
            if disc.get("coverage"):
                box = coverage_states([self.expert, policy], disc["coverage"], disc["coverage_margin"], self.generator,
                                      self.n_actions)  # fmt: skip
                policy_rows = cat([policy_rows, self.with_policy_logp(box)])
            loss = discriminator_loss(self.reward_net, expert, policy_rows, disc.get("grad_penalty", 0.0))
            self.reward_optim.zero_grad()
            loss.backward()
            self.reward_optim.step()
            losses.append(float(loss.detach()))
        self.stats["disc_loss"] = sum(losses) / len(losses)


def episode_steps(episodes: list[Any], mask: torch.Tensor) -> torch.Tensor:
    """Each batch row's step index in its episode (bootstrap rows included): chunks start at ``t_started``."""
    starts = [int(getattr(ep, "t_started", 0) or 0) for ep in episodes]
    ends = torch.nonzero(~mask).flatten().tolist()  # one bootstrap row closes each chunk
    if len(ends) != len(starts):
        raise RuntimeError(f"train batch has {len(ends)} episode chunks, the episodes list {len(starts)}: RLlib's "
                           "batch layout changed (drml_ray/irl/learner.py)")  # fmt: skip
    steps, begin = torch.zeros(len(mask), dtype=torch.long), 0
    for start, end in zip(starts, ends, strict=True):
        steps[begin : end + 1] = torch.arange(start, start + end + 1 - begin)
        begin = end + 1
    return steps


class LearnedRewardConnector(ConnectorV2):
    """Trains the learner's discriminator on this batch (unless frozen), then replaces every step's reward by
    the learned one (:func:`~drml_ray.irl.losses.policy_rewards`, absorbing tail included)."""

    def __init__(self, input_observation_space: Any = None, input_action_space: Any = None, *,
                 learner: IRLPPOLearner, **kwargs: Any):  # fmt: skip
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.learner = learner

    def __call__(self, *, rl_module: Any, batch: dict, episodes: list, **kwargs: Any) -> Any:
        learner, b = self.learner, batch[DEFAULT_MODULE_ID]
        mask = b[Columns.LOSS_MASK].bool().cpu()
        rows = torch.nonzero(mask).flatten()
        chunks = list(self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False))
        steps = episode_steps(chunks, mask)[rows]
        terminated = b[Columns.TERMINATEDS].bool().cpu()[rows]
        obs = b[Columns.OBS].cpu()
        logp = b[Columns.ACTION_LOGP].detach().cpu()[rows]
        policy = transitions(obs[rows], b[Columns.ACTIONS].cpu()[rows], obs[rows + 1], terminated, steps,
                             learner.irl["horizon"], learner.n_actions, logp)  # fmt: skip
        if learner.train_reward:
            learner.train_discriminator(policy)
        real_rows = take(policy, slice(0, len(rows)))
        remaining = torch.where(terminated, learner.irl["horizon"] - (steps + 1), 0).clamp(min=0)
        rewards = b[Columns.REWARDS].clone()
        rewards[rows.to(rewards.device)] = policy_rewards(
            learner.reward_net, real_rows, remaining, learner.irl["state_only"]
        ).to(rewards)
        b[Columns.REWARDS] = rewards
        learner.stats["reward_mean"] = float(rewards[rows].mean())
        learner.last_batch = {"transitions": real_rows, "remaining": remaining, "rewards": rewards[rows].clone()}
        return batch
