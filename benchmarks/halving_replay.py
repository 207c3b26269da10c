"""Replay a finished grid search through ASHA and synchronous successive halving, without training.

    python benchmarks/halving_replay.py RUN_DIR [--grace 2] [--rf 4] [--concurrent 2] [--orders 3000]

RUN_DIR is a ``drml tune`` run whose trials all ran to the end (``scheduler: fifo``), e.g.
``configs/tune/crossner_politics_grid12.yaml``. Trials are seeded, so a trial stopped early by a
scheduler follows exactly the curve the grid recorded for it until it is stopped; this script feeds
those curves, with the grid's own per-epoch wall times, ``--concurrent`` trials at a time, to

- Ray's own ASHA rung logic (``ray.tune.schedulers.async_hyperband._Bracket``), in Tune's grid order
  and in ``--orders`` random orders (ASHA's budget depends on which trials reach a rung first);
- drml's synchronous successive halving (:class:`drml_ray.tune.halving.SuccessiveHalving`), whose
  budget does not depend on the order.

It prints, per scheduler: trial-epochs spent (and the share of the grid's), the best dev metric
found, and for the random orders the median budget and how often ASHA met the issue #4 target
(within 0.5 F1 of the grid's best with at most 40% of its trial-epochs).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
from pathlib import Path
from types import SimpleNamespace

from ray.tune.schedulers.async_hyperband import _Bracket

from drml_ray.tune.halving import SuccessiveHalving, halving_rungs

Curve = tuple[list[float], list[float]]  # (dev metric per epoch, seconds per epoch)


def read_grid(run_dir: Path, metric: str) -> list[Curve]:
    curves = []
    for trial in sorted((run_dir / "tune").glob("trial_*")):
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]
        curves.append(([100 * r[metric] for r in rows], [r["time_this_iter_s"] for r in rows]))
    if not curves:
        raise SystemExit(f"{run_dir}/tune holds no trial_* folders with a result.json")
    return curves


def replay_asha(curves: list[Curve], order: list[int], grace: int, rf: int, concurrent: int) -> tuple[int, float]:
    """Trial-epochs spent and best metric found by ASHA, trials started in ``order``."""
    max_t = max(len(c) for c, _ in curves)
    bracket = _Bracket(grace, max_t, rf, 0)
    queue, events, spent, best = list(order), [], 0, float("-inf")

    def start(now: float) -> None:
        i = queue.pop(0)
        heapq.heappush(events, (now + curves[i][1][0], i, 1))

    for _ in range(min(concurrent, len(queue))):
        start(0.0)
    while events:
        now, i, epoch = heapq.heappop(events)
        score = curves[i][0][epoch - 1]
        spent, best = spent + 1, max(best, score)
        if bracket.on_result(SimpleNamespace(trial_id=str(i)), epoch, score) == "STOP" or epoch == len(curves[i][0]):
            if queue:
                start(now)
        else:
            heapq.heappush(events, (now + curves[i][1][epoch], i, epoch + 1))
    return spent, best


def replay_sha(curves: list[Curve], grace: int, rf: int) -> tuple[int, float]:
    """Trial-epochs spent and best metric found by synchronous halving (order does not matter)."""
    max_t = max(len(c) for c, _ in curves)
    halving = SuccessiveHalving(len(curves), halving_rungs(grace, rf, max_t), rf)
    alive, reached, spent, best = set(range(len(curves))), dict.fromkeys(range(len(curves)), 0), 0, float("-inf")
    for stop_at in [*halving.rungs, max_t]:
        for i in sorted(alive):
            for epoch in range(reached[i] + 1, int(stop_at) + 1):
                score = curves[i][0][epoch - 1]
                spent, best, reached[i] = spent + 1, max(best, score), epoch
                decision = halving.on_result(str(i), epoch, score)
            if decision == "stop":
                alive.discard(i)
        alive = {i for i in alive if stop_at == max_t or halving.promoted_waiting(str(i))}
    return spent, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--metric", default="dev_f1")
    parser.add_argument("--grace", type=int, default=2)
    parser.add_argument("--rf", type=int, default=4)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--orders", type=int, default=3000)
    args = parser.parse_args()

    curves = read_grid(args.run_dir, args.metric)
    total = sum(len(c) for c, _ in curves)
    grid_best = max(max(c) for c, _ in curves)
    print(f"grid: {len(curves)} trials, {total} trial-epochs, best {grid_best:.2f}")

    def target(spent: int, best: float) -> bool:
        return best >= grid_best - 0.5 and spent <= 0.4 * total

    spent, best = replay_asha(curves, list(range(len(curves))), args.grace, args.rf, args.concurrent)
    print(f"ASHA, grid order: {spent} trial-epochs ({spent / total:.0%}), best {best:.2f}, "
          f"target met: {target(spent, best)}")  # fmt: skip
    rng = random.Random(0)
    runs = [replay_asha(curves, rng.sample(range(len(curves)), len(curves)), args.grace, args.rf, args.concurrent)
            for _ in range(args.orders)]  # fmt: skip
    median = statistics.median(s for s, _ in runs)
    met = sum(target(s, b) for s, b in runs) / len(runs)
    found = sum(b >= grid_best - 0.5 for _, b in runs) / len(runs)
    print(f"ASHA, {args.orders} random orders: median {median:.0f} trial-epochs ({median / total:.0%}), "
          f"best within 0.5 in {found:.0%} of orders, target met in {met:.0%}")  # fmt: skip
    spent, best = replay_sha(curves, args.grace, args.rf)
    print(f"synchronous halving: {spent} trial-epochs ({spent / total:.0%}), best {best:.2f}, "
          f"target met: {target(spent, best)}")  # fmt: skip


if __name__ == "__main__":
    main()
