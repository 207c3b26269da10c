"""Meta-training's state: theta, its outer optimizer and the record of one algorithm, checkpointed together, and
held either here (the driver's, with theta broadcast to the actors every meta-step) or by one actor on its device
(:meth:`drml_ray.meta.driver.MetaWorker.hold`). Plain torch: the holder is reached through its executor's calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from drml_ray.checkpoints import load_state, save_state
from drml_ray.meta.config import MetaExperiment, MetaSettings
from drml_ray.metagrad import Params, meta_step

if TYPE_CHECKING:
    from drml_ray.runtime.executor import ActorExecutor


@dataclass
class MetaRun:
    """One algorithm's meta-training: theta, its outer optimizer and the record, checkpointed together.

    With ``holder`` (a pool of one actor), that actor holds the live theta and optimizer on its device
    (:meth:`drml_ray.meta.driver.MetaWorker.outer_step`); the ones here are its copy as of the last :meth:`sync`."""

    algorithm: str
    params: dict[str, torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    lr: float
    record: dict[str, Any]
    step: int = 0
    holder: ActorExecutor | None = None

    def theta(self) -> Params:
        return {n: p.detach() for n, p in self.params.items()}

    def update(self, summed: Params, count: int, lr: float) -> None:
        """One outer step at ``lr`` on the mean of ``count`` episodes' summed meta-gradients."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        meta_step(self.params, {n: g / count for n, g in summed.items()}, self.optimizer)

    def hand_to(self, pool: ActorExecutor, meta: MetaSettings) -> None:
        """Let ``pool``'s one actor hold theta and the optimizer from now on."""
        pool.call("hold", self.theta(), self.optimizer.state_dict(), self.algorithm, meta.model_dump(mode="json"))
        self.holder = pool

    def sync(self) -> None:
        """Copy the holder's theta and optimizer state here."""
        if self.holder is None:
            return
        self.load(*self.holder.call("held_state"))

    def load(self, theta: Params, optimizer_state: dict) -> None:
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(theta[name])
        self.optimizer.load_state_dict(optimizer_state)

    def save(self, path: Path) -> None:
        self.sync()
        save_state(path, {"theta": self.theta(), "optimizer": self.optimizer.state_dict(), "record": self.record,
                          "step": self.step})  # fmt: skip


def new_meta_run(meta: MetaSettings, algorithm: str, theta: Params, device: torch.device | str = "cpu") -> MetaRun:
    """A fresh meta-training of ``algorithm`` from a copy of ``theta`` on ``device``, with its outer optimizer."""
    params = {n: torch.nn.Parameter(p.detach().to(device, copy=True)) for n, p in theta.items()}
    reptile = algorithm == "reptile"
    kind, lr = (meta.meta_optimizer, meta.meta_lr) if reptile else (meta.fomaml_optimizer, meta.fomaml_lr)
    optimizer = torch.optim.Adam(params.values(), lr=lr) if kind == "adam" else torch.optim.SGD(params.values(), lr=lr)
    return MetaRun(algorithm, params, optimizer, lr, {"steps": [], "evals": [], "train_s": 0.0})


def start_meta_run(cfg: MetaExperiment, algorithm: str, theta: Params, state_path: Path) -> MetaRun:
    """A fresh meta-training from ``theta``, or the one checkpointed at ``state_path``."""
    run = new_meta_run(cfg.meta, algorithm, theta)
    if state_path.exists():
        saved = load_state(state_path)
        run.load(saved["theta"], saved["optimizer"])
        run.record, run.step = saved["record"], saved["step"]
        print(f"[drml] {algorithm}: resuming at meta-step {run.step} from {state_path}")
    return run
