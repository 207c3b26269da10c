"""Meta-IRL's plain-torch parts on hand-computed cases: the adaptation's snapshots, Reptile's outer step, the
pooled data, and the reward's correlation with the true one."""

from __future__ import annotations

import numpy as np
import torch

from drml_ray.irl.demos import Episode
from drml_ray.irl.losses import discriminator_loss
from drml_ray.irl.meta import adapt_reward, new_reward_net, pooled, reptile, reward_correlation, reward_task


def episodes(points: list[list[float]], rewards: list[float]) -> list[Episode]:
    obs = np.asarray(points, dtype=np.float32)
    return [Episode(obs, np.zeros((len(points) - 1, 1)), np.asarray(rewards), False)]


def task(sign: float = 1.0):
    expert = episodes([[sign, 0.0], [sign, 0.0], [sign, 0.0]], [0.0, 0.0])
    negatives = episodes([[-sign, 0.0], [-sign, 0.0], [-sign, 0.0]], [-1.0, -1.0])
    return reward_task(expert, negatives, 2)


def test_one_sgd_step_of_adaptation_is_the_loss_gradient_step_and_leaves_the_network_alone():
    net, data = new_reward_net(2, [4], 0.9, 0), task()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    start, after = adapt_reward(net, data, [0, 1], 0.1, 8, torch.Generator().manual_seed(0), "sgd")
    # every row of each side is the same transition, so any minibatch gives the full-batch loss
    loss = discriminator_loss(net, data.expert, data.negatives)
    names, params = zip(*net.named_parameters(), strict=True)
    grads = dict(zip(names, torch.autograd.grad(loss, list(params)), strict=True))
    for name, value in before.items():
        torch.testing.assert_close(start[name], value)
        torch.testing.assert_close(after[name], value - 0.1 * grads[name])
        torch.testing.assert_close(net.state_dict()[name], value)


def test_reptile_with_one_task_and_one_outer_step_moves_theta_to_the_adapted_weights():
    # one outer step: epsilon = meta_lr (the linear decay starts at meta_lr), so theta + 1.0 * (phi - theta) = phi
    net, data = new_reward_net(2, [4], 0.9, 0), task()
    theta = reptile(net, [data], 1, 1, 3, 0.1, 1.0, 8, torch.Generator().manual_seed(0), "sgd")
    phi = adapt_reward(new_reward_net(2, [4], 0.9, 0), data, [3], 0.1, 8, torch.Generator().manual_seed(0), "sgd")[0]
    for name in theta:
        torch.testing.assert_close(theta[name], phi[name])
    half = reptile(new_reward_net(2, [4], 0.9, 0), [data], 1, 1, 3, 0.1, 0.5, 8, torch.Generator(), "sgd")
    start = new_reward_net(2, [4], 0.9, 0).state_dict()
    for name in theta:
        torch.testing.assert_close(half[name], (start[name] + phi[name]) / 2)


def test_pooled_tasks_hold_every_row_of_each_side():
    both = pooled([task(1.0), task(-1.0)])
    assert both.expert.obs[:, 0].tolist() == [1.0, 1.0, -1.0, -1.0]
    assert both.negatives.obs[:, 0].tolist() == [-1.0, -1.0, 1.0, 1.0]


def test_adapted_reward_is_higher_where_the_demonstrations_are_and_correlates_with_the_true_reward():
    net, data = new_reward_net(2, [8], 0.9, 0), task()
    net.load_state_dict(adapt_reward(net, data, [50], 0.5, 8, torch.Generator().manual_seed(0), "sgd")[0])
    mixed = episodes([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]], [0.0, -1.0, 0.0])
    assert reward_correlation(net, mixed) > 0.99
    assert reward_correlation(net, episodes([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [0.0, 0.0])) == 0.0
