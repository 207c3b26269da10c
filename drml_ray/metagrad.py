"""Meta-gradient maths, in plain torch: what NER meta-learning (:mod:`drml_ray.meta`) and meta-RL
(:mod:`drml_ray.rl`) share.

Both algorithms are written as a *meta-gradient* ``g`` per task, averaged over a meta-batch and
handed to an ordinary torch optimizer on the meta-parameters theta:

- Reptile (Nichol et al. 2018): adapt phi = theta with ``k`` inner steps on the task, then
  ``g = theta - phi``. With SGD and learning rate epsilon the update is the paper's
  ``theta <- theta + epsilon * mean(phi - theta)``.
- First-order MAML (Finn et al. 2017): adapt phi on the support set, then ``g`` is the gradient of
  the *query* loss at phi (the second-order term of MAML dropped):
  ``theta <- theta - beta * mean(grad L_query(phi))``.

Parameters are dicts ``name -> tensor`` so that Ray actors can ship them; nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch

Params = dict[str, torch.Tensor]
Algorithm = Literal["reptile", "fomaml"]


def inner_optimizer(
    params: Iterable[torch.nn.Parameter], kind: Literal["adam", "sgd"], lr: float
) -> torch.optim.Optimizer:
    """A fresh inner-loop optimizer (its state never carries over between episodes)."""
    params = list(params)
    return torch.optim.Adam(params, lr=lr) if kind == "adam" else torch.optim.SGD(params, lr=lr)


def adapt(loss_at: Callable[[int], torch.Tensor], steps: int, optimizer: torch.optim.Optimizer) -> list[float]:
    """``steps`` optimizer steps on ``loss_at(step)``; the parameters move in place. Returns the losses."""
    losses = []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_at(step)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    optimizer.zero_grad(set_to_none=True)
    return losses


def reptile_gradient(theta: Mapping[str, torch.Tensor], phi: Mapping[str, torch.Tensor]) -> Params:
    """Reptile's meta-gradient of one task: ``theta - phi`` (phi: the weights after adaptation)."""
    return {name: (theta[name] - phi[name].detach().to(theta[name].device)).float() for name in theta}


def fomaml_gradient(named_params: Iterable[tuple[str, torch.nn.Parameter]], query_loss: torch.Tensor) -> Params:
    """First-order MAML's meta-gradient of one task: the query loss's gradient at the adapted weights."""
    named = [(n, p) for n, p in named_params if p.requires_grad]
    grads = torch.autograd.grad(query_loss, [p for _, p in named], allow_unused=True)
    pairs = zip(named, grads, strict=True)
    return {n: (g if g is not None else torch.zeros_like(p)).detach().float() for (n, p), g in pairs}


def sum_gradients(grads: Iterable[Mapping[str, torch.Tensor]]) -> tuple[Params, int]:
    """The sum of per-task meta-gradients and how many there were."""
    total: Params = {}
    count = 0
    for g in grads:
        count += 1
        for name, value in g.items():
            total[name] = total[name] + value if name in total else value.clone()
    return total, count


def mean_gradient(grads: Iterable[Mapping[str, torch.Tensor]]) -> Params:
    """The average of per-task meta-gradients (each task weighs the same)."""
    total, count = sum_gradients(grads)
    if not count:
        raise ValueError("no meta-gradients to average")
    return {name: value / count for name, value in total.items()}


def meta_step(
    meta_params: Mapping[str, torch.nn.Parameter],
    gradient: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
) -> None:
    """Apply one outer update: the meta-gradient goes into ``.grad`` and ``optimizer`` steps."""
    for name, p in meta_params.items():
        g = gradient.get(name)
        p.grad = None if g is None else g.to(p.dtype).to(p.device)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (in nested dicts, lists and tuples) on the CPU: an optimizer's
    ``state_dict()`` that can leave a GPU process.

    >>> to_cpu({"state": {0: {"step": torch.tensor(2.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]})
    {'state': {0: {'step': tensor(2.)}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]}
    """
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


def meta_lr_at(step: int, total: int, base: float, decay: bool) -> float:
    """The outer learning rate at ``step`` (0-based): ``base``, decayed linearly to 0 when ``decay``.

    >>> [meta_lr_at(s, 4, 1.0, True) for s in range(4)]
    [1.0, 0.75, 0.5, 0.25]
    """
    return base * (1 - step / total) if decay else base
