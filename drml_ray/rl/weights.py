"""RLModule weights as plain tensors: Reptile's outer update and the source -> target map of transfer.

A policy's weights are the ``name -> tensor`` dict of RLlib's default PPO module (separate actor and
critic encoders, a policy head ``pi`` and a value head ``vf``). Nothing here imports Ray or RLlib.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from drml_ray.errors import UserError
from drml_ray.metagrad import reptile_gradient, sum_gradients

Weights = dict[str, torch.Tensor]

INPUT_LAYER = re.compile(r"^encoder\.(actor|critic)_encoder\.net\.mlp\.0\.weight$")
POLICY_LAYER = re.compile(r"^pi\.net\.mlp\.(\d+)\.(weight|bias)$")


def as_tensors(state: Mapping[str, Any]) -> Weights:
    """A module state (numpy arrays or tensors) as float tensors, detached copies."""
    return {k: torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v).detach().clone()
            for k, v in state.items()}  # fmt: skip


def reptile_sum(
    theta: Mapping[str, torch.Tensor], adapted: Sequence[Mapping[str, torch.Tensor]]
) -> tuple[Weights, int]:
    """Summed Reptile meta-gradients ``theta - phi`` of the tasks one worker adapted, and their count."""
    return sum_gradients(reptile_gradient(theta, phi) for phi in adapted)


def reptile_update(
    theta: Mapping[str, torch.Tensor], sums: Sequence[tuple[Weights, int]], epsilon: float, frozen: Sequence[str] = ()
) -> Weights:
    """One outer step from the workers' summed meta-gradients: ``theta + epsilon * mean(phi - theta)``;
    the ``frozen`` entries keep theta's value.

    >>> theta = {"w": torch.tensor([0.0, 2.0])}
    >>> adapted = [{"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([3.0, 0.0])}]
    >>> reptile_update(theta, [reptile_sum(theta, adapted)], 0.5)
    {'w': tensor([1.0000, 1.5000])}
    """
    total, _ = sum_gradients(s for s, _ in sums)
    count = sum(n for _, n in sums)
    if not count:
        raise ValueError("no adapted tasks to update from")
    return {
        name: theta[name].clone()
        if name in frozen
        else theta[name] - epsilon * total[name].to(theta[name].dtype) / count
        for name in theta
    }


def _policy_output_layer(weights: Mapping[str, torch.Tensor]) -> int:
    return max(int(m.group(1)) for k in weights if (m := POLICY_LAYER.match(k)))


def map_weights(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    observation: Sequence[int | None] | None = None,
    action: Sequence[int | None] | None = None,
) -> Weights:
    """``target``'s layout filled from ``source``.

    Hidden layers are copied. The encoders' input layers take, for target observation dimension ``i``,
    the source column ``observation[i]`` (``None``: zeros, a new input the policy first ignores). The
    policy head's output layer takes, for target output ``j``, the source row ``action[j]`` (``None``:
    ``target``'s fresh initialisation). Without a mapping every shape must match; a mismatch is a
    ``ValueError`` naming the layer.
    """
    out_index = _policy_output_layer(target)
    mapped: Weights = {}
    for name, fresh in target.items():
        if name not in source:
            raise UserError(f"the source policy has no layer {name} (different architectures cannot transfer)")
        src = source[name]
        is_input = bool(INPUT_LAYER.match(name))
        match = POLICY_LAYER.match(name)
        is_output = bool(match and int(match.group(1)) == out_index)
        if is_input and observation is not None:
            if len(observation) != fresh.shape[1]:
                raise UserError(f"mapping.observation has {len(observation)} entries; the target observation "
                                 f"has {fresh.shape[1]} dimensions")  # fmt: skip
            columns = [
                src[:, i] if i is not None else torch.zeros_like(fresh[:, 0])
                for i in _checked(observation, src.shape[1], "observation")
            ]
            mapped[name] = torch.stack(columns, dim=1)
        elif is_output and action is not None:
            if len(action) != fresh.shape[0]:
                raise UserError(f"mapping.action has {len(action)} entries; the target policy head has "
                                 f"{fresh.shape[0]} outputs")  # fmt: skip
            rows = [
                src[j] if j is not None else fresh[k] for k, j in enumerate(_checked(action, src.shape[0], "action"))
            ]
            mapped[name] = torch.stack(rows, dim=0)
        elif src.shape == fresh.shape:
            mapped[name] = src.clone()
        else:
            raise UserError(f"layer {name}: source shape {tuple(src.shape)} != target shape {tuple(fresh.shape)}")
    return mapped


def _checked(indices: Sequence[int | None], size: int, what: str) -> Sequence[int | None]:
    bad = [i for i in indices if i is not None and not 0 <= i < size]
    if bad:
        raise UserError(f"mapping.{what}: indices {bad} out of range (the source has {size})")
    return indices
