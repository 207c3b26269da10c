"""An exponential moving average of a model's trainable weights (``train.ema_decay``), in plain torch.

After every optimizer step the average moves towards the weights: ``avg = d * avg + (1 - d) * w``, with
``d = min(decay, (1 + t) / (10 + t))`` at the ``t``-th update (the warm-up of TensorFlow's
``ExponentialMovingAverage``): early on, when the weights move fast and a fresh head is random, the average
follows them closely; later it spans roughly the last ``1 / (1 - decay)`` steps. Training itself is unchanged:
the average is only swapped in to be scored, checkpointed as a choice and exported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class WeightAverage:
    """The running average of ``model``'s trainable parameters.

    >>> layer = torch.nn.Linear(1, 1, bias=False); _ = torch.nn.init.zeros_(layer.weight)
    >>> avg = WeightAverage(layer, decay=0.999)
    >>> with torch.no_grad(): _ = layer.weight.fill_(1.0)
    >>> avg.update(0)  # d = min(0.999, 1/10): 0.1 * 0 + 0.9 * 1
    >>> round(avg.state_dict()["weight"].item(), 4)
    0.9
    >>> with torch.no_grad(): _ = layer.weight.fill_(2.0)
    >>> avg.update(1)  # d = 2/11: (2/11) * 0.9 + (9/11) * 2 = 19.8/11
    >>> round(avg.state_dict()["weight"].item(), 4)
    1.8
    >>> with avg.swapped_in(): round(layer.weight.item(), 4)
    1.8
    >>> layer.weight.item()
    2.0
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.average = {name: p.detach().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the current weights; ``step`` counts the updates before this one."""
        weight = 1.0 - min(self.decay, (1 + step) / (10 + step))
        for name, p in self.params.items():
            self.average[name].lerp_(p.detach(), weight)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own weights again after it."""
        own = {name: p.detach().clone() for name, p in self.params.items()}
        _copy_into(self.params, self.average)
        try:
            yield
        finally:
            _copy_into(self.params, own)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights by parameter name: loadable with ``model.load_state_dict(..., strict=False)``."""
        return self.average

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        _copy_into(self.average, state)


@torch.no_grad()
def _copy_into(params: dict[str, torch.Tensor], values: dict[str, torch.Tensor]) -> None:
    for name, p in params.items():
        p.copy_(values[name])
