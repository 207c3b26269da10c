"""RLlib's BC as ``drml rl irl`` runs it: the cost of an update, and whether a cell gives the same policy twice.

    python benchmarks/irl_bc.py --experts runs/irl [--config configs/rl/irl.yaml] [--family pendulum]
        [--demos 16] [--seed 1] [--repeats 2]

``--experts`` is a finished ``drml rl expert`` run of ``--config``. The product's own cell
(:meth:`drml_ray.irl.worker.IRLWorker.bc`, one process, as on the driver) runs ``--repeats`` times at the config's
``irl.bc_iters`` and as often at 50 minibatches; an update's cost is the difference over the extra minibatches (a
cell's fixed cost, building RLlib's BC and scoring its policy, cancels out). Prints a JSON line per run and a last
``RESULT`` line with the milliseconds an update and whether every full run gave the same return and losses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ray  # noqa: E402

from drml_ray.config import load_config  # noqa: E402
from drml_ray.irl.config import IRLExperiment  # noqa: E402
from drml_ray.irl.driver import expert_dir  # noqa: E402
from drml_ray.irl.worker import IRLWorker  # noqa: E402

FEW = 50


def run_cell(args: argparse.Namespace, minibatches: int) -> dict:
    cfg = load_config(args.config, [f"irl.bc_iters={minibatches}"], model=IRLExperiment)
    began = time.perf_counter()
    result = IRLWorker().bc(cfg.model_dump(mode="json"), args.family, args.demos, args.seed,
                            str(expert_dir(Path(args.experts).resolve(), args.family)))  # fmt: skip
    return {"minibatches": minibatches, "wall_s": time.perf_counter() - began, "return": result["return"],
            "losses": result["loss"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", required=True, help="a finished `drml rl expert` run of --config")
    parser.add_argument("--config", default="configs/rl/irl.yaml")
    parser.add_argument("--family", default="pendulum")
    parser.add_argument("--demos", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    full = load_config(args.config, model=IRLExperiment).irl.bc_iters
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    runs = [run_cell(args, n) for _ in range(args.repeats) for n in (full, FEW)]
    for run in runs:
        print(json.dumps({k: v for k, v in run.items() if k != "losses"}), flush=True)
    fastest = {n: min(r["wall_s"] for r in runs if r["minibatches"] == n) for n in (full, FEW)}
    per_update_ms = (fastest[full] - fastest[FEW]) / (full - FEW) * 1000
    outcomes = [(r["return"], r["losses"]) for r in runs if r["minibatches"] == full]
    same = all(outcome == outcomes[0] for outcome in outcomes)
    print(f"RESULT bc_update_ms={per_update_ms:.1f} cell_s={fastest[full]:.1f} same_every_run={same}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
