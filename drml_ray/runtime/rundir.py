"""The run-directory contract, the same for every command that writes one.

A run directory is ``runs/<experiment name>`` unless ``--output-dir`` says otherwise; names carry
no timestamps, so the same config always lands in the same place. One command at a time writes into a run
directory (:func:`held`: a second is refused, naming the first). :func:`open_run`:

1. a *finished* run (its result file, written last, exists) is never replaced without ``--overwrite``;
2. ``--overwrite`` empties the folder first, if drml made it a run directory (:data:`RUN_STAMP`): never a folder
   of the user's own files, nor one holding what the command reads (the model ``drml evaluate`` scores);
3. an unfinished run is continued from its checkpoints, but only with the same config: ``config.yaml``
   is compared key by key (apart from ``free`` keys, which choose what runs, not how) and a
   difference is refused with the keys named; so are ``inputs`` whose content changed (an edited corpus file:
   ``inputs.json`` keeps a hash of each);
4. a run of another kind (the stamp names it: ``finetune``, ``meta``, ..., ``evaluation``) is not written into;
5. ``config.yaml`` is (re)written; every file is written atomically (a temporary file and a rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from drml_ray.config import BUILT_IN_BACKBONES, dump_config
from drml_ray.errors import RunExistsError, RunInterrupted, UserError, first_line  # noqa: F401  (re-exported)
from drml_ray.runtime.runfiles import atomic_write_json, atomic_write_text, read_json
from drml_ray.text import counted, first_few

log = logging.getLogger(__name__)

FINISHED_MARKER = "results.json"
META_TRAIN_FILE = "meta_train.json"
"""The result file of ``drml meta-train`` and ``drml rl meta-train``."""


def default_run_dir(name: str) -> Path:
    """``runs/<name>`` under the current folder."""
    return Path("runs") / name


def short_name(path: str | os.PathLike[str]) -> str:
    """A model's or a data file's name in a run directory's name: the last two parts of its path (``runs`` and a
    run's ``best`` left out), so that models or files of one name in different folders are told apart.

    >>> [short_name(p) for p in ["/w/runs/smoke/best", "/w/runs/meta/reptile", "/w/conll2003/eng.testa", "/w/c/best"]]
    ['smoke', 'meta-reptile', 'conll2003-eng.testa', 'w-c']
    """
    parts = [part for part in Path(path).resolve().parts[1:] if part]
    parts = parts[:-1] if parts[-1:] == ["best"] else parts
    return "-".join(part for part in parts[-2:] if part != "runs") or "root"


def open_run(
    run_dir: str | os.PathLike[str], cfg: Any = None, *, marker: str | None = FINISHED_MARKER,
    overwrite: bool = False, free: Sequence[str] = (), inputs: Mapping[str, str] | None = None,
    reads: Sequence[str | os.PathLike[str]] = (),
) -> Path:  # fmt: skip
    """Create or reopen ``run_dir`` (returned absolute) under the contract above; ``marker`` ``None``: a
    command that fills a table cell by cell and is never finished (``drml meta-eval``). ``inputs``: what the run
    reads, each named with a hash of its content (:func:`check_same_inputs`). ``reads``: files and folders the
    command reads besides those ``cfg`` names (``--overwrite`` deletes none of them); ``cfg`` ``None``: an
    evaluation (``drml evaluate``), no experiment."""
    path = Path(run_dir).expanduser().resolve()
    make_run_dir(path)
    if in_job_upload(path):
        log.warning("%s is inside the copy of the working folder that `ray job submit --working-dir` uploaded (the "
                    "job's current folder): Ray deletes it when its cache needs the room, and no other job sees it; "
                    "pass --output-dir a folder you keep (on a cluster, storage every node sees)", path)  # fmt: skip
    if marker is not None and (path / marker).exists() and not overwrite:
        raise RunExistsError(
            f"{path} holds a finished run ({marker} exists); pass --overwrite to replace it "
            "or --output-dir to write elsewhere"
        )
    kind = _kind(cfg)
    if overwrite:
        _refuse_deleting_inputs(path, [*_paths_in(cfg), *reads])
        _empty_run_dir(path, marker, cfg)
    else:  # (a finished run of ``marker`` was refused above)
        _refuse_a_folder_of_others(path, cfg)
        _refuse_another_kind(path, kind)
    if cfg is not None:
        written = path / "config.yaml"
        if written.exists():
            check_same_config(written, cfg, free)
            print(f"[drml] {path}: continuing the run found there")
        atomic_write_text(written, dump_config(cfg))
    if inputs:
        check_same_inputs(path, inputs)
    atomic_write_text(path / RUN_STAMP, kind)  # (last: a folder whose config.yaml or inputs were refused is no run)
    return path


RUN_STAMP = ".drml-run"
"""A file in every folder :func:`open_run` made a run directory, naming its kind (:func:`_kind`; empty before
drml named it): ``--overwrite`` empties only such a folder, and a command of another kind writes nothing there."""
EVALUATION = "evaluation"
"""The kind of a ``drml evaluate`` folder in its :data:`RUN_STAMP`."""


def _kind(cfg: Any) -> str:
    """What a run of ``cfg`` is, as its :data:`RUN_STAMP` names it: its experiment kind (``finetune``, ``meta``,
    ...), or :data:`EVALUATION` where there is no config."""
    from drml_ray.runtime.registry import kind_of

    return EVALUATION if cfg is None else kind_of(cfg).name


def _refuse_another_kind(path: Path, kind: str) -> None:
    """A run directory of another kind is not written into: ``drml evaluate -o`` a fine-tuning run replaced its
    test report and predictions with the evaluation's."""
    there = _stamped_kind(path)
    if there and there != kind:
        raise RunExistsError(f"{path} holds a run of {_commands(there)}, not of {_commands(kind)}; pass "
                             "--output-dir another folder (or --overwrite to replace that run)")  # fmt: skip


