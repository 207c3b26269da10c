"""``drml rl transfer``: train on a source task, fine-tune on a target, against the target from scratch.

Each seed is one Ray task (reserving ``meta.cpus_per_worker`` CPUs) that owns its PPO learners; the
curves of all seeds are summarised with Taylor & Stone's metrics (:mod:`drml_ray.rl.results`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ray  # RAY

from drml_ray.config import RLExperiment, dump_config
from drml_ray.ray_env import ensure_ray
from drml_ray.rl.driver import RLWorker
from drml_ray.rl.envs import ENVS, make_env
from drml_ray.rl.weights import map_weights
from drml_ray.runs import atomic_write_json, atomic_write_text, prepare_run_dir

TRANSFER_FILE = "transfer.json"


def check_spaces(cfg: RLExperiment) -> None:
    """Transfer needs equal observation and action spaces, or ``transfer.mapping`` saying how they map."""
    tr = cfg.transfer
    assert tr is not None
    source_family, target_family = tr.source_family or cfg.env.family, tr.target_family or cfg.env.family
    source, target = make_env(source_family), make_env(target_family)
    for name, task, family in (("source", tr.source, source_family), ("target", tr.target, target_family)):
        unknown = set(task) - set(ENVS[family].RANGES)
        if unknown:
            raise ValueError(f"transfer.{name}: unknown {family} task parameters {sorted(unknown)} "
                             f"(known: {', '.join(ENVS[family].RANGES)})")  # fmt: skip
    same = (source.observation_space.shape == target.observation_space.shape
            and source.action_space == target.action_space)  # fmt: skip
    if not same and tr.mapping is None:
        raise ValueError(
            f"transfer: the source ({source_family}: observations {source.observation_space.shape}, actions "
            f"{source.action_space}) and the target ({target_family}: observations "
            f"{target.observation_space.shape}, actions {target.action_space}) differ, so the source policy "
            "cannot run on the target; add transfer.mapping with observation: [source index per target "
            "dimension] and action: [source output per target policy output]"
        )
    if type(source.action_space) is not type(target.action_space):
        raise ValueError(f"transfer: a {type(source.action_space).__name__} action space cannot map onto a "
                         f"{type(target.action_space).__name__} one (their heads mean different things)")  # fmt: skip


def _transfer_seed(worker: RLWorker, cfg: RLExperiment, seed: int) -> dict[str, Any]:
    """Source training, then the target curves from its weights and from scratch; also the source policy's
    return on its own task (so a weak transfer can be told from a weak source)."""
    tr = cfg.transfer
    assert tr is not None
    source_family, target_family = tr.source_family or cfg.env.family, tr.target_family or cfg.env.family
    trained = worker.train_on(worker.fresh(seed, family=source_family), tr.source, tr.source_iters, seed,
                              family=source_family)  # fmt: skip
    fresh = worker.fresh(seed, family=target_family)
    mapping = tr.mapping
    start = map_weights(trained, fresh, mapping.observation if mapping else None, mapping.action if mapping else None)
    transfer = worker.curve(start, tr.target, tr.target_iters, tr.episodes, seed, family=target_family)
    scratch = worker.curve(fresh, tr.target, tr.target_iters, tr.episodes, seed, family=target_family)
    source_return = worker.curve(trained, tr.source, 0, tr.episodes, seed, family=source_family)[0]
    return {"transfer": transfer, "scratch": scratch, "source_return": source_return}


def run_rl_transfer(cfg: RLExperiment, run_dir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Source -> target transfer against target-from-scratch over ``transfer.seeds``; writes ``transfer.json``."""
    from drml_ray.rl.results import transfer_summary, write_transfer_outputs

    if cfg.transfer is None:
        raise ValueError(f"{cfg.name}: no transfer: section (source, target, ...) in the config")
    check_spaces(cfg)
    tr = cfg.transfer
    run_dir = prepare_run_dir(run_dir, overwrite=overwrite, marker=TRANSFER_FILE)
    atomic_write_text(run_dir / "config.yaml", dump_config(cfg))
    print(f"[drml] rl transfer '{cfg.name}' -> {run_dir}: {tr.source_family or cfg.env.family} {tr.source} "
          f"({tr.source_iters} PPO iterations) -> {tr.target_family or cfg.env.family} {tr.target} "
          f"({tr.target_iters}), seeds {tr.seeds}", flush=True)  # fmt: skip
    ensure_ray()
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # RAY

    remote = ray.remote(_transfer_remote).options(  # RAY
        num_cpus=cfg.meta.cpus_per_worker, scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None)
    )
    began = time.perf_counter()
    cfg_json = cfg.model_dump(mode="json")
    refs = {remote.remote(cfg_json, seed): seed for seed in tr.seeds}  # RAY
    curves: dict[int, dict[str, Any]] = {}
    while refs:
        [ready], _ = ray.wait(list(refs), num_returns=1)  # RAY
        seed = refs.pop(ready)
        curves[seed] = ray.get(ready)  # RAY
        print(f"[drml] seed {seed}: transfer {curves[seed]['transfer'][0]:.1f} -> {curves[seed]['transfer'][-1]:.1f}, "
              f"scratch {curves[seed]['scratch'][0]:.1f} -> {curves[seed]['scratch'][-1]:.1f} "
              f"({time.perf_counter() - began:.0f} s)", flush=True)  # fmt: skip
    result = transfer_summary({s: curves[s] for s in tr.seeds}, tr.threshold, tr.tail)
    result["wall_s"] = time.perf_counter() - began
    outputs = write_transfer_outputs(result, run_dir)
    atomic_write_json(run_dir / TRANSFER_FILE, result)  # written last: marks the run finished
    print(outputs["table"], flush=True)
    return result


def _transfer_remote(cfg_json: dict, seed: int) -> dict[str, Any]:
    cfg = RLExperiment.model_validate(cfg_json)
    worker = RLWorker(cfg.env.model_dump(mode="json"), cfg.ppo.model_dump(mode="json"), cfg.seed,
                      cfg.meta.cpus_per_worker)  # fmt: skip
    try:
        return _transfer_seed(worker, cfg, seed)
    finally:
        for learner in worker.learners.values():
            learner.stop()
