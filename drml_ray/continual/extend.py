"""``drml continual extend RUN_DIR DATA``: one more experience for a finished continual run.

The new experience is the user's labelled file (CoNLL or Parquet; new entity types welcome). It trains like
every other experience of the run, with the run's strategy and its memory (replay buffer, Fisher, the
previous model as teacher), from the model the strategy's last experience left; the row of R it adds scores
every experience so far. The result goes to ``RUN_DIR/best`` (a Hugging Face folder: ``drml predict`` and
``transformers.pipeline`` load it) and to ``continual.json``'s ``extensions``. Extending again continues
from there; the experience's splits, as read, are kept beside its model (``expK/data``), and a later extension
reads those, not the user's files again (a request log folder goes on growing; a file is moved or edited).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drml_ray.cli_support import ColumnsOption, parse_columns
from drml_ray.data.registry import SPLITS
from drml_ray.errors import UserError
from drml_ray.text import shell

if TYPE_CHECKING:  # (drml's CLI imports this module to add the command: the readers load when it runs)
    from drml_ray.continual.config import ContinualExperiment
    from drml_ray.continual.protocols import Experience
    from drml_ray.data.conll import Sentence

BEST = "best"
KEPT_DATA = "data"
"""An extension's train, dev and test splits as read when it was added (``expK/data/SPLIT.parquet``)."""


def add_commands(group: typer.Typer, user_errors: Callable) -> None:
    """``extend``, in the ``drml continual`` group."""

    @group.command("extend", epilog="Example: `drml continual extend runs/continual_domains my_domain.conll "
                                    "--test my_domain_test.conll --strategy replay`")  # fmt: skip
    @user_errors
    def extend(
        run_dir: Annotated[Path, typer.Argument(help="A finished drml continual run directory.")],
        data: Annotated[
            Path,
            typer.Argument(
                help="The new experience's labelled sentences: a CoNLL or Parquet file, a folder of Parquet "
                "files (drml serve --log-requests), or a task folder of train, dev and test files."
            ),
        ],
        dev: Annotated[Path | None, typer.Option(help="Its dev sentences [default: the last 10% of DATA].")] = None,
        test: Annotated[Path | None, typer.Option(help="Its test sentences [default: the dev sentences].")] = None,
        strategy: Annotated[str | None, typer.Option(help="Which of the run's strategies continues.")] = None,
        columns: ColumnsOption = None,
    ) -> None:
        """Add one experience to a finished continual run with the run's strategy; writes RUN_DIR/best."""
        from drml_ray.runtime.rundir import held

        with held(run_dir) if run_dir.is_dir() else contextlib.nullcontext():  # (no folder: run_extend says so)
            run_extend(run_dir, data, dev=dev, test=test, strategy=strategy, columns=columns)


def _strategy(table: dict[str, Any], strategy: str | None, run_dir: Path) -> str:
    names = list(table["strategies"])
    if strategy is None and len(names) == 1:
        return names[0]
    if strategy not in names:
        given = f"--strategy {strategy} is not one of them" if strategy else "name one with --strategy"
        raise UserError(f"{run_dir} ran {', '.join(names)}: {given}")
    return strategy


