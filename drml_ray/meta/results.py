"""``meta_eval.json`` -> a Markdown table (mean ± std test F1 per domain x shots x method) and a PNG of
F1 against shots, one panel per domain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drml_ray.report.build import save_figure
from drml_ray.runs import atomic_write_text

SHOTS_ORDER = ("10", "25", "50", "100", "all")


def _shots_key(shots: str) -> tuple[int, float]:
    return (1, 0.0) if shots == "all" else (0, float(shots))


def format_meta_eval(table: dict[str, Any], order: list[str]) -> str:
    """Markdown: one row per (domain, shots), one column per method, cells ``mean ± std (n)`` in F1 points."""
    methods = [m for m in order if any(m in row for d in table.values() for row in d.values())]
    lines = ["| domain | shots | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for domain, rows in table.items():
        for shots in sorted(rows, key=_shots_key):
            cells = []
            for m in methods:
                c = rows[shots].get(m)
                cells.append(f"{100 * c['mean_f1']:.2f} ± {100 * c['std_f1']:.2f} ({len(c['f1_per_seed'])})"
                             if c else "—")  # fmt: skip
            lines.append(f"| {domain} | {shots} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nTest entity F1 (points), mean ± std over seeds (number of seeds); — not run.\n"


def plot_meta_eval(table: dict[str, Any], order: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = list(table)
    fig, axes = plt.subplots(1, max(1, len(domains)), figsize=(4.5 * max(1, len(domains)), 3.6), squeeze=False)
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
        ax.set_title(domain)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def write_meta_eval_outputs(table: dict[str, Any], run_dir: Path, order: list[str]) -> dict[str, Any]:
    """``meta_eval.md`` and ``meta_eval.png`` next to ``meta_eval.json``."""
    text = format_meta_eval(table, order)
    atomic_write_text(run_dir / "meta_eval.md", text)
    plot_meta_eval(table, order, run_dir / "meta_eval.png")
    return {"table": text, "md": run_dir / "meta_eval.md", "png": run_dir / "meta_eval.png"}
