"""``adaptation.json`` and ``transfer.json`` -> Markdown tables and PNG curves."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from drml_ray.report.build import Section, markdown_section, md_table, save_figure, subplots
from drml_ray.rl.transfer_metrics import transfer_metrics
from drml_ray.runtime.runfiles import atomic_write_text, check_json, read_json

ORDER = ("meta", "multitask", "rl2", "scratch", "oracle")


def summarise(curves: dict[str, dict[int, list[list[float]]]], adapt_iters: int) -> dict[str, Any]:
    """``{method: {seed: [curve per task]}}`` -> RLlib-style metrics per method, means over tasks then seeds."""
    names = ["episode_return_mean"] + [f"episode_return_mean_adapt_{i}" for i in range(1, adapt_iters + 1)]
    out: dict[str, Any] = {}
    for method, by_seed in curves.items():
        seeds = []
        for seed, per_task in sorted(by_seed.items()):
            means = [statistics.fmean(c[i] for c in per_task) for i in range(adapt_iters + 1)]
            row = dict(zip(names, means, strict=True))
            seeds.append({"seed": seed, "tasks": len(per_task)} | row | {"adaptation_delta": means[-1] - means[0]})
        summary = {name: statistics.fmean(s[name] for s in seeds) for name in names + ["adaptation_delta"]}
        summary["std"] = {n: statistics.pstdev([s[n] for s in seeds]) for n in names}
        out[method] = summary | {"seeds": seeds}
    if "scratch" in out and "oracle" in out:
        oracle = out["oracle"]["episode_return_mean"]
        for method in ("meta", "multitask", "rl2"):
            if method in out:
                out[method]["gap_closed"] = {
                    name: (out[method][name] - out["scratch"][name]) / (oracle - out["scratch"][name])
                    if oracle != out["scratch"][name] else None
                    for name in names
                }  # fmt: skip
    return out


def _names(adapt_iters: int) -> list[str]:
    return ["episode_return_mean"] + [f"episode_return_mean_adapt_{i}" for i in range(1, adapt_iters + 1)]


def adaptation_rows(table: dict[str, Any], adapt_iters: int, labels: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per method: the return before and after each adaptation iteration (mean ± std over seeds);
    ``labels``: the columns' names after "after" (default 1, 2, ...)."""
    names, rows = _names(adapt_iters), []
    labels = labels or [str(i) for i in range(1, adapt_iters + 1)]
    for method in [m for m in ORDER if m in table]:
        row = table[method]
        gap = row.get("gap_closed", {}).get(names[-1])
        rows.append({"method": method, "before": f"{row[names[0]]:.1f} ± {row['std'][names[0]]:.1f}",
                     **{f"after {label}": f"{row[n]:.1f} ± {row['std'][n]:.1f}"
                        for label, n in zip(labels, names[1:], strict=True)},
                     "adaptation_delta": f"{row['adaptation_delta']:+.1f}",
                     "gap closed (last)": "—" if gap is None else f"{100 * gap:.0f}%",
                     "seeds": len(row["seeds"])})  # fmt: skip
    return rows


def format_adaptation(table: dict[str, Any], adapt_iters: int, labels: list[str] | None = None,
                      unit: str = "PPO iterations", what: str = "Mean episode return") -> str:  # fmt: skip
    return (md_table(adaptation_rows(table, adapt_iters, labels)) + f"\n\n{what} on held-out tasks before and after "
            f"N {unit} of adaptation, mean ± std over seeds (each seed: the mean over tasks). Gap closed: "
            "(method - scratch) / (oracle - scratch) after the last column.\n")  # fmt: skip


