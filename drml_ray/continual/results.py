"""``continual.json``, its heatmaps of R and its table, and the continual section of ``drml report``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NotRequired

from typing_extensions import TypedDict

from drml_ray.continual import metrics
from drml_ray.report.build import Section, md_table, save_figure, subplots
from drml_ray.runtime.runfiles import atomic_write_json, atomic_write_text, read_json

CONTINUAL_FILE = "continual.json"


class Strategy(TypedDict):
    """What the report and ``drml continual extend`` read of a strategy in ``continual.json``."""

    acc: float | None
    bwt: float | None
    fwt: float | None
    mean_forgetting: float | None
    micro_f1: NotRequired[float]
    macro_f1: NotRequired[float]
    seconds: float


class Extension(TypedDict):
    """An experience ``drml continual extend`` added."""

    strategy: str
    experience: str
    types: list[str]
    R: list[float]
    train: str
    dev: str | None
    test: str | None
    columns: NotRequired[str | None]  # (--columns as given: an extension from before ``data`` is read again so)
    data: NotRequired[str]  # (its splits as read, kept in the run directory: a later extend reads these)


class ContinualTable(TypedDict):
    protocol: str
    experiences: list[str]
    strategies: dict[str, Strategy]
    extensions: NotRequired[list[Extension]]


class Seen(TypedDict):
    micro_f1: float
    macro_f1: float


class Row(TypedDict):
    """An experience's ``row.json``: its row of R, the dev F1 it was chosen by, F1 over every type seen, its time."""

    R: list[float]
    dev_f1: float
    seen: Seen | None
    seconds: float


RETRAIN = "restore it, or delete it to train that experience again"


def read_row(path: Path) -> Row:
    """A finished experience's ``row.json``, checked; a damaged one names its field and how to train it again."""
    return read_json(path, schema=Row, fix=RETRAIN)


def read_baseline(path: Path) -> list[float]:
    """``baseline.json``: the untrained start's test F1 on every experience (GEM's b)."""
    return read_json(path, list, schema=list[float], fix="restore it, or delete it to score the start again")


def continual_table(protocol: str, names: list[str], runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The shape of ``continual.json``: ``{"experiences": [...], "strategies": {NAME: {"R", "acc", ...}}}``."""
    strategies = {}
    for name, run in runs.items():
        entry = {"R": run["R"], "baseline": run["baseline"], **metrics.summary(run["R"], run["baseline"])}
        if run["seen"][-1] is not None:  # one shared test set: F1 over every type seen, after each step
            entry["micro_f1"], entry["macro_f1"] = run["seen"][-1]["micro_f1"], run["seen"][-1]["macro_f1"]
            entry["seen"] = run["seen"]
        strategies[name] = entry | {"labels": run["labels"], "seconds": run["seconds"]}
    return {"protocol": protocol, "experiences": names, "strategies": strategies}


def points(value: float | None) -> str:
    """An F1 in points (``—``: none)."""
    return "—" if value is None else f"{100 * value:.2f}"


def summary_rows(table: dict[str, Any]) -> list[dict[str, str]]:
    """One row per strategy, F1 in points."""
    rows = []
    for name, s in table["strategies"].items():
        row = {"strategy": name, "average F1": points(s["acc"]), "BWT": points(s["bwt"]), "FWT": points(s["fwt"]),
               "mean forgetting": points(s["mean_forgetting"])}  # fmt: skip
        if "micro_f1" in s:
            row |= {"micro F1 (all types)": points(s["micro_f1"]), "macro F1": points(s["macro_f1"])}
        rows.append(row | {"minutes": f"{s['seconds'] / 60:.1f}"})
    return rows


def plot_heatmaps(table: dict[str, Any], path: Path) -> Path:
    """R of each strategy as a heatmap: rows = trained through, columns = scored on."""
    names, n = list(table["strategies"]), len(table["experiences"])
    fig, axes = subplots(1, len(names), figsize=(1.2 + 0.55 * n * len(names) + 1.2 * len(names), 0.5 * n + 1.8),
                         squeeze=False)  # fmt: skip
    for ax, name in zip(axes[0], names, strict=True):
        R = [[100 * v for v in row] for row in table["strategies"][name]["R"]]
        ax.imshow(R, vmin=0, vmax=100, cmap="viridis")
        for i, row in enumerate(R):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color="w" if value < 60 else "k")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(n), range(1, n + 1))
        ax.set_yticks(range(n), range(1, n + 1))
        ax.set(xlabel="scored on experience", ylabel="trained through experience")
    return save_figure(fig, path, dpi=110)


def write_outputs(table: dict[str, Any], run_dir: Path) -> str:
    """``continual.json`` (written last of the three: it marks the run finished), ``.md`` and ``.png``."""
    experiences = "\n".join(f"{i + 1}. {name}" for i, name in enumerate(table["experiences"]))
    text = (f"Experiences ({table['protocol']}-incremental):\n\n{experiences}\n\n{md_table(summary_rows(table))}\n"
            "Test entity F1 in points; BWT, FWT and forgetting from R (GEM's definitions).\n")  # fmt: skip
    atomic_write_text(run_dir / "continual.md", text)
    plot_heatmaps(table, run_dir / "continual.png")
    atomic_write_json(run_dir / CONTINUAL_FILE, table)
    return text


def report_sections(run_dir: Path) -> list[Section]:
    path = run_dir / CONTINUAL_FILE
    if not path.exists():
        return []
    table = read_json(path, schema=ContinualTable)
    names = "\n".join(f"{i + 1}. {name}" for i, name in enumerate(table["experiences"]))
    png = run_dir / "continual.png"
    sections = [Section(f"Continual learning ({table['protocol']}-incremental): test entity F1, points",
                        text=names, table=summary_rows(table), figure=png if png.exists() else None)]  # fmt: skip
    if table.get("extensions"):
        sections.append(Section("Extensions (drml continual extend): test entity F1, points", text=EXTENDED,
                                table=extension_rows(table["extensions"])))  # fmt: skip
    return sections


EXTENDED = (
    "Each row is one more experience, trained with the strategy's memory from the model its last one left; it is "
    "scored on the run's experiences (above) and the strategy's extensions before it, in order."
)


def extension_rows(extensions: list[Extension]) -> list[dict[str, str]]:
    """One row per extension: the new experience's F1, the average over every experience so far, and each."""
    rows = []
    for k, e in enumerate(extensions, start=1):
        R = e["R"]
        rows.append({"extension": str(k), "strategy": e["strategy"], "experience": e["experience"],
                     "types": ", ".join(e["types"]), "F1 on it": points(R[-1]), "average F1": points(sum(R) / len(R)),
                     "F1 on each, in order": " · ".join(points(f) for f in R)})  # fmt: skip
    return rows