def _stamped_kind(path: Path) -> str:
    """The kind :data:`RUN_STAMP` names; for a run from before it named one, its ``config.yaml``'s, or an
    evaluation's where it has none and its scores (``""``: none)."""
    from drml_ray.runtime.registry import kind_of_data

    stamp = path / RUN_STAMP
    there = stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else ""
    if not there and (path / "config.yaml").is_file():
        with contextlib.suppress(RunExistsError):
            there = kind_of_data(_written_config(path / "config.yaml")).name
    elif not there and stamp.is_file() and any(path.glob("eval_*.json")):
        there = EVALUATION
    return there


def _commands(kind: str) -> str:
    """The commands that write a run of ``kind``: ``drml meta-train, drml meta-eval``."""
    from drml_ray.runtime.registry import kind_named

    if kind == EVALUATION:
        return "drml evaluate"
    with contextlib.suppress(StopIteration):  # (a stamp edited by hand names no kind)
        return ", ".join(f"drml {c.name}" for c in kind_named(kind).commands)
    return kind


def _paths_in(cfg: Any) -> list[Path]:
    """The files and folders ``cfg`` names (a config holds them absolute: corpus files, task folders, a local
    backbone)."""
    values = list(_flat(cfg.model_dump(mode="json")).values()) if cfg is not None else []
    found = [item for v in values for item in (v if isinstance(v, list) else [v])]
    return [Path(v) for v in found if isinstance(v, str) and os.path.isabs(v) and os.path.exists(v)]


def _refuse_deleting_inputs(path: Path, reads: Sequence[str | os.PathLike[str]]) -> None:
    """``--overwrite`` of a folder holding what the command reads would delete it before it is read (the model
    ``drml evaluate`` scores, a backbone fine-tuned again): refused, nothing deleted. The folder itself is no such
    input (``irl.experts_dir`` names the run directory that ``drml rl expert`` fills)."""
    found = [(Path(r), Path(r).expanduser().resolve()) for r in reads if os.path.exists(r)]
    inside = [given for given, at in found if at != path and at.is_relative_to(path)]
    if inside:
        raise UserError(f"{path}: --overwrite would delete {inside[0]}, which this command reads: nothing was "
                        "deleted; pass --output-dir another folder")  # fmt: skip


def _empty_run_dir(path: Path, marker: str | None, cfg: Any) -> None:
    """Empty ``path`` for ``--overwrite`` (all but the lock that :func:`held` holds there), if it is a run directory:
    :data:`RUN_STAMP`, or (a run from before the stamp) its result file beside a ``config.yaml`` that is a config of
    ``cfg``'s kind. Any other folder is the user's: its files are never deleted (``--output-dir .`` in a project's
    folder, a data folder)."""
    children = [child for child in path.iterdir() if child.name != LOCK_FILE]
    legacy = marker is not None and (path / marker).exists() and _is_config(path / "config.yaml", cfg)
    if children and not (path / RUN_STAMP).exists() and not legacy:
        raise UserError(
            f"{path}: --overwrite empties only a run directory drml made, and this folder is none (it "
            f"holds {_some(children)}): nothing was deleted; pass --output-dir a new or empty folder"
        )
    for child in children:
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _refuse_a_folder_of_others(path: Path, cfg: Any) -> None:
    """A folder that holds files but is no run directory (no :data:`RUN_STAMP`; from before the stamp, no
    ``config.yaml`` of ``cfg``'s kind) is the user's: a run is not written among its files (a model folder,
    ``--output-dir .`` in a project), where a later ``--overwrite`` would empty it as a run's."""
    children = [child for child in path.iterdir() if child.name != LOCK_FILE]
    if children and not (path / RUN_STAMP).exists() and not _is_config(path / "config.yaml", cfg):
        raise UserError(f"{path}: holds files drml did not write ({_some(children)}): a run directory is a new or "
                        "empty folder, or one drml made; pass --output-dir another folder")  # fmt: skip


