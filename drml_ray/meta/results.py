"""``meta_eval.json``: recording its cells (and the cells that are twins of each other), and turning it
into a Markdown table (mean ± std test F1 per domain x shots x method) and a PNG of F1 against shots,
one panel per domain."""

from __future__ import annotations

import fcntl
import statistics
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from drml_ray.report.build import Section, save_figure, subplots
from drml_ray.runtime.runfiles import MEASURE_AGAIN, atomic_write_json, atomic_write_text, check_json, read_json
from drml_ray.text import tails

SHOTS_ORDER = ("10", "25", "50", "100", "all")

Cell = tuple[str, str, int, str]
"""One cell of the protocol: (held-out domain, shots as written in ``meta_eval.json``, seed, method)."""


class SeedRun(TypedDict):
    f1: float


class CellSummary(TypedDict):
    mean_f1: float
    std_f1: float
    f1_per_seed: list[float]
    runs: dict[str, SeedRun]


MetaEvalTable = dict[str, dict[str, dict[str, CellSummary]]]
"""``meta_eval.json``: domain, shots, method, then the cell's summary over its seeds' runs."""


def read_meta_eval(path: Path) -> dict[str, Any]:
    """``meta_eval.json``, checked (:data:`MetaEvalTable`); ``{}`` before its first cell."""
    return read_json(path, schema=MetaEvalTable, fix=MEASURE_AGAIN, default={})


class Evaluation(TypedDict):
    step: int
    mean: float


class MetaTrainRun(TypedDict):
    """What the report reads of one algorithm in ``meta_train.json``."""

    steps: list[Any]
    evals: list[Evaluation]
    s_per_meta_step: float
    folder: str


def _summary(runs: dict[str, Any]) -> dict[str, Any]:
    f1 = [runs[s]["f1"] for s in sorted(runs, key=int)]
    return {
        "mean_f1": statistics.fmean(f1),
        "std_f1": statistics.stdev(f1) if len(f1) > 1 else 0.0,
        "f1_per_seed": f1,
        "seeds": sorted(int(s) for s in runs),
        "runs": runs,
    }


def record_cell(path: Path, cell: Cell, result: dict[str, Any]) -> dict[str, Any]:
    """Add one finished cell to ``meta_eval.json``: read, merge, write atomically, under a file lock,
    so several ``drml meta-eval`` processes filling the same table never drop each other's cells."""
    domain, shots, seed, method = cell
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = read_meta_eval(path)
        runs = table.setdefault(domain, {}).setdefault(shots, {}).setdefault(method, {}).get("runs", {})
        runs[str(seed)] = result
        table[domain][shots][method] = _summary(runs)
        atomic_write_json(path, table)
    return table


def twin_cell(cell: Cell, train_sizes: dict[str, int]) -> Cell:
    """The cell that computes exactly what ``cell`` computes: K shots with K at least the size of the
    domain's train split adapt on every train sentence, as ``all`` does (same sentences in the same
    order, same seed, same step budget), so such cells are computed once and recorded under both keys.
    CrossNER music, literature and ai have 100 train sentences: their 100-shot cells are the all-shot ones.

    >>> sizes = {"music": 100}
    >>> twin_cell(("music", "100", 1, "direct"), sizes), twin_cell(("music", "50", 1, "direct"), sizes)
    (('music', 'all', 1, 'direct'), ('music', '50', 1, 'direct'))
    """
    domain, shots, seed, method = cell
    if shots != "all" and int(shots) >= train_sizes.get(domain, int(shots) + 1):
        return domain, "all", seed, method
    return cell


def finished_twin(table: dict[str, Any], cell: Cell, train_sizes: dict[str, int]) -> tuple[str, dict] | None:
    """``(shots, result)`` of a finished cell of ``table`` that computed exactly what ``cell`` computes."""
    domain, _, seed, method = cell
    for shots, methods in table.get(domain, {}).items():
        run = methods.get(method, {}).get("runs", {}).get(str(seed))
        if run is not None and twin_cell((domain, shots, seed, method), train_sizes) == twin_cell(cell, train_sizes):
            return shots, run
    return None


def _shots_key(shots: str) -> tuple[int, float]:
    return (1, 0.0) if shots == "all" else (0, float(shots))


def cell_text(cell: dict[str, Any] | None) -> str:
    """``mean ± std (seeds)`` in F1 points; ``—`` for a cell not run."""
    return f"{100 * cell['mean_f1']:.2f} ± {100 * cell['std_f1']:.2f} ({len(cell['f1_per_seed'])})" if cell else "—"


