"""``drml report RUN_DIR``: one self-contained ``report.html`` and a ``report.md`` for any finished run.

Reads only what a run leaves on disk (``config.yaml``, ``results.json``, ``report_{dev,test}.txt``,
and for searches ``trials.csv`` / ``trials.png``), so it works on a copy of a run directory without
Ray. Figures are drawn with matplotlib; the HTML inlines them as data URIs (one file to mail or attach),
the Markdown links the PNG files written beside it.
"""

from __future__ import annotations

import base64
import csv
import functools
import html
import logging
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from drml_ray.errors import UserError
from drml_ray.runtime.runfiles import atomic_write_text, read_json
from drml_ray.text import shell


@dataclass
class Section:
    title: str
    text: str = ""
    """Preformatted text (config, seqeval tables)."""
    table: list[dict[str, Any]] = field(default_factory=list)
    figure: Path | None = None
    html: str = ""
    """Markup of the section's own (the highlighted sentences), with ``markdown`` its form in report.md."""
    markdown: str = ""


def markdown_section(title: str, path: Path, figure: Path | None = None) -> Section:
    """A section from a Markdown file of tables and paragraphs (``irl.md``, ``adaptation.md``): as it is in
    report.md, as HTML tables and paragraphs in report.html."""
    text = _read(path)
    return Section(title, figure=figure if figure is not None and figure.exists() else None,
                   html=markdown_html(text), markdown=text.rstrip())  # fmt: skip


def markdown_html(text: str) -> str:
    r"""Pipe tables and paragraphs (blocks between blank lines), ``**bold**`` kept; everything else escaped.

    >>> table, paragraph = markdown_html("| a | b |\n|---|---|\n| 1 | **2** |\n\nSee <this>.").split("\n")
    >>> table
    '<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td><b>2</b></td></tr></tbody></table>'
    >>> paragraph
    '<p>See &lt;this&gt;.</p>'
    """
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if lines and all(line.lstrip().startswith("|") for line in lines):
            rows = [_cells(line) for line in lines if not re.fullmatch(r"\s*\|(\s*:?-{3,}:?\s*\|)+\s*", line)]
            out.append(_table_markup(rows[0], rows[1:]))
        elif block.strip():
            out.append(f"<p>{_inline(block.strip())}</p>")
    return "\n".join(out)


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


def _cells(line: str) -> list[str]:
    return [_inline(cell.strip()) for cell in line.strip().strip("|").split("|")]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Noto Sans Arabic", "Noto Sans Hebrew",
                  "Noto Sans Devanagari", "Noto Sans Thai")  # fmt: skip
"""Fonts a figure falls back to, where installed, for an entity type or task name DejaVu Sans cannot draw."""


def subplots(*args: Any, **kwargs: Any) -> Any:
    """``matplotlib.pyplot.subplots`` on the Agg backend (files only: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["font.family"] = _font_families()
    return plt.subplots(*args, **kwargs)


@functools.cache
def _font_families() -> list[str]:
    """DejaVu Sans, then the :data:`FALLBACK_FONTS` installed here (looked up once a process)."""
    from matplotlib import font_manager

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # ("no weight normal for WenQuanYi": 500)
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(f for f in FALLBACK_FONTS if f in installed)]


def save_figure(fig: Any, path: Path, dpi: int | None = None) -> Path:
    """Write a matplotlib figure to ``path`` atomically (a temporary file, then a rename) and close it. Characters
    no installed font draws show as boxes, said in one line naming the figure (not a warning per character)."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.tight_layout()
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    missing = [w for w in caught if "missing from font" in str(w.message)]
    for warning in (w for w in caught if w not in missing):
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if missing:
        print(f"[drml] {path.name}: a label holds characters no installed font draws (boxes in the figure, the text "
              "in the report's tables; fonts-noto-cjk and the like draw them)", file=sys.stderr)  # fmt: skip
    return path


def curves_png(history: list[dict[str, Any]], path: Path) -> Path:
    """Dev entity F1 (and test's, when recorded) and train loss over epochs (a finetune run's ``history``)."""
    epochs = [h["epoch"] for h in history]
    fig, left = subplots(figsize=(7, 4), dpi=110)
    left.plot(epochs, [h["dev_f1"] for h in history], marker="o", color="tab:blue", label="dev entity F1")
    if all("test_f1" in h for h in history):  # ``train.eval_test``
        left.plot(epochs, [h["test_f1"] for h in history], marker="^", color="tab:green", label="test entity F1")
        left.legend(loc="lower center")
    left.set_xlabel("epoch")
    left.set_ylabel("entity F1", color="tab:blue")
    right = left.twinx()
    right.plot(epochs, [h["train_loss"] for h in history], marker="s", color="tab:red", label="train loss")
    right.set_ylabel("train loss", color="tab:red")
    left.grid(alpha=0.3)
    left.set_title("training curves")
    return save_figure(fig, path)


