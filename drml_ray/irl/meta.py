"""Meta-inverse RL in plain torch: Reptile over AIRL's reward network across tasks, a pooled pre-trained
baseline, and the few-shot adaptation both are judged by. Nothing here imports Ray or RLlib.

**The inner loop.** One task's adaptation is AIRL's discriminator update, ``D = sigmoid(f)`` with
``f = g(s) + gamma h(s') - h(s)``, against a fixed sampling policy: the task's demonstrations (label 1) against
episodes of uniformly random actions (label 0). With the sampler fixed, AIRL's ``- log pi(a|s)`` term is a
constant that ``g``'s bias absorbs, so it is left out (``logp = 0`` on both sides), and no policy is trained
inside the loop: adapting a reward to a new task costs a few gradient steps, not a PPO run. The recovered reward
is ``g``; the evaluation trains a fresh PPO policy on it (:mod:`drml_ray.irl.meta_driver`).

**Coverage states.** Random actions from the start state reach only part of the state space, and a network
trained to tell the demonstrations from them alone extrapolates: on Nav2D its ``g`` kept rising past the goal
(the maximum of ``g`` on a grid was 0.6-1.0 from the goal, and PPO on it walked off). So the negative side also
holds states drawn uniformly from the box around every state seen (widened by a margin), each its own next
state: against a uniform density the optimal ``g`` is the demonstrations' log-density, a bump where the expert
stays (measured: the maximum 0.04-0.07 from the goal after 100 steps from Reptile's or the pooled start).

**The outer loop.** Reptile (Nichol et al. 2018) on the reward network's weights: adapt ``phi`` from ``theta``
on each task of a meta-batch for ``inner_steps`` Adam steps, then ``theta += epsilon * mean(phi - theta)``,
``epsilon`` decayed linearly to 0 (:mod:`drml_ray.metagrad`, the same update as NER meta-learning and meta-RL).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from drml_ray.irl.demos import Episode, cat, coverage_states, episode_transitions, sample
from drml_ray.irl.losses import RewardNet, Transitions, discriminator_loss
from drml_ray.metagrad import adapt, inner_optimizer, meta_lr_at
from drml_ray.rl.weights import Weights, as_tensors, reptile_sum, reptile_update


@dataclass
class RewardTask:
    """One task's two sides: its demonstrations and the random policy's episodes."""

    expert: Transitions
    negatives: Transitions


def reward_task(demos: list[Episode], negatives: list[Episode], horizon: int, coverage: int = 0,
                margin: float = 0.5, generator: torch.Generator | None = None) -> RewardTask:  # fmt: skip
    """A task's discriminator data (continuous or discrete actions alike: ``f`` reads states only), with
    ``coverage`` uniform states among the negatives (:func:`coverage_states`)."""
    expert, random = episode_transitions(demos, horizon, None), episode_transitions(negatives, horizon, None)
    if coverage:
        random = cat(
            [random, coverage_states([expert, random], coverage, margin, generator or torch.Generator(), None)]
        )
    return RewardTask(expert, random)


def pooled(tasks: list[RewardTask]) -> RewardTask:
    """Every task's rows as one task: the data of a reward network pre-trained on all tasks."""
    return RewardTask(cat([t.expert for t in tasks]), cat([t.negatives for t in tasks]))


def new_reward_net(obs_dim: int, hidden: list[int], gamma: float, seed: int) -> RewardNet:
    """AIRL's reward network (``g`` and ``h``), initialised from ``seed``."""
    torch.manual_seed(seed)
    return RewardNet("airl", obs_dim, 1, hidden, gamma)


def adapt_reward(net: RewardNet, task: RewardTask, steps: list[int], lr: float, batch: int,
                 generator: torch.Generator, optimizer: str = "adam") -> list[Weights]:  # fmt: skip
    """The reward network's weights after each of ``steps`` (increasing) Adam steps on ``task``; ``net`` is left
    as it was. ``steps`` may start with 0 (the weights as given)."""
    net = copy.deepcopy(net)
    inner = inner_optimizer(net.parameters(), optimizer, lr)  # type: ignore[arg-type]
    snapshots, done = [], 0
    for target in steps:
        adapt(lambda _: _loss(net, task, batch, generator), target - done, inner)
        done = target
        snapshots.append(as_tensors(net.state_dict()))
    return snapshots


def reptile(net: RewardNet, tasks: list[RewardTask], iterations: int, meta_batch: int, inner_steps: int,
            inner_lr: float, meta_lr: float, batch: int, generator: torch.Generator,
            optimizer: str = "adam") -> Weights:  # fmt: skip
    """Reptile's initialisation of the reward network over ``tasks`` (``net`` is left as it was)."""
    theta = as_tensors(net.state_dict())
    for step in range(iterations):
        chosen = torch.randperm(len(tasks), generator=generator)[:meta_batch].tolist()
        net.load_state_dict(theta)
        adapted = [adapt_reward(net, tasks[i], [inner_steps], inner_lr, batch, generator, optimizer)[0] for i in chosen]
        theta = reptile_update(theta, [reptile_sum(theta, adapted)], meta_lr_at(step, iterations, meta_lr, True))
    net.load_state_dict(theta)
    return theta


def reward_correlation(net: RewardNet, episodes: list[Episode]) -> float:
    """Pearson correlation of ``g(s)`` with the true reward over the steps of ``episodes`` (0 if either is
    constant): how much of a task's reward the learned one recovers, up to scale and offset.

    >>> net = new_reward_net(1, [4], 0.9, 0)
    >>> ep = Episode(np.array([[0.0], [1.0], [2.0]], np.float32), np.zeros((2, 1)), np.array([0.0, 1.0]), False)
    >>> round(abs(reward_correlation(net, [ep])), 6)  # two steps: any two distinct values correlate perfectly
    1.0
    """
    obs = torch.as_tensor(np.concatenate([ep.obs[:-1] for ep in episodes]))
    true = np.concatenate([ep.rewards for ep in episodes])
    with torch.no_grad():
        learned = net.state_reward(obs, torch.zeros(len(obs), dtype=torch.bool)).numpy()
    if np.std(true) == 0 or np.std(learned) == 0:
        return 0.0
    return float(np.corrcoef(learned, true)[0, 1])


def _loss(net: RewardNet, task: RewardTask, batch: int, generator: torch.Generator) -> torch.Tensor:
    return discriminator_loss(net, sample(task.expert, batch, generator), sample(task.negatives, batch, generator))
