"""``drml data``: the corpora drml-ray fetches by name, and a corpus file's inspection and conversion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from drml_ray.cli_support import ColumnsOption, file_to_write, parse_columns, user_errors
from drml_ray.errors import RunExistsError, UserError
from drml_ray.text import counted, shell

if TYPE_CHECKING:
    from drml_ray.config import DataConfig
    from drml_ray.data.reader import Columns

data_app = typer.Typer(help="Corpora: list, fetch into the cache, convert between formats.", no_args_is_help=True)


@data_app.command("list")
@user_errors
def data_list() -> None:
    """The corpora drml-ray can fetch by name, and whether each is in the cache."""
    from drml_ray.data.fetch import cached_paths, data_dir
    from drml_ray.data.registry import CORPORA

    typer.echo(f"cache: {data_dir()}  (DRML_DATA_DIR)   mirror: {os.environ.get('DRML_DATA_MIRROR') or '-'}")
    for spec in CORPORA.values():
        state = "cached" if cached_paths(spec) else "not cached"
        typer.echo(f"{spec.name:22} {state:11} {spec.scheme}  {spec.description}; licence: {spec.licence}")
    typer.echo(f"{'generated':22} {'built-in':11} iob2  template sentences (PER, ORG, LOC, MISC) for tests")


@data_app.command(
    "fetch", epilog="Examples: `drml data fetch crossner_politics` · `drml data fetch conll2003 --source ~/conll`"
)
@user_errors
def data_fetch(
    name: Annotated[str, typer.Argument(help="A corpus name (drml data list), or 'crossner' for all five domains.")],
    source: Annotated[
        str | None, typer.Option(help="A folder or URL holding the files (beats DRML_DATA_MIRROR).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Fetch again even if cached.")] = False,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Cache folder [default: DRML_DATA_DIR].")
    ] = None,
) -> None:
    """Download (or copy from a mirror) a corpus into the cache, verifying sha256."""
    from drml_ray.data.fetch import fetch
    from drml_ray.data.registry import CROSSNER_DOMAINS, get_spec

    if output_dir is not None:
        os.environ["DRML_DATA_DIR"] = str(output_dir)
    names = [f"crossner_{d}" for d in CROSSNER_DOMAINS] if name == "crossner" else [name]
    for corpus in names:
        paths = fetch(get_spec(corpus), source=source, force=force)
        for split, path in paths.items():
            typer.echo(f"{corpus} {split}: {path}")


@data_app.command(
    "inspect",
    epilog="Examples: `drml data inspect ../shared/data/conll2003/eng.testa` · "
    "`drml data inspect data/clinical` (a task folder: `train.*`, `dev.*`, `test.*`) · "
    "`drml data inspect crossner_ai` · `drml data inspect configs/ner/smoke.yaml` (its data) · "
    "`drml data inspect runs/irl` (every demonstrations file of an inverse-RL run)",
)
@user_errors
def data_inspect(
    files: Annotated[list[Path], typer.Argument(help="CoNLL or Parquet corpus files, task folders, corpus names "
                                                     "(drml data list), fine-tuning experiment files or run "
                                                     "directories (their data), demonstrations files "
                                                     "(transitions.parquet) or folders holding them.")],
    columns: ColumnsOption = None,
) -> None:  # fmt: skip
    """Sentences, tokens and entities per type of a corpus file (or of each split of a corpus), the tag scheme it
    follows, and problems found; for demonstrations, their episodes, steps, ends and true returns."""
    picked = parse_columns(columns)
    for path in files:
        typer.echo(_inspect(path, picked))


def _inspect(path: Path, columns: Columns | None = None) -> str:
    """What ``drml data inspect`` prints for one argument."""
    from drml_ray.data.inspect import format_inspection, inspect_file
    from drml_ray.irl.demos import describe, is_demonstrations

    if path.is_dir():
        return _inspect_folder(path, columns)
    if not path.is_file():
        from drml_ray.config import DataConfig
        from drml_ray.data.registry import CORPORA, unknown_corpus

        name = str(path)
        if name == "generated" or name in CORPORA:
            return _inspect_corpus(DataConfig(corpus=name))
        raise UserError(f"{path}: no such file" if "/" in name or path.suffix else unknown_corpus(name))
    if path.suffix in (".yaml", ".yml"):
        return _inspect_experiment(path, columns)
    return describe(path) if is_demonstrations(path) else format_inspection(inspect_file(path, columns))


def _inspect_folder(folder: Path, columns: Columns | None) -> str:
    """Every demonstrations file under ``folder``, else the three split files of a task folder, else the Parquet
    corpus files in it as one corpus."""
    from drml_ray.data.formats import table_files
    from drml_ray.data.inspect import format_inspection, inspect_file
    from drml_ray.data.load import folder_splits
    from drml_ray.irl.demos import is_demonstrations

    found = sorted(p for p in folder.rglob("*.parquet") if is_demonstrations(p))
    if found:
        return "\n".join(_inspect(p) for p in found)
    if (folder / "config.yaml").is_file():  # a run directory: the data of its experiment
        return _inspect_experiment(folder / "config.yaml", columns)
    for above in list(folder.resolve().parents)[:3]:  # (an expert's rllib/: RLlib's recording, for its BC)
        beside = next((p for p in sorted(above.glob("*.parquet")) if is_demonstrations(p)), None)
        if beside is not None:
            raise UserError(f"{folder}: RLlib's own recording of demonstrations (RLlib's BC reads it); drml's "
                            f"copy of the same episodes: drml data inspect {shell(beside)}")  # fmt: skip
    try:
        splits = folder_splits(folder)
    except ValueError:
        if table_files(folder):  # corpus files (a split's on the Hub, drml serve --log-requests): one corpus
            return format_inspection(inspect_file(folder, columns))
        raise UserError(f"{folder}: holds no demonstrations (transitions.parquet of drml rl expert), is no task "
                        "folder (one train.*, dev.* or valid.*, and test.* file) and holds no .parquet files; name the "
                        f"corpus files themselves: drml data inspect {shell(folder)}/*") from None  # fmt: skip
    return "\n".join(_inspect(Path(p), columns) for p in splits.values())


def _inspect_experiment(path: Path, columns: Columns | None) -> str:
    """Each split of a fine-tuning experiment's data, as :func:`_inspect_corpus`."""
    from drml_ray.data.load import experiment_data

    if columns is not None:
        raise UserError(f"--columns picks columns of a corpus file or a task folder's; {path} is read as its data "
                        "section lays it out (data.columns)")  # fmt: skip
    return _inspect_corpus(experiment_data(path, "drml data inspect")[1])