def plot_adaptation(table: dict[str, Any], adapt_iters: int, path: Path, unit: str = "PPO iterations",
                    labels: list[str] | None = None) -> Path:  # fmt: skip
    names = _names(adapt_iters)
    fig, ax = subplots(figsize=(5.5, 3.8))
    xs = list(range(adapt_iters + 1))
    for method in [m for m in ORDER if m in table]:
        row = table[method]
        ax.errorbar(xs, [row[n] for n in names], yerr=[row["std"][n] for n in names], marker="o", capsize=3,
                    label=method, linestyle="--" if method == "oracle" else "-")  # fmt: skip
    ax.set_xticks(xs, ["0", *(labels or map(str, xs[1:]))])
    ax.set_xlabel(f"{unit} of adaptation")
    ax.set_ylabel("episode return (held-out tasks)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)


def write_adaptation_outputs(table: dict[str, Any], run_dir: Path, adapt_iters: int) -> dict[str, Any]:
    text = format_adaptation(table, adapt_iters)
    atomic_write_text(run_dir / "adaptation.md", text)
    plot_adaptation(table, adapt_iters, run_dir / "adaptation.png")
    return {"table": text, "md": run_dir / "adaptation.md", "png": run_dir / "adaptation.png"}


def transfer_summary(curves: dict[int, dict[str, Any]], threshold: float | None, tail: int) -> dict[str, Any]:
    """Taylor & Stone's metrics per seed and their means. ``curves``: per seed, the ``transfer`` and
    ``scratch`` curves (and optionally the ``source_return``). ``threshold`` ``None``: 90% of the way from
    the lowest to the highest point of the seed-mean curves."""
    length = len(next(iter(curves.values()))["transfer"])
    mean = {
        k: [statistics.fmean(c[k][i] for c in curves.values()) for i in range(length)] for k in ("transfer", "scratch")
    }
    if threshold is None:
        lo, hi = min(min(v) for v in mean.values()), max(max(v) for v in mean.values())
        threshold = lo + 0.9 * (hi - lo)
    seeds = [{"seed": s, **transfer_metrics(c["transfer"], c["scratch"], threshold=threshold, tail=tail),
              "source_return": c.get("source_return"),
              "curves": {"transfer": c["transfer"], "scratch": c["scratch"]}} for s, c in curves.items()]  # fmt: skip

    def avg(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return statistics.fmean(kept) if kept else None

    ttt = [s["time_to_threshold"] for s in seeds]
    return {
        "jumpstart": avg([s["jumpstart"] for s in seeds]),
        "time_to_threshold": {
            "threshold": threshold,
            "transfer": avg([t["transfer"] for t in ttt]), "scratch": avg([t["scratch"] for t in ttt]),
            "saved": avg([t["saved"] for t in ttt]),
            "reached": {"transfer": sum(t["transfer"] is not None for t in ttt),
                        "scratch": sum(t["scratch"] is not None for t in ttt)},
        },
        "asymptotic": {k: avg([s["asymptotic"][k] for s in seeds]) for k in ("transfer", "scratch", "gain")},
        "total_reward_ratio": avg([s["total_reward_ratio"] for s in seeds]),
        "source_return": avg([s["source_return"] for s in seeds]),
        "mean_curves": mean,
        "seeds": seeds,
    }  # fmt: skip


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def format_transfer(result: dict[str, Any]) -> str:
    ttt = result["time_to_threshold"]
    n = len(result["seeds"])
    reached = ttt["reached"]
    asymptotic = " / ".join(_fmt(result["asymptotic"][k]) for k in ("transfer", "scratch", "gain"))
    rows = [
        ("jumpstart (return at iteration 0, transfer - scratch)", _fmt(result["jumpstart"])),
        (f"time to threshold {ttt['threshold']:.1f}: transfer / scratch (iterations; reached in n of {n} seeds)",
         f"{_fmt(ttt['transfer'])} ({reached['transfer']}) / {_fmt(ttt['scratch'])} ({reached['scratch']})"),
        ("asymptotic: transfer / scratch / gain", asymptotic),
        ("total-reward ratio (area transfer - area scratch) / area scratch", _fmt(result["total_reward_ratio"], ".3f")),
        ("the source policy's return on the source task", _fmt(result.get("source_return"))),
    ]  # fmt: skip
    return (
        "| metric | value |\n|---|---|\n"
        + "\n".join(f"| {a} | {b} |" for a, b in rows)
        + f"\n\nMeans over {n} seeds.\n"
    )


def plot_transfer(result: dict[str, Any], path: Path) -> Path:
    fig, ax = subplots(figsize=(5.5, 3.8))
    for key, color in (("transfer", "tab:blue"), ("scratch", "tab:orange")):
        for seed in result["seeds"]:
            ax.plot(seed["curves"][key], color=color, alpha=0.25, linewidth=0.8)
        ax.plot(result["mean_curves"][key], color=color, linewidth=2, label=f"{key} (mean)")
    ax.axhline(result["time_to_threshold"]["threshold"], color="grey", linestyle=":", label="threshold")
    ax.set_xlabel("PPO iterations on the target")
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)


def write_transfer_outputs(result: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    text = format_transfer(result)
    atomic_write_text(run_dir / "transfer.md", text)
    plot_transfer(result, run_dir / "transfer.png")
    return {"table": text, "md": run_dir / "transfer.md", "png": run_dir / "transfer.png"}


class Check(TypedDict):
    step: int
    return_before: float
    return_after: float


class ReptileRecord(TypedDict):
    """What the report reads of ``meta_train.json``'s ``meta``."""

    checks: list[Check]
    step_s: list[float]
    seconds_per_meta_step: float | None


class BaselineRecord(TypedDict):
    iterations: int
    wall_s: float


def report_sections(run_dir: Path) -> list[Section]:
    """``drml report`` of an RL run: Reptile's validation checks, the adaptation table, the transfer metrics."""
    sections = []
    paths = {name: run_dir / f"{name}.json" for name in ("meta_train", "adaptation", "transfer")}
    if paths["meta_train"].exists():
        record = {m: check_json(r, ReptileRecord if m == "meta" else BaselineRecord, paths["meta_train"], where=m)
                  for m, r in read_json(paths["meta_train"]).items() if isinstance(r, dict)}  # fmt: skip
        rows = [{"method": m, **({"s / meta-step": _seconds(r["seconds_per_meta_step"]),
                                  "meta-steps": len(r["step_s"])} if m == "meta" else
                                 {"PPO iterations": r["iterations"], "wall s": f"{r['wall_s']:.0f}"})}
                for m, r in record.items()]  # fmt: skip
        figure = None
        if "meta" in record:
            checks, (fig, ax) = record["meta"]["checks"], subplots(figsize=(7, 4), dpi=110)
            for key, label in (("return_before", "before adaptation"), ("return_after", "after adaptation")):
                ax.plot([c["step"] for c in checks], [c[key] for c in checks], marker="o", label=label)
            ax.set(xlabel="meta-step", ylabel="validation episode return")
            ax.grid(alpha=0.3)
            ax.legend()
            figure = save_figure(fig, run_dir / "report_meta_train.png")
        sections.append(Section("Meta-training", table=rows, figure=figure))
    for name, title, png in (("adaptation", "Adaptation on held-out tasks (episode return)", "adaptation.png"),
                             ("transfer", "Transfer (Taylor & Stone metrics)", "transfer.png")):  # fmt: skip
        if paths[name].exists():
            sections.append(markdown_section(title, run_dir / f"{name}.md", run_dir / png))
    return sections


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
