"""Wall time of one Reptile-over-PPO meta-step with 1 and 2 parallel task workers (Ray actors).

    python benchmarks/rl_meta_step_time.py [--config configs/rl/nav2d.yaml] [--workers 1 2] [--steps 5]

For each worker count: the product's actor pool (:func:`drml_ray.rl.driver.actor_pool`; each actor builds
its RLlib PPO Algorithm once, a build time reported apart), one warm-up meta-step, then ``--steps``
meta-steps timed, each the product's :func:`~drml_ray.rl.driver.reptile_step` (the config's meta-batch,
inner iterations, seed and outer step-size decay). Prints a JSON line per count and a last ``RESULT`` line
with the speed-up of the largest count over 1 worker.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ray  # noqa: E402

from drml_ray.config import load_config  # noqa: E402
from drml_ray.rl.driver import actor_pool, reptile_step  # noqa: E402
from drml_ray.runtime.executor import Job  # noqa: E402


def time_steps(cfg, pool, steps: int) -> tuple[float, list[float]]:  # noqa: ANN001
    began = time.perf_counter()
    theta = pool.call("fresh", cfg.seed)
    pool.map([Job("build", "fresh", (cfg.seed,)) for _ in range(pool.size)])  # every actor has built its Algorithm
    build_s = time.perf_counter() - began
    times = []
    for step in range(steps + 1):  # step 0 warms up
        began = time.perf_counter()
        theta = reptile_step(cfg, theta, step, pool)
        if step:
            times.append(time.perf_counter() - began)
    return build_s, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/rl/nav2d.yaml")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    ray.init(num_cpus=max(args.workers) * cfg.meta.cpus_per_worker, include_dashboard=False, logging_level="ERROR")
    results = {}
    for count in args.workers:
        with actor_pool(cfg, count) as pool:
            build_s, times = time_steps(cfg, pool, args.steps)
        results[count] = statistics.fmean(times)
        row = {"workers": count, "meta_batch": cfg.meta.meta_batch, "inner_iters": cfg.meta.inner_iters,
               "train_batch": cfg.ppo.train_batch, "build_s": round(build_s, 2),
               "s_per_meta_step": round(results[count], 3), "steps": [round(t, 3) for t in times]}  # fmt: skip
        print(json.dumps(row))
    most, one = max(args.workers), results.get(1, float("nan"))
    speedup = one / results[most]
    print(f"RESULT s_per_meta_step_1w={one:.3f} s_per_meta_step_{most}w={results[most]:.3f} speedup={speedup:.2f}")


if __name__ == "__main__":
    main()
