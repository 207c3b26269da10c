"""Reptile's outer update on RLModule weights and the transfer weight map, against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drml_ray.errors import UserError
from drml_ray.rl.weights import map_weights, reptile_sum, reptile_update
from tests.helpers import top_level_imports

# The layout of RLlib's default PPO module (separate encoders; Box actions: mean and log-std outputs).
SHAPES = {
    "encoder.actor_encoder.net.mlp.0.weight": (3, 2), "encoder.actor_encoder.net.mlp.0.bias": (3,),
    "encoder.critic_encoder.net.mlp.0.weight": (3, 2), "encoder.critic_encoder.net.mlp.0.bias": (3,),
    "pi.net.mlp.0.weight": (4, 3), "pi.net.mlp.0.bias": (4,), "pi.log_std_clip_param_const": (1,),
    "vf.net.mlp.0.weight": (1, 3), "vf.net.mlp.0.bias": (1,),
}  # fmt: skip


def weights(value: float) -> dict[str, torch.Tensor]:
    return {k: torch.full(shape, value) for k, shape in SHAPES.items()}


def test_reptile_update_moves_theta_toward_the_mean_adapted_weights():
    theta = weights(1.0)
    # Worker A adapted two tasks (phi = 3 and 5), worker B one task (phi = -2): mean(phi - theta) = (2 + 4 - 3) / 3 = 1.
    sums = [reptile_sum(theta, [weights(3.0), weights(5.0)]), reptile_sum(theta, [weights(-2.0)])]
    assert [n for _, n in sums] == [2, 1]
    new = reptile_update(theta, sums, epsilon=0.5)
    assert set(new) == set(SHAPES)
    for name, value in new.items():
        assert torch.allclose(value, torch.full(SHAPES[name], 1.5)), name  # 1 + 0.5 * 1
    # epsilon 1 lands on the mean adapted weights; one entry differing is tracked on its own.
    phi = weights(3.0)
    phi["pi.net.mlp.0.bias"] = torch.tensor([0.0, 1.0, 2.0, 3.0])
    new = reptile_update(theta, [reptile_sum(theta, [phi, weights(5.0)])], epsilon=1.0)
    assert new["pi.net.mlp.0.bias"].tolist() == [2.5, 3.0, 3.5, 4.0]
    assert new["vf.net.mlp.0.bias"].tolist() == [4.0]
    new = reptile_update(theta, [reptile_sum(theta, [weights(3.0)])], epsilon=1.0, frozen=["pi.net.mlp.0.bias"])
    assert (
        new["pi.net.mlp.0.bias"].tolist() == [1.0] * 4 and new["pi.net.mlp.0.weight"].flatten().tolist() == [3.0] * 12
    )
    with pytest.raises(ValueError, match="no adapted tasks"):
        reptile_update(theta, [], 1.0)


def test_map_weights_copies_hidden_layers_and_maps_input_columns_and_output_rows():
    source = {k: torch.arange(torch.Size(s).numel(), dtype=torch.float32).reshape(s) for k, s in SHAPES.items()}
    target_shapes = SHAPES | {
        "encoder.actor_encoder.net.mlp.0.weight": (3, 3), "encoder.critic_encoder.net.mlp.0.weight": (3, 3),
        "pi.net.mlp.0.weight": (2, 3), "pi.net.mlp.0.bias": (2,),
    }  # fmt: skip
    target = {k: torch.full(s, -1.0) for k, s in target_shapes.items()}
    mapped = map_weights(source, target, observation=[1, None, 0], action=[2, None])
    w = source["encoder.actor_encoder.net.mlp.0.weight"]  # [[0, 1], [2, 3], [4, 5]]
    assert mapped["encoder.actor_encoder.net.mlp.0.weight"].tolist() == [[1, 0, 0], [3, 0, 2], [5, 0, 4]]
    assert mapped["pi.net.mlp.0.weight"].tolist() == [source["pi.net.mlp.0.weight"][2].tolist(), [-1.0] * 3]
    assert mapped["pi.net.mlp.0.bias"].tolist() == [2.0, -1.0]
    assert torch.equal(mapped["vf.net.mlp.0.weight"], source["vf.net.mlp.0.weight"])
    assert torch.equal(w, source["encoder.actor_encoder.net.mlp.0.weight"])  # the source is untouched


def test_map_weights_names_the_layer_or_mapping_that_does_not_fit():
    source = weights(0.0)
    target = weights(0.0) | {"encoder.actor_encoder.net.mlp.0.weight": torch.zeros(3, 4)}
    with pytest.raises(UserError, match=r"encoder.actor_encoder.net.mlp.0.weight: source shape \(3, 2\) != target"):
        map_weights(source, target)
    with pytest.raises(UserError, match="mapping.observation has 2 entries; the target observation has 4"):
        map_weights(source, target, observation=[0, 1])
    with pytest.raises(UserError, match=r"mapping.observation: indices \[7\] out of range"):
        map_weights(source, target, observation=[0, 1, 7, None])


def test_the_algorithm_modules_never_import_ray():
    folder = Path(__file__).resolve().parents[2] / "drml_ray" / "rl"
    for name in ("envs.py", "weights.py", "transfer_metrics.py", "results.py"):
        assert "ray" not in top_level_imports(folder / name), name
