"""Adversarial inverse RL in plain torch: GAIL's and AIRL's discriminators, their loss, and the rewards they
give the policy learner. Nothing here imports Ray or RLlib.

**Episode ends.** An episode that *terminates* after ``T`` of a horizon of ``H`` steps is read as if it went on
in an absorbing state for the remaining ``H - T`` steps (Kostrikov et al. 2019, "Discriminator-Actor-Critic"),
for the expert's demonstrations and the policy's episodes alike:

- the discriminator sees the absorbing state as a state of its own (an extra input flag, observation zeros),
  and its ``H - T`` absorbing transitions as one sample of weight ``H - T``: each side's loss is a mean over
  equally long (padded) episodes, so a policy that falls early cannot look expert-like by being short;
- the terminal step's reward includes the discounted absorbing tail ``sum_{k=1}^{H-T} gamma^k r_abs``,
  the return those padded steps would have given (the value learner never bootstraps past a termination).

An episode cut by the time limit (``truncated``) is not an end of the task: its last transition is an
ordinary one and the value function bootstraps from it. A constant reward sign (GAIL's ``-log(1 - D)`` is
always positive) therefore no longer buys survival or suicide: both sides' episodes have length ``H``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

Method = Literal["gail", "airl"]


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of ``sizes`` with tanh between them (no activation after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def with_flag(obs: torch.Tensor, absorbing: torch.Tensor) -> torch.Tensor:
    """Observations with the absorbing flag appended; an absorbing state's observation is zeros."""
    flag = absorbing.to(obs.dtype).unsqueeze(-1)
    return torch.cat([obs * (1 - flag), flag], dim=-1)


@dataclass
class Transitions:
    """A batch of transitions ``(s, a, s')`` as the discriminator reads them.

    ``absorbing``: ``s`` is the absorbing state (then so is ``s'``); ``next_absorbing``: ``s'`` is (the step
    terminated the episode). ``logp``: log pi(a|s) of the current policy (0 for absorbing rows, whose action
    is certain). ``weight``: how many padded transitions a row stands for."""

    obs: torch.Tensor
    actions: torch.Tensor
    next_obs: torch.Tensor
    absorbing: torch.Tensor
    next_absorbing: torch.Tensor
    logp: torch.Tensor
    weight: torch.Tensor


class RewardNet(nn.Module):
    """GAIL's discriminator ``D(s, a)`` or AIRL's ``f(s, a, s') = g(s) + gamma h(s') - h(s)``, with state-only
    ``g`` (the part that carries over to new dynamics) and shaping ``h``."""

    def __init__(self, method: Method, obs_dim: int, action_dim: int, hidden: list[int], gamma: float,
                 policy_logp: bool = True):  # fmt: skip
        super().__init__()
        self.method, self.gamma, self.policy_logp = method, gamma, policy_logp
        if method == "gail":
            self.d = mlp([obs_dim + 1 + action_dim, *hidden, 1])
        else:
            self.g = mlp([obs_dim + 1, *hidden, 1])
            self.h = mlp([obs_dim + 1, *hidden, 1])

    def state_reward(self, obs: torch.Tensor, absorbing: torch.Tensor) -> torch.Tensor:
        """AIRL's ``g(s)``: the reward kept for transfer."""
        return self.g(with_flag(obs, absorbing)).squeeze(-1)

    def f(self, t: Transitions) -> torch.Tensor:
        """AIRL's ``f(s, a, s')``; an absorbing state's next state is itself."""
        s, s2 = with_flag(t.obs, t.absorbing), with_flag(t.next_obs, t.next_absorbing | t.absorbing)
        return self.g(s).squeeze(-1) + self.gamma * self.h(s2).squeeze(-1) - self.h(s).squeeze(-1)

    def logits(self, t: Transitions) -> torch.Tensor:
        """``log D - log(1 - D)``: GAIL's network output; AIRL's ``f - log pi(a|s)``, since its
        ``D = exp(f) / (exp(f) + pi(a|s))`` (``f`` alone without ``policy_logp``)."""
        if self.method == "airl":
            return self.f(t) - t.logp if self.policy_logp else self.f(t)
        actions = t.actions * (1 - t.absorbing.to(t.actions.dtype)).unsqueeze(-1)
        return self.d(torch.cat([with_flag(t.obs, t.absorbing), actions], dim=-1)).squeeze(-1)