def _inspect_corpus(data: DataConfig) -> str:
    """Each split of ``data`` (a file inspected as it is on disk, the generated corpus as generated), and a dev or
    test entity type that train never has (the model cannot predict it)."""
    from drml_ray.data.inspect import format_inspection, inspect_file, inspect_sentences
    from drml_ray.data.load import load_corpus

    corpus = load_corpus(data)
    reports = {split: inspect_sentences(f"generated {split}", sentences) if corpus.sources[split] == "generated"
               else inspect_file(corpus.sources[split], data.read_columns)
               for split, sentences in corpus.splits.items()}  # fmt: skip
    for split in ("dev", "test"):
        if unseen := sorted(set(reports[split].entities) - set(reports["train"].entities)):
            reports[split].problems.append(
                f"{counted(len(unseen), 'type')} the train split never has, so the model "
                f"cannot predict them (their entities count as misses): {', '.join(unseen)}"
            )
    return "\n".join(format_inspection(report) for report in reports.values())


NOT_WRITTEN = {".json": "JSON", ".jsonl": "JSON lines", ".csv": "CSV", ".arrow": "Arrow", ".feather": "Feather",
               ".xlsx": "a spreadsheet", ".yaml": "YAML", ".yml": "YAML"}  # fmt: skip
"""Output names for formats ``drml data convert`` does not write (CoNLL columns in them would mislead)."""


DEST_HELP = ("Output: .parquet or .pq for Parquet, .conll, .txt, .tsv or another for CoNLL columns (.gz, .bz2 or .xz "
             "after it: compressed).")  # fmt: skip


@data_app.command("convert", epilog="Example: `drml data convert eng.train train.parquet --from-scheme iob1`")
@user_errors
def data_convert(
    source: Annotated[Path, typer.Argument(help="A CoNLL or Parquet corpus file, or a folder of Parquet files.")],
    dest: Annotated[Path, typer.Argument(help=DEST_HELP)],
    from_scheme: Annotated[
        str,
        typer.Option(help="Tag scheme of SOURCE: iob1, iob2 or auto (IOB1 if its entities start with I-, said so)."),
    ] = "auto",
    columns: ColumnsOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace DEST if it exists.")] = False,
) -> None:
    """Convert a corpus between CoNLL columns and Parquet; IOB1 and BIOES-style input is rewritten as IOB2."""
    from drml_ray.data.conll import write_conll
    from drml_ray.data.formats import PARQUET_NAMES, compressed_parquet, plain_suffix
    from drml_ray.data.load import read_files
    from drml_ray.data.parquet import write_parquet

    if from_scheme not in ("iob1", "iob2", "auto"):
        raise UserError(f"--from-scheme must be iob1, iob2 or auto, not {from_scheme!r}")
    kind = plain_suffix(dest)  # (train.conll.gz: gzip-compressed CoNLL columns)
    if kind in NOT_WRITTEN or compressed_parquet(dest):
        what = NOT_WRITTEN.get(kind, "compressed Parquet (Parquet compresses its own columns: name it .parquet)")
        raise UserError(f"{dest}: drml writes corpora as Parquet (.parquet) or CoNLL columns (.conll, .txt, .tsv), "
                        f"not {what}")  # fmt: skip
    file_to_write(dest, source.name, [source])
    if dest.exists() and not overwrite:
        raise RunExistsError(f"{dest} exists; pass --overwrite to replace it")
    scheme = None if from_scheme == "auto" else from_scheme
    [sentences] = read_files([str(source)], scheme, parse_columns(columns))  # type: ignore[arg-type]
    (write_parquet if dest.suffix.lower() in PARQUET_NAMES else write_conll)(dest, sentences)
    typer.echo(f"[drml] {counted(len(sentences), 'sentence')} -> {dest} (IOB2)")