def read_experience(train: Path, dev: Path | None, test: Path | None, rename: bool, columns: str | None = None,
                    first: dict[str, tuple[int | None, str]] | None = None) -> Experience:  # fmt: skip
    """An :class:`~drml_ray.continual.protocols.Experience` from the user's files (types renamed as the
    domain protocol names them when ``rename``; ``columns`` as ``--columns`` gives them; a split cut to its
    ``first`` sentences, as :func:`run_first` says the run cuts its own experiences)."""
    from drml_ray.continual.protocols import canonical
    from drml_ray.data.load import read_files

    name = train.name
    given = {k: p for k, p in zip(SPLITS, _split_files(train, dev, test), strict=True) if p is not None}
    for path in given.values():  # (a folder is its Parquet files: the request log of drml serve --log-requests)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder")
    read = read_files([str(p) for p in given.values()], columns=parse_columns(columns))
    sentences = {k: canonical(v) if rename else v for k, v in zip(given, read, strict=True)}
    if "dev" not in sentences:
        cut = len(sentences["train"]) - max(1, len(sentences["train"]) // 10)
        sentences["train"], sentences["dev"] = sentences["train"][:cut], sentences["train"][cut:]
        print(f"[drml] {train}: its last {len(sentences['dev'])} sentences are the dev split (give --dev to choose)")
    for split, (n, key) in (first or {}).items():
        if split in sentences and n is not None and len(sentences[split]) > n:
            print(f"[drml] {name}: its first {n:,} of {len(sentences[split]):,} {split} sentences, as the run reads "
                  f"each experience's ({key} in its config.yaml)", flush=True)  # fmt: skip
            sentences[split] = sentences[split][:n]
    sentences.setdefault("test", sentences["dev"])
    return _experience(name, sentences, given["train"])


def run_first(cfg: ContinualExperiment) -> dict[str, tuple[int | None, str]]:
    """How many sentences of each split the run reads of an experience, and the config key that says so."""
    c = cfg.continual
    return {"train": (cfg.data.max_train_sentences, "data.max_train_sentences"),
            "dev": (c.dev_sentences, "continual.dev_sentences"),
            "test": (c.test_sentences, "continual.test_sentences")}  # fmt: skip


def _split_files(data: Path, dev: Path | None, test: Path | None) -> tuple[Path, Path | None, Path | None]:
    """A task folder (``train.*``, ``dev.*``, ``test.*``, as a continual run's own experiences are given) is its
    three files, ``--dev`` and ``--test`` before its own; anything else is read as it is (a folder of Parquet
    files is one corpus: a request log)."""
    from drml_ray.data.formats import table_files
    from drml_ray.data.load import folder_splits

    if not data.is_dir():
        return data, dev, test
    try:
        splits = folder_splits(data)
    except ValueError as e:
        if table_files(data):
            return data, dev, test
        raise UserError(f"{data}: neither a folder of Parquet files (a request log) nor a task folder: {e}") from None
    return Path(splits["train"]), dev or Path(splits["dev"]), test or Path(splits["test"])


def _experience(name: str, sentences: dict[str, list[Sentence]], where: Path) -> Experience:
    """The experience; it shares its dev and test predictions with another only where their sentences are the
    same (its key their hash: two extensions from one file, grown or rewritten in between, are two)."""
    from drml_ray.continual.protocols import Experience
    from drml_ray.continual.strategies import sentence_types
    from drml_ray.data.load import digest

    types = sorted({kind for s in sentences["train"] for kind in sentence_types(s)})
    if not types or not sentences["train"]:
        raise UserError(f"{where}: no labelled entity to learn from")
    dev, test = (_scored(sentences[split], types, split, where) for split in ("dev", "test"))
    key = f"extension {digest(dev)} {digest(test)}"
    return Experience(name, types, sentences["train"], dev, test, sentences["train"], key)


def _scored(sentences: list[Sentence], types: list[str], split: str, where: Path) -> list[Sentence]:
    """The dev or test sentences with only ``types`` labelled: an experience is scored on the types it teaches
    (another's entities would count as misses the model is never asked for)."""
    from drml_ray.continual.strategies import sentence_types
    from drml_ray.meta.tasks import keep_types

    others = sorted({kind for s in sentences for kind in sentence_types(s)} - set(types))
    if others:
        print(f"[drml] {where}: the {split} split's {', '.join(others)} entities are not scored (the training "
              f"sentences teach {', '.join(types)})", flush=True)  # fmt: skip
    return keep_types(sentences, set(types)) if others else sentences


def _earlier(run_dir: Path, record: dict[str, Any], rename: bool) -> Experience:
    """An extension added before: its kept splits (from before they were kept, the user's files read again)."""
    from drml_ray.data.parquet import read_parquet

    if "data" not in record:
        return read_experience(Path(record["train"]), _path(record["dev"]), _path(record["test"]), rename,
                               record.get("columns"))  # fmt: skip
    files = _kept_files(run_dir / record["data"])
    gone = [str(path) for path in files.values() if not path.is_file()]
    if gone:
        raise UserError(f"{run_dir}: extension {record['experience']!r}'s data are gone ({', '.join(gone)}); "
                        "they are kept in the run directory for the next extension")  # fmt: skip
    return _experience(record["experience"], {s: read_parquet(f) for s, f in files.items()}, files["train"])


def _keep(exp_dir: Path, new: Experience) -> Path:
    """Keep the new experience's splits in ``exp_dir`` (the folder returned); an unfinished extension there on
    other data is started again (its checkpoints learned from the other)."""
    from drml_ray.data.load import digest
    from drml_ray.data.parquet import read_parquet, write_parquet

    kept = exp_dir / KEPT_DATA
    files = _kept_files(kept)
    if exp_dir.exists():
        if all(f.is_file() and digest(read_parquet(f)) == digest(getattr(new, s)) for s, f in files.items()):
            return kept
        print(f"[drml] {exp_dir} held an unfinished extension on other data: it starts again", flush=True)
        shutil.rmtree(exp_dir)
    for split, path in files.items():
        write_parquet(path, getattr(new, split))
    return kept


def _kept_files(folder: Path) -> dict[str, Path]:
    """Where an extension's splits are kept: ``folder/SPLIT.parquet`` (a task folder)."""
    return {split: folder / f"{split}.parquet" for split in SPLITS}


def run_extend(run_dir: str | Path, data: Path, *, dev: Path | None = None, test: Path | None = None,
               strategy: str | None = None, columns: str | None = None) -> dict[str, Any]:  # fmt: skip
    from drml_ray.continual.driver import STRATEGY_DIR, StrategyRun, planned_runs
    from drml_ray.continual.results import CONTINUAL_FILE
    from drml_ray.runtime.runfiles import atomic_write_json, replace_dir

    run_dir = Path(run_dir).expanduser().resolve()
    cfg, table, found = _finished_run(run_dir)
    name = _strategy(table, strategy, run_dir)
    rename = cfg.continual.protocol == "domain"
    found += [_earlier(run_dir, e, rename) for e in table.get("extensions", []) if e["strategy"] == name]
    new = read_experience(Path(data).resolve(), dev and dev.resolve(), test and test.resolve(), rename, columns,
                          run_first(cfg))  # fmt: skip
    folder = run_dir / STRATEGY_DIR / name
    kept = _keep(folder / f"exp{len(found) + 1}", new)
    strategy_name, start = planned_runs(cfg)[name]
    result = StrategyRun(cfg, strategy_name, start, [*found, new], folder).run()
    tmp = run_dir / f".{BEST}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(result["model"], tmp)
    replace_dir(tmp, run_dir / BEST)
    record = {"strategy": name, "experience": new.name, "types": new.types, "train": str(Path(data).resolve()),
              "dev": str(dev.resolve()) if dev else None, "test": str(test.resolve()) if test else None,
              "columns": columns, "data": str(kept.relative_to(run_dir)),
              "R": result["R"][-1], "labels": result["labels"], "model": BEST}  # fmt: skip
    table.setdefault("extensions", []).append(record)
    atomic_write_json(run_dir / CONTINUAL_FILE, table)
    scores = zip([e.name for e in [*found, new]], record["R"], strict=True)
    print("[drml] test entity F1 after the new experience: " + ", ".join(f"{n} {f:.4f}" for n, f in scores))
    print(f"[drml] the extended model is {run_dir / BEST} (drml predict {shell(run_dir / BEST)} --text ...)")
    return record


def _finished_run(run_dir: Path) -> tuple[Any, dict[str, Any], list[Experience]]:
    """The finished run's config, ``continual.json`` and experiences, these checked to be what it trained on."""
    from drml_ray.config import load_config
    from drml_ray.continual.config import ContinualExperiment
    from drml_ray.continual.driver import experience_digests
    from drml_ray.continual.protocols import experiences
    from drml_ray.continual.results import CONTINUAL_FILE, ContinualTable
    from drml_ray.runtime.rundir import check_same_inputs
    from drml_ray.runtime.runfiles import read_json

    if not (run_dir / CONTINUAL_FILE).is_file():
        searches = [run_dir, run_dir.parent.parent] if run_dir.parent.name == "tune" else [run_dir]  # (a trial's)
        search = next((d for d in searches if (d / "best_config.yaml").is_file()), None)
        then = "run drml continual first"
        if search is not None:
            then = (f"this is drml tune's: run the search's best configuration (drml continual "
                    f"{search / 'best_config.yaml'}), then extend that run")  # fmt: skip
        raise UserError(f"{run_dir}: no finished continual run there ({CONTINUAL_FILE}); {then}")
    cfg = load_config(run_dir / "config.yaml", model=ContinualExperiment)
    found = experiences(cfg)
    check_same_inputs(run_dir, experience_digests(found), then="an extension replays and scores the experiences "
                      "the run learned: restore them, or run drml continual again")  # fmt: skip
    return cfg, read_json(run_dir / CONTINUAL_FILE, schema=ContinualTable), found


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
