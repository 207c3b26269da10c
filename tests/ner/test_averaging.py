"""The moving average of the weights (``train.ema_decay``) against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from drml_ray.ner.averaging import WeightAverage


def test_late_updates_use_the_configured_decay_and_frozen_weights_are_not_averaged():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[0].requires_grad_(False)
    avg = WeightAverage(model, decay=0.5)
    assert set(avg.state_dict()) == {"1.weight", "1.bias"}
    start = model[1].bias.item()
    with torch.no_grad():
        model[1].bias.fill_(start + 4.0)
    avg.update(1000)  # min(0.5, 1001/1010) = 0.5: halfway
    assert avg.state_dict()["1.bias"].item() == pytest.approx(start + 2.0)


def test_the_model_gets_its_own_weights_back_when_scoring_fails():
    layer = torch.nn.Linear(1, 1)
    own = layer.weight.detach().clone()
    avg = WeightAverage(layer, decay=0.9)
    with torch.no_grad():
        layer.weight.add_(1.0)
    avg.update(1000)  # min(0.9, 1001/1010) = 0.9
    trained = layer.weight.detach().clone()
    with pytest.raises(RuntimeError, match="scoring failed"), avg.swapped_in():
        assert torch.allclose(layer.weight, own + 0.1)  # 0.9 * own + 0.1 * (own + 1)
        raise RuntimeError("scoring failed")
    assert torch.equal(layer.weight, trained)
