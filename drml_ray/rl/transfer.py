"""``drml rl transfer``: train on a source task, fine-tune on a target, against the target from scratch.

Each seed is one job on the actor pool (``meta.workers`` actors of ``meta.cpus_per_worker`` CPUs) on
learners of its own; the curves of all seeds are summarised with Taylor & Stone's metrics
(:mod:`drml_ray.rl.results`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drml_ray.errors import UserError
from drml_ray.rl.config import RLExperiment
from drml_ray.rl.driver import actor_pool
from drml_ray.runtime.executor import Job
from drml_ray.runtime.rundir import open_run
from drml_ray.runtime.runfiles import atomic_write_json

TRANSFER_FILE = "transfer.json"


def run_rl_transfer(cfg: RLExperiment, run_dir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Source -> target transfer against target-from-scratch over ``transfer.seeds``; writes ``transfer.json``."""
    from drml_ray.rl.results import transfer_summary, write_transfer_outputs

    if cfg.transfer is None:
        raise UserError(f"{cfg.name}: no transfer: section (source, target, ...) in the config")
    tr = cfg.transfer
    run_dir = open_run(run_dir, cfg, marker=TRANSFER_FILE, overwrite=overwrite)
    print(f"[drml] rl transfer '{cfg.name}' -> {run_dir}: {tr.source_family or cfg.env.family} {tr.source} "
          f"({tr.source_iters} PPO iterations) -> {tr.target_family or cfg.env.family} {tr.target} "
          f"({tr.target_iters}), seeds {tr.seeds}", flush=True)  # fmt: skip
    began, cfg_json = time.perf_counter(), cfg.model_dump(mode="json")

    def done(index: int, curves: dict[str, Any]) -> str:
        return (f"transfer {curves['transfer'][0]:.1f} -> {curves['transfer'][-1]:.1f}, "
                f"scratch {curves['scratch'][0]:.1f} -> {curves['scratch'][-1]:.1f}")  # fmt: skip

    with actor_pool(cfg, min(cfg.meta.workers, len(tr.seeds)), label="transfer") as pool:
        curves = pool.map([Job(f"seed {seed}", "transfer", (cfg_json, seed)) for seed in tr.seeds], done)
    result = transfer_summary(dict(zip(tr.seeds, curves, strict=True)), tr.threshold, tr.tail)
    result["wall_s"] = time.perf_counter() - began
    outputs = write_transfer_outputs(result, run_dir)
    atomic_write_json(run_dir / TRANSFER_FILE, result)  # written last: marks the run finished
    print(outputs["table"], flush=True)
    return result
