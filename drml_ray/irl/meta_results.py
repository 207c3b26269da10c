"""``meta_irl_cells.json`` -> ``meta_irl.json``, ``meta_irl.md`` and one PNG per demonstration count: the
adaptation table of ``drml rl meta-eval`` (true returns of a fresh PPO policy trained on each recovered reward),
the return ratios, the rewards' correlation with the true one, and adversarial AIRL from scratch."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NotRequired

from pydantic import StringConstraints
from typing_extensions import TypedDict

from drml_ray.irl.config import IRLExperiment
from drml_ray.irl.results import ratio
from drml_ray.report.build import Section, markdown_section, md_table
from drml_ray.rl.results import format_adaptation, plot_adaptation, summarise
from drml_ray.runtime.runfiles import MEASURE_AGAIN, atomic_write_json, atomic_write_text, check_json, read_json

RESULT_FILE = "meta_irl.json"
MD_FILE = "meta_irl.md"


class Cell(TypedDict):
    """One held-out task's rewards after each adaptation stage (AIRL from scratch: its policy's return too)."""

    reward: list[float]
    policy: NotRequired[float]
    correlation: NotRequired[list[float]]


class SavedCells(TypedDict):
    """``meta_irl_cells.json``: the budget the cells were measured with, and ``method/demos/seed/task`` to a cell."""

    budget: Any
    cells: dict[Annotated[str, StringConstraints(pattern=r"^[^/]+/\d+/-?\d+/[^/]+$")], Cell]


TaskRecord = TypedDict("TaskRecord", {"return": float, "random_return": float, "demo_returns": list[float]})
"""What a meta-IRL task's ``task.json`` keeps beside its identity: its expert's, a random policy's and the
demonstrations' true returns (``return`` is a keyword: the functional form)."""


