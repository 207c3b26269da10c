"""``irl_cells.json`` -> ``irl.json`` (return ratios per method, family and demonstration count), ``irl.md``
and ``irl.png`` (learning curves on the true reward), and the section of ``drml report``.

The return ratio is ``(R_imitator - R_random) / (R_expert - R_random)`` on the true reward: 1 is the expert, 0
is uniformly random actions. (``imitation``'s benchmark divides by the expert's return alone, which is the same
where random returns are near 0 and meaningless where returns are negative, as in Nav2D and Pendulum;
``return_over_expert`` = ``R_imitator / R_expert`` is reported too.)
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Annotated, Any, NotRequired

from pydantic import StringConstraints
from typing_extensions import TypedDict

from drml_ray.irl.config import IRLExperiment
from drml_ray.report.build import Section, markdown_section, md_table, save_figure, subplots
from drml_ray.runtime.runfiles import MEASURE_AGAIN, atomic_write_json, atomic_write_text, check_json, read_json

# (the functional form: ``return`` is a keyword)
Yardstick = TypedDict("Yardstick", {"task": dict[str, float], "return": float, "curve": list[float]})
"""PPO on the true reward of a family's ``transfer_task``: what AIRL's transferred reward is measured against."""
Expert = TypedDict("Expert", {"task": dict[str, float], "horizon": int, "return": float, "random_return": float,
                              "demo_returns": list[float], "transfer": NotRequired[Yardstick]})  # fmt: skip
"""What ``drml rl irl`` and the report read of a family's ``expert.json`` (and its entry in ``experts.json``)."""

RewardTransfer = TypedDict("RewardTransfer", {"return": float, "curve": list[float]})


class CellTransfer(TypedDict):
    carried: float
    reward: NotRequired[RewardTransfer]


Cell = TypedDict("Cell", {"return": float, "curve": NotRequired[list[float]], "transfer": NotRequired[CellTransfer]})
Cells = dict[Annotated[str, StringConstraints(pattern=r"^[^/]+/[^/]+/\d+/-?\d+$")], Cell]
"""``irl_cells.json``: ``method/family/demonstrations/seed`` to what that cell measured."""


def read_cells(path: Path) -> dict[str, Any]:
    """``irl_cells.json``, checked (:data:`Cells`); ``{}`` before the first cell is measured."""
    return read_json(path, schema=Cells, fix=MEASURE_AGAIN, default={})


METHODS = ("bc", "gail", "airl")
RATIO = "(imitator - random) / (expert - random), true reward, most likely actions"


def ratio(value: float, expert: dict[str, Any]) -> float:
    """The return ratio of ``value`` against a family's expert and random returns.

    >>> ratio(60.0, {"return": 100.0, "random_return": 20.0})
    0.5
    >>> ratio(5.0, {"return": 5.0, "random_return": 5.0})  # a yardstick no better than random: undefined
    nan
    """
    span = expert["return"] - expert["random_return"]
    return (value - expert["random_return"]) / span if span else math.nan


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}


