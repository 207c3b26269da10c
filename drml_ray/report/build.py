"""``drml report RUN_DIR``: one self-contained ``report.html`` and a ``report.md`` for any finished run.

Reads only what a run leaves on disk (``config.yaml``, ``results.json``, ``report_{dev,test}.txt``,
and for searches ``trials.csv`` / ``trials.png``), so it works on a copy of a run directory without
Ray. Figures are drawn with matplotlib; the HTML inlines them as data URIs (one file to mail or attach),
the Markdown links the PNG files written beside it.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drml_ray.runs import atomic_write_text


@dataclass
class Section:
    title: str
    text: str = ""
    """Preformatted text (config, seqeval tables)."""
    table: list[dict[str, Any]] = field(default_factory=list)
    figure: Path | None = None


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _f1(scores: dict[str, Any]) -> float:
    return scores["entity"]["micro"]["f1"]


def save_figure(fig: Any, path: Path, dpi: int | None = None) -> Path:
    """Write a matplotlib figure to ``path`` atomically (a temporary file, then a rename) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path


def _curves_png(history: list[dict[str, Any]], path: Path) -> Path:
    """Dev entity F1 and train loss over epochs (a finetune run's ``history``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, left = plt.subplots(figsize=(7, 4), dpi=110)
    left.plot(epochs, [h["dev_f1"] for h in history], marker="o", color="tab:blue", label="dev entity F1")
    left.set_xlabel("epoch")
    left.set_ylabel("dev entity F1", color="tab:blue")
    right = left.twinx()
    right.plot(epochs, [h["train_loss"] for h in history], marker="s", color="tab:red", label="train loss")
    right.set_ylabel("train loss", color="tab:red")
    left.grid(alpha=0.3)
    left.set_title("training curves")
    return save_figure(fig, path)


def _meta_curves_png(record: dict[str, Any], path: Path) -> Path:
    """Held-out dev F1 after adaptation over meta-steps, one line per algorithm (``meta_train.json``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for algorithm, rec in record.items():
        if isinstance(rec, dict) and rec.get("evals"):
            ax.plot([e["step"] for e in rec["evals"]], [e["mean"] for e in rec["evals"]], marker="o", label=algorithm)
    ax.set_xlabel("meta-step")
    ax.set_ylabel("held-out dev entity F1 after adaptation")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def collect_meta(run_dir: Path) -> tuple[str, list[Section]]:
    """Sections of a meta-learning run: meta-training curves and the adaptation table."""
    from drml_ray.config import METHODS

    sections = []
    train_path, eval_path = run_dir / "meta_train.json", run_dir / "meta_eval.json"
    if train_path.exists():
        record = json.loads(train_path.read_text(encoding="utf-8"))
        rows = [
            {"algorithm": a, "meta-steps": len(r["steps"]), "s / meta-step": f"{r['s_per_meta_step']:.1f}",
             "held-out dev F1 at step 0": f"{r['evals'][0]['mean']:.4f}",
             "held-out dev F1 at the end": f"{r['evals'][-1]['mean']:.4f}", "model": r["folder"]}
            for a, r in record.items() if isinstance(r, dict) and r.get("evals")
        ]  # fmt: skip
        sections.append(Section("Meta-training (held-out dev F1 after a few-shot adaptation)", table=rows,
                                figure=_meta_curves_png(record, run_dir / "report_meta_train.png")))  # fmt: skip
    if eval_path.exists():
        table = json.loads(eval_path.read_text(encoding="utf-8"))
        rows = []
        for domain, by_shots in table.items():
            for shots, cells in by_shots.items():
                row: dict[str, Any] = {"domain": domain, "shots": shots}
                for method in METHODS:
                    c = cells.get(method)
                    row[method] = (
                        f"{100 * c['mean_f1']:.2f} ± {100 * c['std_f1']:.2f} ({len(c['f1_per_seed'])})" if c else "—"
                    )
                rows.append(row)
        png = run_dir / "meta_eval.png"
        sections.append(Section("Adaptation: test entity F1 (points), mean ± std (seeds)", table=rows,
                                figure=png if png.exists() else None))  # fmt: skip
    sections.append(Section("Configuration", text=_read(run_dir / "config.yaml")))
    return f"drml meta-learning run: {run_dir.name}", sections


def _rl_curves_png(record: dict[str, Any], path: Path) -> Path:
    """Held-out return before and after adaptation over Reptile's meta-steps (``meta_train.json``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checks = record["meta"]["checks"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, label in (("return_before", "before adaptation"), ("return_after", "after adaptation")):
        ax.plot([c["step"] for c in checks], [c[key] for c in checks], marker="o", label=label)
    ax.set_xlabel("meta-step")
    ax.set_ylabel("held-out episode return")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def is_rl_run(run_dir: Path) -> bool:
    """An RL run directory: written by ``drml rl ...`` (its config has an ``env:`` section)."""
    config = run_dir / "config.yaml"
    if not config.exists():
        return False
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    return isinstance(data, dict) and "env" in data


def collect_rl(run_dir: Path) -> tuple[str, list[Section]]:
    """Sections of an RL run: Reptile's progress, the adaptation table and the transfer metrics."""
    sections = []
    train_path, adapt_path, transfer_path = (
        run_dir / f for f in ("meta_train.json", "adaptation.json", "transfer.json")
    )
    if not (train_path.exists() or adapt_path.exists() or transfer_path.exists()):
        raise FileNotFoundError(f"{run_dir}: no meta_train.json, adaptation.json or transfer.json (nothing finished)")
    if train_path.exists():
        record = json.loads(train_path.read_text(encoding="utf-8"))
        rows = [{"method": m, **({"s / meta-step": f"{r['seconds_per_meta_step']:.1f}",
                                  "meta-steps": len(r["step_s"])} if m == "meta" else
                                 {"PPO iterations": r["iterations"], "wall s": f"{r['wall_s']:.0f}"})}
                for m, r in record.items() if isinstance(r, dict)]  # fmt: skip
        figure = _rl_curves_png(record, run_dir / "report_meta_train.png") if "meta" in record else None
        sections.append(Section("Meta-training", table=rows, figure=figure))
    if adapt_path.exists():
        table = json.loads(adapt_path.read_text(encoding="utf-8"))
        rows = []
        for method, row in table.items():
            names = [k for k in row if k.startswith("episode_return_mean")]
            cells = {n.replace("episode_return_mean", "return") or "return": f"{row[n]:.1f} ± {row['std'][n]:.1f}"
                     for n in names}  # fmt: skip
            gap = row.get("gap_closed", {}).get(names[-1])
            gap_text = "—" if gap is None else f"{100 * gap:.0f}%"
            rows.append({"method": method, **cells, "adaptation_delta": f"{row['adaptation_delta']:+.1f}",
                         "gap closed": gap_text, "seeds": len(row["seeds"])})  # fmt: skip
        png = run_dir / "adaptation.png"
        sections.append(Section("Adaptation on held-out tasks (episode return, mean ± std over seeds)", table=rows,
                                figure=png if png.exists() else None))  # fmt: skip
    if transfer_path.exists():
        png = run_dir / "transfer.png"
        sections.append(Section("Transfer (Taylor & Stone metrics)", text=_read(run_dir / "transfer.md"),
                                figure=png if png.exists() else None))  # fmt: skip
    sections.append(Section("Configuration", text=_read(run_dir / "config.yaml")))
    return f"drml rl run: {run_dir.name}", sections


def collect(run_dir: Path) -> tuple[str, list[Section]]:
    """The report's title and sections for ``run_dir``."""
    if is_rl_run(run_dir):
        return collect_rl(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.exists() and ((run_dir / "meta_train.json").exists() or (run_dir / "meta_eval.json").exists()):
        return collect_meta(run_dir)
    if not results_path.exists():
        raise FileNotFoundError(f"{run_dir}: no results.json (not a finished drml run directory)")
    results = json.loads(results_path.read_text(encoding="utf-8"))
    is_search = (run_dir / "trials.csv").exists()
    name = run_dir.name
    summary = [
        {"split": split, "entity F1": f"{_f1(results[split]):.4f}",
         "precision": f"{results[split]['entity']['micro']['precision']:.4f}",
         "recall": f"{results[split]['entity']['micro']['recall']:.4f}"}
        for split in ("dev", "test") if split in results
    ]  # fmt: skip
    sections = [Section("Scores of the best model (entity level, seqeval strict IOB2)", table=summary)]
    if is_search:
        with (run_dir / "trials.csv").open(encoding="utf-8") as handle:
            trials = list(csv.DictReader(handle))
        tune = results.get("tune", {})
        sections.append(
            Section(
                f"Trials (best: {results.get('best_trial')}; {tune.get('trial_epochs', '?')} trial-epochs "
                f"in {tune.get('wall_s', 0):.0f} s)",
                table=trials,
                figure=run_dir / "trials.png" if (run_dir / "trials.png").exists() else None,
            )
        )
    history = results.get("history") or []
    if history:
        sections.append(Section("Training curves", figure=_curves_png(history, run_dir / "report_curves.png")))
    for split in ("dev", "test"):
        text = _read(run_dir / f"report_{split}.txt")
        if text:
            sections.append(Section(f"{split} reports", text=text))
    config = _read(run_dir / ("best_config.yaml" if is_search else "config.yaml"))
    sections.append(Section("Best configuration" if is_search else "Configuration", text=config))
    title = f"drml {'tune' if is_search else 'finetune'} run: {name}"
    return title, sections


def _html_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}img{max-width:100%}"""

# Counts the figures the browser decoded; the report test reads it back from headless Chromium.
_SCRIPT = """window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.figures=imgs.length;
document.body.dataset.rendered=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;});"""


def render_html(title: str, sections: list[Section]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body><h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.table:
            parts.append(_html_table(section.table))
        if section.figure is not None:
            data = base64.b64encode(section.figure.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{html.escape(section.figure.name)}' src='data:image/png;base64,{data}'>")
        if section.text:
            parts.append(f"<pre>{html.escape(section.text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        if section.table:
            parts.append(_md_table(section.table))
        if section.figure is not None:
            parts.append(f"![{section.figure.stem}]({section.figure.name})")
        if section.text:
            parts.append(f"```\n{section.text.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    title, sections = collect(run_dir)
    html_path, md_path = run_dir / "report.html", run_dir / "report.md"
    atomic_write_text(html_path, render_html(title, sections))
    atomic_write_text(md_path, render_markdown(title, sections))
    return html_path, md_path