def format_meta_eval(table: dict[str, Any], order: list[str]) -> str:
    """Markdown: one row per (domain, shots), one column per method, cells ``mean ± std (n)`` in F1 points."""
    methods = [m for m in order if any(m in row for d in table.values() for row in d.values())]
    lines = ["| domain | shots | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    names = tails(list(table))  # (a task folder by its name, not its whole path)
    for domain, rows in table.items():
        for shots in sorted(rows, key=_shots_key):
            cells = [cell_text(rows[shots].get(m)) for m in methods]
            lines.append(f"| {names[domain]} | {shots} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nTest entity F1 (points), mean ± std over seeds (number of seeds); — not run.\n"


def plot_meta_eval(table: dict[str, Any], order: list[str], path: Path) -> None:
    domains = list(table)
    names = tails(domains)
    fig, axes = subplots(1, max(1, len(domains)), figsize=(4.5 * max(1, len(domains)), 3.6), squeeze=False)
    for ax, domain in zip(axes[0], domains, strict=False):
        shots = sorted(table[domain], key=_shots_key)
        for method in order:
            xs = [i for i, k in enumerate(shots) if method in table[domain][k]]
            if not xs:
                continue
            cells = [table[domain][shots[i]][method] for i in xs]
            ax.errorbar(xs, [100 * c["mean_f1"] for c in cells], yerr=[100 * c["std_f1"] for c in cells],
                        marker="o", capsize=3, label=method)  # fmt: skip
        ax.set_xticks(range(len(shots)), shots)
        ax.set_xlabel("labelled target sentences (shots)")
        ax.set_ylabel("test entity F1")
        ax.set_title(names[domain])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def write_meta_eval_outputs(table: dict[str, Any], run_dir: Path, order: list[str]) -> dict[str, Any]:
    """``meta_eval.md`` and ``meta_eval.png`` next to ``meta_eval.json``."""
    text = format_meta_eval(table, order)
    atomic_write_text(run_dir / "meta_eval.md", text)
    plot_meta_eval(table, order, run_dir / "meta_eval.png")
    return {"table": text, "md": run_dir / "meta_eval.md", "png": run_dir / "meta_eval.png"}


def report_sections(run_dir: Path) -> list[Section]:
    """``drml report`` of a meta-learning run: meta-training's held-out curves, the adaptation table."""
    from drml_ray.meta.config import METHODS

    sections = []
    train_path, eval_path = run_dir / "meta_train.json", run_dir / "meta_eval.json"
    if train_path.exists():
        record = read_json(train_path)
        runs = {a: check_json(r, MetaTrainRun, train_path, where=a) for a, r in record.items()
                if isinstance(r, dict) and r.get("evals")}  # fmt: skip
        rows = [{"algorithm": a, "meta-steps": len(r["steps"]), "s / meta-step": f"{r['s_per_meta_step']:.1f}",
                 "held-out dev F1 at step 0": f"{r['evals'][0]['mean']:.4f}",
                 "held-out dev F1 at the end": f"{r['evals'][-1]['mean']:.4f}", "model": r["folder"]}
                for a, r in runs.items()]  # fmt: skip
        fig, ax = subplots(figsize=(7, 4), dpi=110)
        for algorithm, rec in runs.items():
            ax.plot([e["step"] for e in rec["evals"]], [e["mean"] for e in rec["evals"]], marker="o", label=algorithm)
        ax.set(xlabel="meta-step", ylabel="held-out dev entity F1 after adaptation")
        ax.grid(alpha=0.3)
        ax.legend()
        figure = save_figure(fig, run_dir / "report_meta_train.png")
        title = "Meta-training (held-out dev F1 after a few-shot adaptation)"
        sections.append(Section(title, table=rows, figure=figure))
    if eval_path.exists():
        table = read_meta_eval(eval_path)
        names = tails(list(table))
        rows = [{"domain": names[domain], "shots": shots, **{m: cell_text(cells.get(m)) for m in METHODS}}
                for domain, by_shots in table.items() for shots, cells in by_shots.items()]  # fmt: skip
        png = run_dir / "meta_eval.png"
        sections.append(Section("Adaptation: test entity F1 (points), mean ± std (seeds)", table=rows,
                                figure=png if png.exists() else None))  # fmt: skip
    return sections
