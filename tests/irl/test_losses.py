"""GAIL's and AIRL's discriminators, their loss and the policy's rewards, on cases computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from drml_ray.irl.losses import RewardNet, Transitions, discriminator_loss, policy_rewards


def linear_airl(gamma: float) -> RewardNet:
    """AIRL with one linear layer each: g([s, flag]) = s + flag, h([s, flag]) = 2 s + 3 flag."""
    net = RewardNet("airl", obs_dim=1, action_dim=1, hidden=[], gamma=gamma)
    with torch.no_grad():
        net.g[0].weight.copy_(torch.tensor([[1.0, 1.0]]))
        net.h[0].weight.copy_(torch.tensor([[2.0, 3.0]]))
        net.g[0].bias.zero_()
        net.h[0].bias.zero_()
    return net


def rows(obs, next_obs, next_absorbing, logp, weight=None, absorbing=None) -> Transitions:
    n = len(obs)
    return Transitions(
        torch.tensor(obs).reshape(n, 1),
        torch.zeros(n, 1),
        torch.tensor(next_obs).reshape(n, 1),
        torch.tensor(absorbing or [False] * n),
        torch.tensor(next_absorbing),
        torch.tensor(logp),
        torch.tensor(weight or [1.0] * n),
    )


def test_airl_logit_is_f_minus_log_pi_with_the_absorbing_state_as_its_own_input():
    net = linear_airl(gamma=0.5)
    # s=1 -> s'=2: g(1) + 0.5 h(2) - h(1) = 1 + 2 - 2 = 1; logit = 1 - (-0.5) = 1.5
    # s=1 -> absorbing: g(1) + 0.5 h(abs) - h(1) = 1 + 1.5 - 2 = 0.5; logit = 0.5 - (-1) = 1.5
    # absorbing -> absorbing: g(abs) + 0.5 h(abs) - h(abs) = 1 + 1.5 - 3 = -0.5 (log pi = 0)
    t = rows([1.0, 1.0, 7.0], [2.0, 9.0, 7.0], [False, True, True], [-0.5, -1.0, 0.0], absorbing=[False, False, True])
    assert net.logits(t).tolist() == pytest.approx([1.5, 1.5, -0.5])
    net.policy_logp = False  # irl.disc.policy_logp: false -> the logit is f alone
    assert net.logits(t).tolist() == pytest.approx([1.0, 0.5, -0.5])


def test_discriminator_loss_is_the_sum_of_each_sides_weighted_mean_cross_entropy():
    net = linear_airl(gamma=0.5)
    expert = rows([1.0], [2.0], [False], [-0.5])  # logit 1.5, label 1: softplus(-1.5)
    policy = rows([1.0, 0.0], [2.0, 0.0], [False, False], [-0.5, 0.0], weight=[1.0, 3.0])  # logits 1.5 and 0
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = softplus(-1.5) + (1 * softplus(1.5) + 3 * softplus(0.0)) / 4
    assert float(discriminator_loss(net, expert, policy).detach()) == pytest.approx(expected, rel=1e-6)


def test_a_terminal_step_gets_the_discounted_reward_of_the_absorbing_steps_that_pad_it_to_the_horizon():
    net = linear_airl(gamma=0.5)
    t = rows([1.0, 1.0], [2.0, 9.0], [False, True], [-0.5, -1.0])
    # AIRL's policy reward is f: 1 and 0.5 (above); r_abs = -0.5; 2 padded steps: -0.5 * (0.5 + 0.25) = -0.375
    rewards = policy_rewards(net, t, remaining=torch.tensor([0, 2]))
    assert rewards.tolist() == pytest.approx([1.0, 0.5 - 0.375])


def test_gail_ignores_the_action_of_an_absorbing_row():
    net = RewardNet("gail", obs_dim=1, action_dim=2, hidden=[4], gamma=0.9)
    t = rows([0.0, 0.0], [0.0, 0.0], [True, True], [0.0, 0.0], absorbing=[True, True])
    t.actions = torch.tensor([[5.0, -3.0], [0.0, 0.0]])
    logits = net.logits(t)
    assert logits[0] == logits[1]


def test_the_gradient_penalty_adds_the_squared_input_gradient_of_each_sides_logit():
    net = linear_airl(gamma=0.5)
    expert = rows([1.0], [2.0], [False], [-0.5])
    policy = rows([1.0, 0.0], [2.0, 0.0], [False, False], [-0.5, 0.0], weight=[1.0, 3.0])
    plain = float(discriminator_loss(net, expert, policy).detach())
    # d logit / d s = g' - h' = 1 - 2 = -1; d logit / d s' = gamma h' = 1: a squared norm of 2 on every row
    penalised = float(discriminator_loss(net, expert, policy, grad_penalty=0.1).detach())
    assert penalised == pytest.approx(plain + 0.1 * 2 + 0.1 * 2, rel=1e-6)


def test_the_reward_carried_to_new_dynamics_is_airls_state_only_g():
    net = linear_airl(gamma=0.5)
    t = rows([1.0, 3.0], [2.0, 9.0], [False, True], [-0.5, -1.0])
    # g(1) = 1; g(3) = 3 plus g(abs) = 1 over 2 padded steps: 1 * (0.5 + 0.25)
    rewards = policy_rewards(net, t, remaining=torch.tensor([0, 2]), state_only=True)
    assert rewards.tolist() == pytest.approx([1.0, 3.75])
