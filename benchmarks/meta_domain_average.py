"""The issue #5 target table: each method's test F1 per held-out domain and shot count, averaged over domains.

    python benchmarks/meta_domain_average.py runs/meta_politics runs/meta_science ... [--against conll_then_finetune]

Each argument is a ``drml meta-eval`` run directory (or its ``meta_eval.json``); one held-out domain
each in the leave-one-domain-out setups. Per domain a cell is the mean over the seeds it has. It
prints, per shot count, every method's F1 per domain, then each other method's gap to ``--against``
per domain and averaged over the domains that have both cells (with how many domains that is): the
target asks for the meta-learned init to beat CoNLL-then-fine-tune on the 5-domain average by >= 5 F1
at 10-25 shots and >= 2 F1 at 100.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from drml_ray.meta.results import SHOTS_ORDER


def load_cells(paths: list[Path]) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, set[int]]]:
    """``{domain: {shots: {method: mean test F1 in points}}}`` merged over run directories, and the
    numbers of seeds behind each domain's cells."""
    cells: dict[str, dict[str, dict[str, float]]] = {}
    seeds: dict[str, set[int]] = {}
    for path in paths:
        table = json.loads((path / "meta_eval.json" if path.is_dir() else path).read_text(encoding="utf-8"))
        for domain, by_shots in table.items():
            for shots, by_method in by_shots.items():
                for method, cell in by_method.items():
                    cells.setdefault(domain, {}).setdefault(shots, {})[method] = 100 * cell["mean_f1"]
                    seeds.setdefault(domain, set()).add(len(cell["f1_per_seed"]))
    return cells, seeds


def gaps(cells: dict[str, dict[str, dict[str, float]]], method: str, against: str, shots: str) -> dict[str, float]:
    """``method`` minus ``against`` per domain, where both cells are filled."""
    return {
        domain: by_shots[shots][method] - by_shots[shots][against]
        for domain, by_shots in cells.items()
        if method in by_shots.get(shots, {}) and against in by_shots.get(shots, {})
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--against", default="conll_then_finetune")
    args = parser.parse_args()
    cells, seeds = load_cells(args.runs)
    domains = sorted(cells)
    methods = sorted({m for by_shots in cells.values() for by_method in by_shots.values() for m in by_method})
    short = [d.removeprefix("crossner_") for d in domains]
    print(f"| shots | method | {' | '.join(short)} | mean (domains) |")
    print("|---|---|" + "---|" * (len(domains) + 1))
    counts = ["–".join(str(n) for n in sorted({min(seeds[d]), max(seeds[d])})) for d in domains]
    print(f"| | seeds per cell | {' | '.join(counts)} | |")
    for shots in [s for s in SHOTS_ORDER if any(s in cells[d] for d in domains)]:
        for method in methods:
            row = [cells[d].get(shots, {}).get(method) for d in domains]
            filled = [v for v in row if v is not None]
            if not filled:
                continue
            text = " | ".join("—" if v is None else f"{v:.2f}" for v in row)
            print(f"| {shots} | {method} | {text} | {statistics.fmean(filled):.2f} ({len(filled)}) |")
        for method in [m for m in methods if m != args.against]:
            by_domain = gaps(cells, method, args.against, shots)
            if by_domain:
                text = " | ".join(f"{by_domain[d]:+.2f}" if d in by_domain else "—" for d in domains)
                mean = statistics.fmean(by_domain.values())
                print(f"| {shots} | {method} − {args.against} | {text} | **{mean:+.2f}** ({len(by_domain)}) |")


if __name__ == "__main__":
    main()
