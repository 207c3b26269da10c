"""Reptile and first-order MAML against hand-computed updates on a two-weight linear model.

Model f(x) = w . x, loss 0.5 (w . x - y)^2, theta = (0, 0), inner SGD with lr 0.5.
Task A: support x=(1,0), y=2;  query x=(1,1), y=2.
Task B: support x=(0,1), y=-1; query x=(1,1), y=0.
One inner step: grad_A = (0 - 2)(1, 0) = (-2, 0) -> phi_A = (1, 0);
                grad_B = (0 + 1)(0, 1) = (0, 1)  -> phi_B = (0, -0.5).
"""

from __future__ import annotations

import pytest
import torch

from drml_ray.metagrad import (
    adapt,
    fomaml_gradient,
    inner_optimizer,
    mean_gradient,
    meta_lr_at,
    meta_step,
    reptile_gradient,
)

SUPPORT = {"A": ((1.0, 0.0), 2.0), "B": ((0.0, 1.0), -1.0)}
QUERY = {"A": ((1.0, 1.0), 2.0), "B": ((1.0, 1.0), 0.0)}


def loss(w: torch.Tensor, example) -> torch.Tensor:
    x, y = example
    return 0.5 * (w @ torch.tensor(x) - y) ** 2


def adapted(theta: torch.Tensor, task: str, steps: int = 1) -> torch.nn.Parameter:
    phi = torch.nn.Parameter(theta.clone())
    adapt(lambda step: loss(phi, SUPPORT[task]), steps, inner_optimizer([phi], "sgd", 0.5))
    return phi


def test_inner_loop_by_hand():
    theta = torch.zeros(2)
    assert adapted(theta, "A").tolist() == [1.0, 0.0]
    assert adapted(theta, "B").tolist() == [0.0, -0.5]
    # A second step on A: grad at (1, 0) is (1 - 2)(1, 0) = (-1, 0) -> (1.5, 0).
    assert adapted(theta, "A", steps=2).tolist() == [1.5, 0.0]


def test_reptile_update_by_hand():
    theta = {"w": torch.zeros(2)}
    grads = [reptile_gradient(theta, {"w": adapted(theta["w"], t)}) for t in ("A", "B")]
    assert grads[0]["w"].tolist() == [-1.0, 0.0] and grads[1]["w"].tolist() == [0.0, 0.5]
    meta = {"w": torch.nn.Parameter(theta["w"].clone())}
    meta_step(meta, mean_gradient(grads), torch.optim.SGD(meta.values(), lr=0.5))
    # theta + eps * mean(phi - theta) = 0.5 * ((1, 0) + (0, -0.5)) / 2
    assert meta["w"].tolist() == [0.25, -0.125]


def test_reptile_with_epsilon_one_lands_on_the_mean_adapted_weights():
    theta = {"w": torch.zeros(2)}
    grads = [reptile_gradient(theta, {"w": adapted(theta["w"], t, steps=2)}) for t in ("A", "B")]
    meta = {"w": torch.nn.Parameter(theta["w"].clone())}
    meta_step(meta, mean_gradient(grads), torch.optim.SGD(meta.values(), lr=1.0))
    # phi_A after 2 steps = (1.5, 0); phi_B: (0, -0.5) then grad (0, 0.5) -> (0, -0.75)
    assert meta["w"].tolist() == pytest.approx([0.75, -0.375])


def test_fomaml_update_by_hand():
    theta = torch.zeros(2)
    grads = []
    for task in ("A", "B"):
        phi = adapted(theta, task)
        grads.append(fomaml_gradient([("w", phi)], loss(phi, QUERY[task])))
    # query A at (1, 0): residual 1 - 2 = -1 -> (-1, -1); query B at (0, -0.5): residual -0.5 -> (-0.5, -0.5)
    assert grads[0]["w"].tolist() == [-1.0, -1.0] and grads[1]["w"].tolist() == [-0.5, -0.5]
    meta = {"w": torch.nn.Parameter(theta.clone())}
    meta_step(meta, mean_gradient(grads), torch.optim.SGD(meta.values(), lr=0.1))
    assert meta["w"].tolist() == pytest.approx([0.075, 0.075])


def test_meta_lr_decays_linearly_and_mean_needs_gradients():
    assert meta_lr_at(0, 10, 2.0, decay=False) == meta_lr_at(9, 10, 2.0, decay=False) == 2.0
    assert meta_lr_at(5, 10, 2.0, decay=True) == 1.0
    with pytest.raises(ValueError, match="no meta-gradients"):
        mean_gradient([])