def _some(children: list[Path]) -> str:
    """The first three of a folder's entries by name, a folder's with a ``/``."""
    return first_few(sorted(child.name + "/" * child.is_dir() for child in children))


def _is_config(path: Path, cfg: Any) -> bool:
    """Whether ``path`` holds a config of ``cfg``'s kind (``False`` where ``cfg`` is ``None``)."""
    if cfg is None:
        return False
    try:
        type(cfg).model_validate(_written_config(path))
    except (RunExistsError, ValueError):
        return False
    return True


INPUTS_FILE = "inputs.json"
"""What a run reads, each input's name and a hash of its content: checked when the run is continued."""


def file_digest(path: str | os.PathLike[str]) -> str:
    """A hash of a file's bytes (an input that is read as a whole: demonstrations)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


RESTART = "pass --overwrite to start again, or --output-dir to keep this run"


def check_same_inputs(path: Path, inputs: Mapping[str, str], then: str = RESTART) -> None:
    """Refuse to continue the run in ``path`` on an input whose content is not what the run began on (an edited
    corpus file: the checkpoints learned from the other), naming it and saying what ``then``; record ``inputs``
    otherwise."""
    written = path / INPUTS_FILE
    began = read_json(written, dict, schema=dict[str, str], default={})
    changed = [name for name, digest in inputs.items() if began.get(name, digest) != digest]
    if changed:
        raise UserError(f"{path}: {'; '.join(changed)} changed since this run began ({INPUTS_FILE} keeps a hash of "
                        f"what it read); {then}")  # fmt: skip
    atomic_write_json(written, began | dict(inputs))


def make_run_dir(path: Path) -> None:
    """``path`` made if missing and checked to take files, or a :class:`UserError` saying why not."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: the output directory is a file; pass --output-dir a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{path}: cannot create the run directory ({err.strerror})") from None
    try:  # a folder that exists but takes no files (permissions, a read-only or immutable mount)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as err:
        raise UserError(f"{path}: cannot write into the run directory ({err.strerror})") from None


LOCK_FILE = ".drml.lock"


def in_job_upload(path: Path) -> bool:
    """Whether ``path`` lies in this process's current folder and that folder is the working folder ``ray job submit
    --working-dir`` uploaded (Ray tells a job's driver its runtime environment in ``RAY_JOB_CONFIG_JSON_ENV_VAR``)."""
    try:
        job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
        uploaded = bool((job.get("runtime_env") or {}).get("working_dir"))
    except (ValueError, AttributeError):
        return False
    return uploaded and path.is_relative_to(Path.cwd().resolve())