def summarise(cells: dict[str, Any], experts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{method: {family: {demos: {return_ratio, return_over_expert, return: mean/std, seeds}}}}``."""
    grouped: dict[tuple[str, str, str], list[float]] = {}
    for key, cell in cells.items():
        method, family, demos, _ = key.split("/")
        if family in experts:
            grouped.setdefault((method, family, demos), []).append(cell["return"])
    out: dict[str, Any] = {"ratio": RATIO, "experts": experts}
    for (method, family, demos), returns in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1], int(kv[0][2]))):
        expert = experts[family]
        out.setdefault(method, {}).setdefault(family, {})[demos] = {
            "return_ratio": _stats([ratio(r, expert) for r in returns]),
            "return_over_expert": _stats([r / expert["return"] if expert["return"] else math.nan for r in returns]),
            "return": _stats(returns), "seeds": len(returns),
        }  # fmt: skip
    return out


def transfer_results(cells: dict[str, Any], experts: dict[str, Any], demos: int) -> dict[str, Any]:
    """Per family with a ``transfer_task``: each policy carried over unchanged and AIRL's reward given to a new PPO
    policy, at ``demos`` demonstrations, as ratios against PPO on the true reward of the changed dynamics; and
    Taylor & Stone's metrics of the AIRL-reward PPO's curve against that PPO's (``drml rl transfer``'s)."""
    from drml_ray.rl.results import transfer_summary

    out: dict[str, Any] = {}
    for family, expert in experts.items():
        reference = expert.get("transfer")
        if not reference:
            continue
        returns: dict[str, list[float]] = {}
        curves: dict[int, dict[str, list[float]]] = {}
        for key, cell in cells.items():
            method, fam, n, seed = key.split("/")
            if fam != family or int(n) != demos or "transfer" not in cell:
                continue
            returns.setdefault(f"{method} policy carried over", []).append(cell["transfer"]["carried"])
            if "reward" in cell["transfer"]:
                returns.setdefault("airl reward, new PPO policy", []).append(cell["transfer"]["reward"]["return"])
                curves[int(seed)] = {"transfer": cell["transfer"]["reward"]["curve"], "scratch": reference["curve"]}
        out[family] = {
            "task": reference["task"], "demos": demos, "ppo_true_reward_return": reference["return"],
            "random_return": reference["random_return"],
            "methods": {name: {"return_ratio": _stats([ratio(r, reference) for r in values]), "return": _stats(values),
                               "seeds": len(values)} for name, values in returns.items()},
            "airl_reward_vs_true_reward": transfer_summary(curves, None, 3) if curves else None,
        }  # fmt: skip
    return out


def transfer_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"family": family, "changed dynamics": json.dumps(t["task"]), "demos": t["demos"], "transferred": name,
             "return ratio": f"{c['return_ratio']['mean']:.2f} ± {c['return_ratio']['std']:.2f}",
             "return": f"{c['return']['mean']:.1f}", "PPO, true reward (random)":
             f"{t['ppo_true_reward_return']:.1f} ({t['random_return']:.1f})"}
            for family, t in summary.get("transfer", {}).items() for name, c in t["methods"].items()]  # fmt: skip


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for method in [m for m in METHODS if m in summary]:
        for family, by_demos in summary[method].items():
            expert = summary["experts"][family]
            rows.append({"method": method, "family": family, "expert (random)":
                         f"{expert['return']:.1f} ({expert['random_return']:.1f})",
                         **{f"{n} demos": f"{c['return_ratio']['mean']:.2f} ± {c['return_ratio']['std']:.2f}"
                            for n, c in by_demos.items()}})  # fmt: skip
    return rows


def format_irl(summary: dict[str, Any]) -> str:
    seeds = {c["seeds"] for m in METHODS if m in summary for f in summary[m].values() for c in f.values()}
    counts = "/".join(map(str, sorted(seeds)))
    text = md_table(table_rows(summary)) + f"\n\nReturn ratio {RATIO}; mean ± std over {counts} seeds.\n"
    if summary.get("transfer"):
        text += ("\n**Reward transfer** (return ratios against PPO trained on the true reward of the changed "
                 "dynamics for as many iterations):\n\n" + md_table(transfer_rows(summary)) + "\n")  # fmt: skip
    return text


def plot_curves(cells: dict[str, Any], summary: dict[str, Any], path: Path) -> Path:
    """True-return training curves of GAIL and AIRL (mean over seeds, per demonstration count), one panel per
    family, with the expert's and BC's returns as lines."""
    families = list(summary["experts"])
    fig, axes = subplots(1, len(families), figsize=(5 * len(families), 3.6), squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        curves: dict[tuple[str, str], list[list[float]]] = {}
        for key, cell in cells.items():
            method, fam, demos, _ = key.split("/")
            if fam == family and "curve" in cell:
                curves.setdefault((method, demos), []).append(cell["curve"])
        for (method, demos), runs in sorted(curves.items()):
            length = min(len(c) for c in runs)
            ax.plot([statistics.fmean(c[i] for c in runs) for i in range(length)], label=f"{method} {demos} demos",
                    linestyle="-" if method == "airl" else "--")  # fmt: skip
        ax.axhline(summary["experts"][family]["return"], color="black", linestyle=":", label="expert")
        for demos, cell in summary.get("bc", {}).get(family, {}).items():
            ax.axhline(cell["return"]["mean"], color="grey", alpha=0.5, linewidth=0.8, label=f"bc {demos} demos")
        ax.set(title=family, xlabel="PPO iteration", ylabel="true episode return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return save_figure(fig, path, dpi=100)


def write_irl_outputs(
    cfg: IRLExperiment, run_dir: Path, experts: dict[str, Any], cells: dict[str, Any]
) -> dict[str, Any]:
    wanted = {f"{m}/{f}/{n}/{s}" for m in cfg.irl.methods for f in cfg.families() for n in cfg.irl.demos
              for s in cfg.irl.seeds}  # fmt: skip
    chosen = {k: c for k, c in cells.items() if k in wanted}
    summary = summarise(chosen, experts)
    transfer = transfer_results(chosen, experts, max(cfg.irl.demos))
    if transfer:
        summary["transfer"] = transfer
    text = format_irl(summary)
    atomic_write_text(run_dir / "irl.md", text)
    plot_curves(chosen, summary, run_dir / "irl.png")
    atomic_write_json(run_dir / "irl.json", summary)
    print(text, flush=True)
    return summary


def report_sections(run_dir: Path) -> list[Section]:
    """``drml report`` of an inverse-RL run: the experts, then the return-ratio table and the curves."""
    sections = []
    experts = run_dir / "experts.json"
    if experts.exists():
        data = {f: check_json(e, Expert, experts, where=f)
                for f, e in read_json(experts).items() if isinstance(e, dict)}  # fmt: skip
        rows = [{"family": f, "task": json.dumps(e["task"]), "horizon": e["horizon"],
                 "expert return": f"{e['return']:.1f}", "demonstrations": len(e["demo_returns"]),
                 "random return": f"{e['random_return']:.1f}"}
                for f, e in data.items()]  # fmt: skip
        sections.append(Section("Experts and demonstrations", table=rows))
    if (run_dir / "irl.md").exists():
        sections.append(markdown_section("Inverse RL: return ratio on the true reward", run_dir / "irl.md",
                                         run_dir / "irl.png"))  # fmt: skip
    from drml_ray.irl import meta_results  # (it reads this module's ratio)

    return sections + meta_results.report_sections(run_dir)