def discriminator_loss(
    net: RewardNet, expert: Transitions, policy: Transitions, grad_penalty: float = 0.0
) -> torch.Tensor:
    """Binary cross-entropy, expert rows labelled 1 and policy rows 0; each side is a weighted mean over its
    rows (so the two sides count equally, whatever their sizes), and the loss is their sum. With
    ``grad_penalty``, plus that times the mean squared gradient of the logit with respect to the inputs
    (observations, next observations, actions) on both sides: a smooth discriminator whose reward still
    slopes towards the demonstrations where it has already told them apart (a saturated one is flat there)."""
    loss = torch.zeros(())
    for side, label in ((expert, 1.0), (policy, 0.0)):
        if grad_penalty:
            side = Transitions(side.obs.detach().requires_grad_(), side.actions.detach().requires_grad_(),
                               side.next_obs.detach().requires_grad_(), side.absorbing, side.next_absorbing,
                               side.logp, side.weight)  # fmt: skip
        logits = net.logits(side)
        bce = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction="none")
        loss = loss + (bce * side.weight).sum() / side.weight.sum()
        if grad_penalty:
            grads = torch.autograd.grad(logits.sum(), [side.obs, side.actions, side.next_obs], create_graph=True,
                                        allow_unused=True)  # fmt: skip
            squared = sum((g**2).sum(-1) for g in grads if g is not None)
            loss = loss + grad_penalty * (squared * side.weight).sum() / side.weight.sum()
    return loss


def absorbing_tail(r_abs: torch.Tensor, remaining: torch.Tensor, gamma: float) -> torch.Tensor:
    """``sum_{k=1}^{n} gamma^k r_abs`` for ``n = remaining``: the discounted reward of the absorbing steps that
    pad a terminated episode to the horizon.

    >>> absorbing_tail(torch.tensor(2.0), torch.tensor([0, 1, 3]), 0.5).tolist()
    [0.0, 1.0, 1.75]
    """
    if gamma == 1.0:
        return r_abs * remaining.to(r_abs.dtype)
    return r_abs * gamma * (1 - gamma ** remaining.to(r_abs.dtype)) / (1 - gamma)


def policy_rewards(net: RewardNet, t: Transitions, remaining: torch.Tensor, state_only: bool = False) -> torch.Tensor:
    """The reward the policy learner gets for each of its transitions, plus, on a terminal step, the absorbing
    tail of the ``remaining`` padded steps (0 elsewhere). GAIL: the discriminator's logit. AIRL: ``f`` itself,
    not ``log D - log(1 - D) = f - log pi``: that ``-log pi`` is maximum-entropy RL's bonus, and with continuous
    actions clipped to their bounds it pays an ever wider policy for nothing (measured on Nav2D: the policy's
    noise grew and its mean walked off); PPO's own ``entropy_coeff`` is the place for an entropy bonus.
    ``state_only``: AIRL's ``g(s)`` alone, the reward carried to new dynamics (its shaping ``h`` was fitted to the
    old ones)."""

    def reward(rows: Transitions) -> torch.Tensor:
        if state_only:
            return net.state_reward(rows.obs, rows.absorbing)
        return net.f(rows) if net.method == "airl" else net.logits(rows)

    with torch.no_grad():
        rewards = reward(t)
        ends = t.next_absorbing & (remaining > 0)
        if ends.any():
            one = torch.ones(1, dtype=torch.bool)
            absorbing = Transitions(t.obs[:1], t.actions[:1], t.next_obs[:1], one, one,
                                    torch.zeros(1), torch.ones(1))  # fmt: skip
            r_abs = reward(absorbing)[0]
            rewards = rewards + torch.where(ends, absorbing_tail(r_abs, remaining, net.gamma), 0.0)
    return rewards
