"""What a search leaves behind: one row per trial (``trials.csv``), the curves (``trials.png``)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drml_ray.config import TuneSettings
from drml_ray.report.build import save_figure, subplots
from drml_ray.runtime.registry import Scope
from drml_ray.runtime.runfiles import atomic_write_text


@dataclass
class TrialSummary:
    name: str
    params: dict[str, Any]
    state: str
    """``completed``, ``early-stopped`` (patience), ``stopped by <scheduler>``, ``interrupted`` or ``error``."""
    epochs: float
    """Epochs trained (the scheduler's time unit)."""
    best_metric: float
    best_checkpoint: str | None
    curve: list[tuple[float, float]] = field(default_factory=list)
    """(epoch, metric) after every evaluation."""
    error: str = ""
    started_at: float = float("nan")
    """Unix time the trial's process started."""
    wall_s: float = 0.0
    """The trial's wall time as Tune measured it."""
    train_s: float = 0.0
    """Of which training steps and dev evaluation (the rest is Tune + Ray Train overhead)."""
    scope: Scope = "best"
    """Which of the trial's results ``best_metric`` is: its best, or its last (the column's name in the CSV)."""

    def row(self) -> dict[str, Any]:
        return {"trial": self.name, **self.params, self.scope: self.best_metric, "epochs": self.epochs,
                "state": self.state, "wall_s": round(self.wall_s, 2),
                "overhead_s": round(self.wall_s - self.train_s, 2), "error": self.error}  # fmt: skip


def trial_state(error: Any, last: dict[str, Any], max_epochs: int, scheduler: str, ended: bool = False) -> str:
    """Why a trial ended, from its last result. ``ended``: Tune ended it (it finished, or its scheduler stopped it;
    :class:`~drml_ray.tune.driver.RecordEndedTrials`), as the result marked ``done`` also says where there is one.
    Ctrl+C (or SIGTERM) ends the running trials otherwise, though Tune lists them as terminated too, so a trial
    short of its epochs that Tune did not end is ``interrupted``, and so is one with no result.

    >>> trial_state(None, {"epoch": 2}, 4, "sha", ended=True), trial_state(None, {"epoch": 2, "done": True}, 4, "asha")
    ('stopped by sha', 'stopped by asha')
    >>> trial_state(None, {"epoch": 2.0}, 4, "asha"), trial_state(None, {}, 4, "asha", ended=True)
    ('interrupted', 'interrupted')
    >>> trial_state(None, {"epoch": 2.0, "stopped_early": True}, 4, "fifo"), trial_state(None, {"epoch": 4.0}, 4, "pbt")
    ('early-stopped', 'completed')
    """
    if error is not None:
        return "error"
    if not last:
        return "interrupted"
    if last.get("stopped_early"):
        return "early-stopped"
    if last.get("epoch", 0) >= max_epochs:
        return "completed"
    return f"stopped by {scheduler}" if (ended or last.get("done")) and scheduler != "fifo" else "interrupted"


def ended_trials(trials: list[TrialSummary]) -> list[TrialSummary]:
    """The trials that ran to their end: all but the interrupted ones (:func:`trial_state`).

    >>> T = lambda state: TrialSummary("t", {}, state, 1.0, 0.5, None)
    >>> [t.state for t in ended_trials([T("completed"), T("interrupted"), T("stopped by asha"), T("error")])]
    ['completed', 'stopped by asha', 'error']
    """
    return [t for t in trials if t.state != "interrupted"]


def best_row(rows: list[dict[str, Any]], metric: str, sign: int) -> dict[str, Any]:
    """The row of the best ``metric`` (``sign`` -1: the lowest); among equal ones the latest, the one whose
    checkpoint Ray Train keeps (it ranks a tie by report order).

    >>> best_row([{"f1": 0.5, "at": 1}, {"f1": 0.9, "at": 2}, {"f1": 0.9, "at": 3}, {"f1": 0.7, "at": 4}], "f1", 1)
    {'f1': 0.9, 'at': 3}
    >>> best_row([], "f1", 1)
    {}
    """
    return max(reversed(rows), key=lambda r: sign * r[metric], default={})


def summarise_trials(grid: Any, settings: TuneSettings, max_epochs: int, scope: Scope = "best",
                     ended: frozenset[str] = frozenset()) -> list[TrialSummary]:  # fmt: skip
    """One summary per trial of a Tune ``ResultGrid``, in trial order; a trial's ``best_metric`` and
    ``best_checkpoint`` are those of its best result, or with ``scope="last"`` of its last. ``ended``: the ids of
    the trials Tune ended (:func:`trial_state`)."""
    trials = []
    sign = 1 if settings.mode == "max" else -1
    for result in grid:
        rows = [] if result.metrics_dataframe is None else result.metrics_dataframe.to_dict("records")
        rows = [r for r in rows if settings.metric in r]
        best = rows[-1] if scope == "last" and rows else best_row(rows, settings.metric, sign)
        params = {key: value for key, value in (result.config or {}).items() if key in settings.space}
        last, scheduler = (rows[-1] if rows else {}), settings.scheduler.type
        trials.append(
            TrialSummary(
                name=Path(result.path).name,
                params=params,
                state=trial_state(result.error, last, max_epochs, scheduler, last.get("trial_id") in ended),
                epochs=float(rows[-1]["epoch"]) if rows else 0.0,
                best_metric=float(best.get(settings.metric, float("nan"))),
                best_checkpoint=best.get("checkpoint_path"),
                curve=[(float(r["epoch"]), float(r[settings.metric])) for r in rows],
                error=error_line(result.error),
                started_at=float(rows[0]["timestamp"] - rows[0]["time_this_iter_s"]) if rows else float("nan"),
                # Tune restarts its clock when a trial runs again (paused by successive halving, resumed
                # after an error): the trial's time is the sum of its results' own times.
                wall_s=float(sum(r["time_this_iter_s"] for r in rows)),
                train_s=float(rows[-1].get("train_s", 0.0) + rows[-1].get("eval_s", 0.0)) if rows else 0.0,
                scope=scope,
            )  # fmt: skip
        )
    return sorted(trials, key=lambda t: t.name)


EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Interrupt)(\([\w.]+\))?: ")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def error_line(error: BaseException | None) -> str:
    r"""The exception a trial ended with as ``Type: message``: the last exception line of the traceback Ray wraps
    it in (the worker's, where Ray Train ran it), without the module path or the colour codes; else the first.

    >>> class E(Exception): pass
    >>> error_line(E("\x1b[36mray::train()\x1b[39m (pid=1)\n  File x\ndrml_ray.errors.UserError: top_layers=2"))
    'UserError: top_layers=2'
    >>> error_line(E("something odd")), error_line(None)
    ('something odd', '')
    """
    if error is None:
        return ""
    lines = [COLOUR.sub("", line).strip() for line in str(error).splitlines()]
    found = [line for line in lines if EXCEPTION_LINE.match(line)]
    line = found[-1] if found else next((line for line in lines if line), type(error).__name__)
    return re.sub(r"^(?:[a-z_]+\.)+(?=[A-Z])", "", line)


def write_trials_csv(trials: list[TrialSummary], path: Path) -> None:
    rows = [t.row() for t in trials]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, out.getvalue())


def format_trials(trials: list[TrialSummary], metric: str, scope: Scope = "best") -> str:
    """The end-of-search table printed to the console (and in the report); ``scope`` as the trials were
    summarised (:func:`summarise_trials`)."""
    keys = list(dict.fromkeys(key for t in trials for key in t.params))
    header = ["trial", *keys, f"{scope} {metric}", "epochs", "state"]
    body = [[t.name, *(_short(t.params.get(k)) for k in keys), f"{t.best_metric:.4f}", f"{t.epochs:g}", t.state]
            for t in trials]  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *body]
    )


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_trial_plot(trials: list[TrialSummary], path: Path, metric: str) -> None:
    """``metric`` per trial over epochs, one line per trial (PNG, written atomically)."""
    fig, ax = subplots(figsize=(7, 4.2), dpi=110)
    for t in trials:
        if t.curve:
            xs, ys = zip(*t.curve, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, label=f"{t.name} ({t.state})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial")
    ax.grid(alpha=0.3)
    if any(t.curve for t in trials):
        ax.legend(fontsize=7, loc="best")
    save_figure(fig, path)