def read_task(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """A task's ``task.json`` if its expert was trained for ``identity`` (checked then), else ``None``: train it."""
    record = read_json(path, default={})
    if record.get("identity") != identity:
        return None
    return check_json(record, TaskRecord, path, fix="restore it, or delete it to train that task's expert again")


def read_cells(path: Path) -> dict[str, Any]:
    """``meta_irl_cells.json``, checked (:class:`SavedCells`); ``{}`` before the first cell is measured."""
    return read_json(path, schema=SavedCells, fix=MEASURE_AGAIN, default={})


def _per_seed(cells: dict[str, Any], demos: int, value: Callable[[dict[str, Any], str], Any]) -> dict[str, Any]:
    """``{method: {seed: [value per task]}}`` for ``demos`` demonstrations; ``value(cell, task)`` (``None``: the
    cell has none)."""
    out: dict[str, dict[int, list[Any]]] = {}
    for key, cell in sorted(cells.items()):
        method, n, seed, task = key.split("/")
        if int(n) == demos and (v := value(cell, task)) is not None:
            out.setdefault(method, {}).setdefault(int(seed), []).append(v)
    return out


def _stats(per_seed: dict[int, list[float]]) -> dict[str, float]:
    means = [statistics.fmean(v) for v in per_seed.values()]
    return {"mean": statistics.fmean(means), "std": statistics.pstdev(means), "seeds": len(means)}


def summarise_demos(cells: dict[str, Any], records: dict[str, Any], demos: int, stages: int) -> dict[str, Any]:
    """One demonstration count: the adaptation table (returns), each method's return ratio after the last stage,
    the correlations, and AIRL from scratch."""
    adapted = {m: c for m, c in _per_seed(cells, demos, lambda c, _: c["reward"]).items() if m != "airl"}
    tasks = sorted({k.split("/")[3] for k in cells if int(k.split("/")[1]) == demos})
    seeds = sorted({s for by_seed in adapted.values() for s in by_seed}) or [0]
    oracle = {seeds[0]: [[records[t]["return"]] * stages for t in tasks]}
    table = summarise(adapted | {"oracle": oracle}, stages - 1) if adapted else {}
    ratios = _per_seed(cells, demos, lambda c, t: ratio(c["reward"][-1], records[t]))
    policy = _per_seed(cells, demos, lambda c, t: ratio(c["policy"], records[t]) if "policy" in c else None)
    correlation = _per_seed(cells, demos, lambda c, _: c["correlation"][-1] if "correlation" in c else None)
    return {"adaptation": table, "return_ratio": {m: _stats(r) for m, r in ratios.items()},
            "correlation": {m: _stats(r) for m, r in correlation.items()},
            "airl": {"policy_ratio": _stats(policy["airl"])} if "airl" in policy else {}, "tasks": tasks}  # fmt: skip


def format_demos(summary: dict[str, Any], demos: int, labels: list[str]) -> str:
    """The Markdown of one demonstration count."""
    lines = [f"### From {demos} demonstration{'s' if demos > 1 else ''} of each held-out task\n"]
    if summary["adaptation"]:
        what = "True return of a fresh PPO policy trained on each recovered reward"
        lines.append(format_adaptation(summary["adaptation"], len(labels), labels, "inner-loop steps", what))
    rows = [{"method": m, "return ratio (last)": f"{r['mean']:.2f} ± {r['std']:.2f}",
             "reward correlation (last)": (f"{c['mean']:.2f} ± {c['std']:.2f}"
                                           if (c := summary["correlation"].get(m)) else "—"),
             "policy's own ratio": (f"{a['mean']:.2f} ± {a['std']:.2f}"
                                    if m == "airl" and (a := summary["airl"].get("policy_ratio")) else "—")}
            for m, r in summary["return_ratio"].items()]  # fmt: skip
    lines.append(md_table(rows))
    lines.append("\nReturn ratio: (return - random) / (expert - random) of the fresh PPO policy on the last reward; "
                 "reward correlation: Pearson's r of the learned g(s) with the true reward over random-policy "
                 "steps; airl: adversarial AIRL from scratch (its own policy's ratio, and a fresh policy on its "
                 "g).\n")  # fmt: skip
    return "\n".join(lines)


def write_meta_irl_outputs(cfg: IRLExperiment, run_dir: Path, records: dict[str, Any], cells: dict[str, Any],
                           wall_s: float) -> dict[str, Any]:  # fmt: skip
    """``meta_irl.json``, ``meta_irl.md`` and ``meta_irl_<N>demos.png``; the Markdown is printed."""
    m = cfg.meta_irl
    labels = [str(s) for s in m.adapt_steps]
    out: dict[str, Any] = {"family": m.family, "tasks": {k: v["identity"]["task"] for k, v in records.items()},
                           "experts": {k: {"return": v["return"], "random_return": v["random_return"]}
                                       for k, v in records.items()}, "wall_s": wall_s, "demos": {}}  # fmt: skip
    text = [f"## Meta-IRL on {m.family}: rewards of held-out tasks recovered from few demonstrations\n"]
    for demos in m.demos:
        summary = summarise_demos(cells, records, demos, len(labels) + 1)
        out["demos"][str(demos)] = summary
        text.append(format_demos(summary, demos, labels))
        if summary["adaptation"]:
            plot_adaptation(summary["adaptation"], len(labels), run_dir / f"meta_irl_{demos}demos.png",
                            "inner-loop steps", labels)  # fmt: skip
    atomic_write_json(run_dir / RESULT_FILE, out)
    atomic_write_text(run_dir / MD_FILE, "\n".join(text))
    print("\n".join(text), flush=True)
    return out


def report_sections(run_dir: Path) -> list[Section]:
    """``drml report``'s meta-IRL sections, if the run has them: the tables, then a figure per demonstration count."""
    if not (run_dir / MD_FILE).exists():
        return []
    sections = [markdown_section("Meta-IRL: rewards of held-out tasks", run_dir / MD_FILE)]
    for png in sorted(run_dir.glob("meta_irl_*demos.png")):
        sections.append(Section(f"Meta-IRL adaptation, {png.stem.split('_')[-1].removesuffix('demos')} "
                                "demonstrations", figure=png))  # fmt: skip
    return sections