def _not_a_run(folder: Path) -> str:
    """What ``folder``, which holds no run (no ``config.yaml``), is instead, where drml can tell."""
    if (folder / "config.json").is_file() and (folder.parent / "config.yaml").is_file():
        return f"a model folder, not a run; its run directory is {folder.parent}"
    runs = sorted(child.name for child in folder.iterdir() if (child / "config.yaml").is_file())
    if runs:
        shown = ", ".join(runs[:5]) + (", ..." if len(runs) > 5 else "")
        return (f"a folder of {len(runs)} run(s) ({shown}), not a run: report each (drml report "
                f"{shell(folder / runs[0])}), or see their curves together with drml tensorboard {shell(folder)}"
                )  # fmt: skip
    return "no config.yaml, so no results.json either: not a drml run directory"


def collect(run_dir: Path) -> tuple[str, list[Section]]:
    """The report's title and sections for ``run_dir``: the trials of a search, the sections its experiment
    kind writes (:mod:`drml_ray.runtime.registry`), and the configuration; or the scores of ``drml evaluate``."""
    from drml_ray.config import load_config
    from drml_ray.runtime.registry import kind_of, resolve

    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: {'a file, not a run directory' if run_dir.exists() else 'no such folder'}")
    if not (run_dir / "config.yaml").exists() and any(run_dir.glob("eval_*.json")):
        from drml_ray.ner.results import evaluation_report

        return evaluation_report(run_dir)  # (drml evaluate's folder)
    if not (run_dir / "config.yaml").exists():
        raise UserError(f"{run_dir}: {_not_a_run(run_dir)}")
    kind = kind_of(load_config(run_dir / "config.yaml"))
    search = (run_dir / "trials.csv").exists()
    sections = ([_trials_section(run_dir)] if search else []) + resolve(kind.report)(run_dir)
    if not sections:
        markers = ", ".join(c.marker or "" for c in kind.commands if c.marker)
        raise UserError(f"{run_dir}: nothing finished to report yet (no {markers})")
    config = _read(run_dir / ("best_config.yaml" if search else "config.yaml"))
    sections.append(Section("Best configuration" if search else "Configuration", text=config))
    return f"drml {'tune' if search else kind.name} run: {run_dir.name}", sections


class TuneTotals(TypedDict, total=False):
    trial_epochs: float
    wall_s: float


class SearchResults(TypedDict, total=False):
    """What the trials section reads of a search's ``results.json``."""

    best_trial: str
    tune: TuneTotals


def _trials_section(run_dir: Path) -> Section:
    with (run_dir / "trials.csv").open(encoding="utf-8") as handle:
        trials = list(csv.DictReader(handle))
    results = read_json(run_dir / "results.json", schema=SearchResults, default={})
    tune = results.get("tune", {})
    title = (f"Trials (best: {results.get('best_trial', '?')}; {tune.get('trial_epochs', '?')} trial-epochs "
             f"in {tune.get('wall_s', 0):.0f} s)")  # fmt: skip
    shown = [{key: _short(value) for key, value in trial.items()} for trial in trials]
    return Section(title, table=shown, figure=run_dir / "trials.png" if (run_dir / "trials.png").exists() else None)


def _short(cell: str) -> str:
    """A trials.csv cell for reading: a real number to 4 significant digits (the CSV keeps every digit).

    >>> _short("0.36438038772880627"), _short("0.0013004179"), _short("12.16"), _short("32"), _short("completed")
    ('0.3644', '0.0013', '12.16', '32', 'completed')
    """
    try:
        return f"{float(cell):.4g}" if "." in cell or "e" in cell.lower() else cell
    except ValueError:
        return cell


def _html_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    escaped = [[html.escape(str(row.get(c, ""))) for c in columns] for row in rows]
    return _table_markup([html.escape(str(c)) for c in columns], escaped)


def _table_markup(head: list[str], rows: list[list[str]]) -> str:
    """An HTML table of cells already escaped (or marked up)."""
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{''.join(f'<th>{c}</th>' for c in head)}</tr></thead><tbody>{cells}</tbody></table>"


def md_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}img{max-width:100%}
.sent{margin:.8em 0;padding:.5em;border-left:3px solid #ddd;line-height:2.4}.errs{color:#a00;font-size:.85em}
mark.ent{padding:.2em .35em;margin:0 .1em;border-radius:.35em}mark.wrong{outline:2px solid #d00}
.lbl{font-size:.65em;font-weight:bold;text-transform:uppercase;margin-left:.4em;vertical-align:middle}"""

# Counts the figures the browser decoded and the highlighted entities; the report tests read them back from
# headless Chromium.
_SCRIPT = """window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.figures=imgs.length;
document.body.dataset.rendered=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
document.body.dataset.highlights=document.querySelectorAll('mark.ent').length;});"""


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
        parts.append(section.html)
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        if section.table:
            parts.append(md_table(section.table))
        if section.figure is not None:
            parts.append(f"![{section.figure.stem}]({section.figure.name})")
        if section.text:
            parts.append(f"```\n{section.text.rstrip()}\n```")
        if section.markdown:
            parts.append(section.markdown)
    return "\n\n".join(parts) + "\n"


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    title, sections = collect(run_dir)
    html_path, md_path = run_dir / "report.html", run_dir / "report.md"
    atomic_write_text(html_path, render_html(title, sections))
    atomic_write_text(md_path, render_markdown(title, sections))
    return html_path, md_path