@contextlib.contextmanager
def held(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``run_dir`` while one command writes into it: a second drml command there (another terminal, a job
    submitted twice) is refused, naming the first, rather than writing into the same checkpoints. An ``flock`` on
    ``run_dir/.drml.lock``, released (and the file removed) when the command ends or its process dies; a folder it
    made and nothing filled is removed too. A folder that cannot be made or takes no files is refused at once
    (before Ray starts); where its file system has no locks, nothing is held."""
    path = Path(run_dir).expanduser().resolve()
    with contextlib.ExitStack() as stack:
        if not path.exists():
            stack.callback(lambda: path.rmdir() if path.is_dir() and not any(path.iterdir()) else None)
        make_run_dir(path)
        with contextlib.suppress(OSError):
            stack.enter_context(_locked(path / LOCK_FILE))
        yield


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """``lock_path`` locked without waiting, and who holds it written there; a :class:`UserError` naming the holder
    when another process does (an ``OSError`` where the file system has no locks). A file its holder removed as we
    opened it is opened again."""
    while True:
        with open(lock_path, "a+", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "pid unknown"
                raise UserError(f"{lock_path.parent}: another drml command is writing into it ({holder}); wait for it "
                                "to end, or pass --output-dir to run elsewhere") from None  # fmt: skip
            if lock_path.exists() and os.path.samestat(os.fstat(lock.fileno()), lock_path.stat()):
                lock.truncate(0)
                lock.write(f"pid {os.getpid()}: drml {' '.join(sys.argv[1:])}\n")
                lock.flush()
                try:
                    yield
                finally:
                    lock_path.unlink(missing_ok=True)
                return


def check_same_config(written: Path, cfg: Any, free: Sequence[str] = ()) -> None:
    """Refuse to continue the run of ``written`` with ``cfg`` if they differ outside ``free`` (and ``name``)."""
    data = _written_config(written)
    with contextlib.suppress(ValueError):  # defaults filled in: a key added later, at its default, is no difference
        data = type(cfg).model_validate(data).model_dump(mode="json")
    ignored = ("name", *free)
    old, new = _flat(data), _flat(cfg.model_dump(mode="json"))
    differ = [k for k in sorted(old.keys() | new.keys())
              if old.get(k) != new.get(k) and not any(k == f or k.startswith(f"{f}.") for f in ignored)]  # fmt: skip
    if differ:
        shown = "; ".join(f"{k}: {old.get(k, '(unset)')!r} there, {new.get(k, '(unset)')!r} now" for k in differ[:5])
        raise RunExistsError(
            f"{written.parent} holds a run of a different config ({written}: {shown}); pass --overwrite "
            "to start over, or --output-dir to run elsewhere"
        )


def _written_config(written: Path) -> dict[str, Any]:
    """The mapping in a run's ``config.yaml``; a file that holds none (edited by hand, or not drml's) or is missing
    (a finished run without one) is refused."""
    if not written.is_file():
        raise RunExistsError(f"{written.parent} holds a finished run but no config.yaml; pass --overwrite to start "
                             "over there, or --output-dir to run elsewhere")  # fmt: skip
    data, why = None, "not a mapping"
    try:
        data = yaml.safe_load(written.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        why = f"{type(err).__name__}: {first_line(err)}"
    if not isinstance(data, dict):
        raise RunExistsError(f"{written} is not the config of a run ({why}); pass --overwrite to start over there, "
                             "or --output-dir to run elsewhere")  # fmt: skip
    return data


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``.

    >>> _flat({"train": {"lr": 1, "epochs": 2}, "tune": None})
    {'train.lr': 1, 'train.epochs': 2, 'tune': None}
    """
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def model_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` if it holds a saved model (``config.json``), the model of the run directory ``path`` (its ``best/``),
    the Hub model ``path`` names (``ORG/NAME``, no such folder here: :func:`~drml_ray.hub.hub_model`), or a
    :class:`UserError` saying it is none of them."""
    folder = Path(path).expanduser()
    if (folder / "config.json").is_file():
        return folder
    if (folder / "best" / "config.json").is_file():
        return folder / "best"
    if not folder.exists():
        from drml_ray.hub import hub_model, is_hub_id

        if is_hub_id(str(path)):  # (dslim/bert-base-NER: its files in the Hub cache)
            return hub_model(str(path))
        built_in = str(path) in BUILT_IN_BACKBONES
        why = " (a backbone to fine-tune: drml finetune trains an NER model from it)" if built_in else ""
        raise UserError(f"{folder}: no such model folder or run directory{why}")
    if (folder / "adapter_config.json").is_file():
        raise UserError(_adapter_only(folder))
    inside = _models_inside(folder)
    more = f"; {counted(len(inside), 'model folder')} inside: {first_few(inside)}" if inside else ""
    raise UserError(f"{folder}: neither a model folder (config.json) nor a run directory with best/config.json{more}")


def _adapter_only(folder: Path) -> str:
    """What to do with a folder of PEFT adapter weights (``adapter_config.json``, no ``config.json``)."""
    base = "its base model"
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):  # (a damaged file: its base unnamed)
        base = repr(json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"])
    return (
        f"{folder}: PEFT adapter weights over {base}, not a whole model; merge them into it and save that "
        "(peft: PeftModel.from_pretrained(base, folder).merge_and_unload().save_pretrained(DIR), and the "
        "tokenizer into DIR), then give DIR (drml's own LoRA runs save merged models)"
    )


def _models_inside(folder: Path, depth: int = 4) -> list[Path]:
    """Model folders (``config.json`` beside ``model.safetensors``) up to ``depth`` levels below ``folder``: a
    meta-learning run's ``reptile/``, a continual run's ``strategies/lwf/exp3/best``."""
    found = (p.parent for d in range(1, depth + 1) for p in folder.glob("/".join(["*"] * d) + "/model.safetensors"))
    return sorted(p for p in found if (p / "config.json").is_file())
